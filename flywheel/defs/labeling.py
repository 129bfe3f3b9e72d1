"""Station 3: the failure taxonomy and the weekly review queue. Labels come from people (the CLI, the
spreadsheet round trip), so label/labels is observed here, not computed."""

import dagster as dg

from flywheel.core.common import markdown
from flywheel.core.sampling import sampler as sampling
from flywheel.core.labeling import labels as labels_mod
from flywheel.core.labeling import queue as queue_mod
from flywheel.core.labeling import taxonomy as taxonomy_mod
from flywheel.defs.partitions import weekly_partitions
from flywheel.defs.scrub import ANONYMIZED
from flywheel.resources.embedder import EmbedderResource
from flywheel.resources.warehouse import Warehouse

GROUP = "station_3_label"
TAXONOMY = dg.AssetKey(["label", "taxonomy"])
LABELS = dg.AssetKey(["label", "labels"])

labels = dg.AssetSpec(
    LABELS, group_name=GROUP, kinds={"duckdb"}, deps=[TAXONOMY],
    description="Reviewers' verdicts, append-only (a relabel supersedes, history kept): bucket (known_failure, "
    "new_failure, not_a_bug), taxonomy code, expected behaviour, typed pass criterion, adversarial flag, pii_ok. "
    "Written by `flywheel labels import` and the review workflow; label.current_labels is the verdict in force.",
)


@dg.asset(
    key=TAXONOMY, group_name=GROUP, kinds={"duckdb"}, pool="duckdb",
    description="Failure modes a label can name: code, name, two-sentence definition, where it came from (seed "
    "or the trace that revealed it). Seeded from data/reference/taxonomy.yaml; grows as reviewers find new ones.",
)
def failure_taxonomy(warehouse: Warehouse) -> dg.MaterializeResult:
    seed_path = warehouse.paths.taxonomy_seed
    seed = taxonomy_mod.load_seed(seed_path) if seed_path.exists() else []
    with warehouse.connect() as conn:
        added = taxonomy_mod.seed(conn, seed)
        rows = taxonomy_mod.entries(conn)
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(rows), "added_from_seed": added,
        "taxonomy": dg.MetadataValue.md(markdown.table(["code", "name", "from"], [(r["code"], r["name"], r["created_from"]) for r in rows])),
    })


@dg.asset(
    key=["label", "review_queue"], deps=[ANONYMIZED, TAXONOMY, LABELS], partitions_def=weekly_partitions,
    group_name=GROUP, kinds={"duckdb"}, pool="duckdb",
    description="The week's scrubbed traces nobody has labelled yet, anomalies first, then strata, then random "
    "picks, each with why it was sampled and its judge score; each trace in one week only (a trace drift later "
    "counts among its month's most distant shows drift_focus among its reasons). Guardrail trips on prompts unlike "
    "any adversarial row are flagged as adversarial candidates and go first. `flywheel labels export` writes it as "
    "a spreadsheet.",
)
def review_queue(context: dg.AssetExecutionContext, warehouse: Warehouse, embedder: EmbedderResource) -> dg.MaterializeResult:
    week_start = sampling.as_week_start(context.partition_key)
    with warehouse.connect() as conn:
        labels_mod.ensure_tables(conn)
        queue = queue_mod.write_queue(conn, week_start, embedder.get())
    by_priority = queue.group_by("priority").len().sort("priority").rows() if queue.height else []
    names = ["anomaly", "stratified", "random"]
    return dg.MaterializeResult(metadata={
        "dagster/row_count": queue.height,
        "adversarial_candidates": int(queue["adversarial_candidate"].sum()) if queue.height else 0,
        "by_priority": dg.MetadataValue.md(markdown.table(["priority", "traces"], [(names[p], n) for p, n in by_priority])),
        "preview": dg.MetadataValue.md(markdown.table(
            ["trace_ref", "reasons", "judge", "first message"],
            [(r["trace_ref"], r["reasons"], r["judge_score"], r["messages"][0]["content"][:120])
             for r in queue.head(8).iter_rows(named=True)],
        ) if queue.height else "_nothing to review_"),
    })
