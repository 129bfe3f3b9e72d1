"""Station 3: the failure taxonomy and the weekly review queue. Labels come from people (the CLI, the
spreadsheet round trip), so label/labels is observed here, not computed."""

import dagster as dg

from flywheel.core.common import markdown
from flywheel.core.sampling import sampler as sampling
from flywheel.core.labeling import labels as labels_mod
from flywheel.core.labeling import queue as queue_mod
from flywheel.core.labeling import suggestions as suggestions_mod
from flywheel.core.labeling import taxonomy as taxonomy_mod
from flywheel.core.labeling import unexplained
from flywheel.core.drift.embeddings import CacheStats
from flywheel.defs.partitions import weekly_partitions
from flywheel.defs.scrub import ANONYMIZED
from flywheel.resources.embedder import EmbedderResource
from flywheel.resources.warehouse import Warehouse
from flywheel.settings import DriftSettings

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


SUGGESTIONS = dg.AssetKey(["label", "suggestions"])
CLUSTERS = dg.AssetKey(["label", "clusters"])


class SuggestionConfig(dg.Config):
    min_confidence: float = suggestions_mod.DEFAULT_MIN_CONFIDENCE  # below it, suggest nothing


@dg.asset(
    key=SUGGESTIONS, deps=[LABELS, review_queue], group_name=GROUP, kinds={"duckdb", "scikitlearn"}, pool="duckdb",
    description="A suggested bucket and taxonomy code for every queued trace, with a calibrated confidence and the "
    "three most similar labelled traces: logistic regression over the cached sentence embeddings (what the user "
    "asked beside what the assistant answered), calibrated by CalibratedClassifierCV, retrained from the labels in "
    "force on every run (the weekly loop, and each fold-in the labels sensor starts). Below the minimum confidence "
    "it abstains. A suggestion is never a label; `flywheel review`, `labels export` and the review app show it.",
)
def label_suggestions(context: dg.AssetExecutionContext, config: SuggestionConfig, warehouse: Warehouse,
                      embedder: EmbedderResource) -> dg.MaterializeResult:
    stats = CacheStats()
    with warehouse.connect() as conn:
        labels_mod.ensure_tables(conn)
        frame = suggestions_mod.write_suggestions(conn, embedder.get(), min_confidence=config.min_confidence,
                                                  progress=context.log.info, stats=stats)
        taken = suggestions_mod.acceptance(conn)
    offered = frame.filter(frame["suggested_bucket"].is_not_null()) if frame.height else frame
    by_code = offered.group_by("suggested_bucket", "suggested_code").len().sort("len", descending=True).rows() \
        if offered.height else []
    return dg.MaterializeResult(metadata={
        "dagster/row_count": frame.height,
        "suggested": offered.height, "abstained": frame.height - offered.height,
        "trained_on_labels": int(frame["trained_on"].max()) if frame.height else 0,
        "labels_given_with_a_suggestion": taken["suggested"], "suggestions_accepted": taken["accepted"],
        "embedding_cache_hits": stats.hits, "embedding_cache_misses": stats.misses,
        "suggested_by_code": dg.MetadataValue.md(markdown.table(
            ["bucket", "code", "traces"], [(b, c or "-", n) for b, c, n in by_code]) if by_code else "_none_"),
    })


@dg.asset(
    key=CLUSTERS, deps=[review_queue], partitions_def=weekly_partitions, group_name=GROUP,
    kinds={"duckdb", "scikitlearn"}, pool="duckdb",
    description="The week's unlabelled queue grouped into candidate failure modes: agglomerative clustering of "
    "what users asked (cosine, cut at a distance, so the number of clusters is found), each with size, the traces "
    "nearest its centre, characteristic terms (TF-IDF against the rest) and the share already covered by a "
    "taxonomy code; groups under three traces are noise. `flywheel clusters --week DAY` shows them and `flywheel "
    "review --week DAY --cluster N` opens one as a new failure mode with its members as siblings.",
)
def week_clusters(context: dg.AssetExecutionContext, warehouse: Warehouse,
                  embedder: EmbedderResource) -> dg.MaterializeResult:
    week_start = sampling.as_week_start(context.partition_key)
    settings = DriftSettings()
    with warehouse.connect() as conn:
        traces = unexplained.week_traces(conn, week_start)
        result = unexplained.cluster(conn, embedder.get(), traces, coverage_distance=settings.coverage_distance,
                                     roles=tuple(settings.text_roles))
        unexplained.store(conn, unexplained.week_scope(week_start.date()), result, traces.ids)
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(result.clusters), **result.summary(),
        "clusters": dg.MetadataValue.md(markdown.table(
            ["cluster", "size", "covered", "terms"],
            [(c.cluster_id, c.size, f"{c.covered_share:.0%}", ", ".join(c.terms) or "-")
             for c in result.clusters[:15]]) if result.clusters else "_no cluster of three or more_"),
    })
