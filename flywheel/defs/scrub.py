"""Station 2: scrub the week's sample before any human reads it."""

import dagster as dg
import polars as pl

from flywheel.core.common import keys
from flywheel.core.common import markdown
from flywheel.core.sampling import sampler as sampling
from flywheel.core.scrub import keep_terms, leaks, station
from flywheel.core.scrub import residue as residue_table
from flywheel.defs.partitions import weekly_partitions
from flywheel.resources.scrubber import ScrubberResource
from flywheel.resources.warehouse import Warehouse

ANONYMIZED = dg.AssetKey(["scrub", "anonymized_traces"])
REPORT = dg.AssetKey(["scrub", "scrub_report"])
RESIDUE = dg.AssetKey(["scrub", "residue"])
GROUP = "station_2_scrub"

residue = dg.AssetSpec(
    RESIDUE, group_name=GROUP, kinds={"duckdb"},
    description="Misses reviewers found in scrubbed traces: trace ref, entity class, note (never the value). "
    "`flywheel residue` turns it into a miss rate per class.",
)


def _canaries(warehouse: Warehouse, vocabulary_entries) -> set[str]:
    paths = warehouse.paths
    return (
        leaks.canaries_from_answers(paths.demo / "truth" / "answers.jsonl")
        | leaks.canaries_from_file(paths.reference / "pii_canaries.txt")
        | set(vocabulary_entries)
    )


@dg.multi_asset(
    outs={
        "anonymized_traces": dg.AssetOut(
            key=ANONYMIZED, metadata={"partition_expr": "week_start"}, kinds={"duckdb", "presidio"},
            description="The week's sampled traces, scrubbed: typed, numbered placeholders instead of customer "
            "data, trace and customer ids as keyed hashes (HMAC-SHA256). The only raw-text reader besides intake.",
        ),
        "scrub_report": dg.AssetOut(
            key=REPORT, metadata={"partition_expr": "week_start"}, kinds={"duckdb"},
            description="Per scrubbed trace: findings per entity class and layer (regex, ner, lookup) and the "
            "scrubber version.",
        ),
    },
    deps=[dg.AssetKey(["sample", "sampled_traces"])],
    partitions_def=weekly_partitions,
    group_name=GROUP,
    pool="duckdb",
    check_specs=[
        dg.AssetCheckSpec(
            "no_pii_canary_leak", asset=ANONYMIZED, blocking=True,
            description="No known customer value (demo answer file, customer vocabulary, pii_canaries.txt) "
            "appears in the scrubbed traces.",
        )
    ],
)
def scrub_week(context: dg.AssetExecutionContext, warehouse: Warehouse, scrubber: ScrubberResource):
    week_start = sampling.as_week_start(context.partition_key)
    scrub = scrubber.get()
    key = keys.load_key(warehouse.paths.data_dir)
    with warehouse.connect() as conn:
        # A sample written before raw.sample_ids held raw ids: moved into raw first (a no-op after).
        sampling.migrate_raw_ids(conn, lambda trace_id: keys.keyed_hash(key, trace_id, kind="trace"))
        sampled_traces = sampling.read_sample(conn, week_start)
        conversations = station.raw_conversations(conn, sampled_traces["trace_ref"].to_list())
        residue_table.ensure_residue_table(conn)
    miner = keep_terms.Miner()  # words hidden for many customers: keep-term candidates for an admin
    anonymized, report = station.scrub_sample(
        sampled_traces, conversations, scrub, lambda kind, value: keys.keyed_hash(key, value, kind=kind), week_start,
        observe=miner.observe,
    )
    with warehouse.connect() as conn:
        keep_terms.store_mined(conn, week_start, miner.rows(week_start))
    totals = station.report_totals(report)
    texts = [(ref, m["content"]) for ref, msgs in zip(anonymized["trace_ref"], anonymized["messages"]) for m in msgs]
    with warehouse.connect() as conn:
        found = leaks.find_leaks(conn, texts, _canaries(warehouse, scrub.vocabulary.entries))
    if found:
        leaked = [f["value"] for f in found]
        context.log.error(f"{len(found)} known customer values survived the scrubber; redacting them before writing")
        anonymized = anonymized.with_columns(
            pl.col("messages").map_elements(
                lambda msgs: [{**m, "content": leaks.redact_values(m["content"], leaked)} for m in msgs],
                return_dtype=station.MESSAGE_TYPE,
            )
        )
    rows = [(t, layers.get("regex", 0), layers.get("ner", 0), layers.get("lookup", 0)) for t, layers in sorted(totals.items())]
    yield dg.Output(
        anonymized, output_name="anonymized_traces",
        metadata={
            "dagster/row_count": anonymized.height,
            "scrubber_version": scrub.version,
            "preview": dg.MetadataValue.md(markdown.table(
                ["trace_ref", "intent", "first message (scrubbed)"],
                [(r, i, msgs[0]["content"][:160]) for r, i, msgs in anonymized.select("trace_ref", "intent", "messages").head(5).iter_rows()],
            ) if anonymized.height else "_empty week_"),
        },
    )
    yield dg.Output(
        report, output_name="scrub_report",
        metadata={
            "dagster/row_count": report.height,
            "findings": int(report["total_spans"].sum()) if report.height else 0,
            "per_class_and_layer": dg.MetadataValue.md(markdown.table(["entity class", "regex", "ner", "lookup"], rows)),
        },
    )
    yield dg.AssetCheckResult(
        asset_key=ANONYMIZED, check_name="no_pii_canary_leak", passed=not found,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"leaks": len(found), "traces_with_leaks": len({f["where"] for f in found}),
                  "leaked_classes_hint": dg.MetadataValue.md(
                      "Leaked values are not shown here on purpose; run the leak test locally." if found else "none")},
    )
