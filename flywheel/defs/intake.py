"""Intake: new files in <data>/inbox/traces become raw/traces; bad records go to raw/quarantine."""


from collections import Counter

import dagster as dg

from flywheel.core.common import clock, markdown
from flywheel.core.intake import ingest as intake
from flywheel.core.intake import otlp_inbox
from flywheel.resources.warehouse import Warehouse
from flywheel.settings import IntakeSettings

RAW_TRACES = dg.AssetKey(["raw", "traces"])
RAW_QUARANTINE = dg.AssetKey(["raw", "quarantine"])
MAX_QUARANTINE_RATE = 0.05


class IntakeConfig(dg.Config, IntakeSettings):
    """Launchpad overrides for intake; defaults live in flywheel.settings."""


def _mapping(paths):
    from flywheel.core.intake.sources.mapping import Mapping

    return Mapping.load(paths.trace_mapping)


def _quarantine_preview(report: intake.IngestReport, limit: int = 20) -> str:
    if not report.quarantine:
        return "No record was quarantined in this run."
    rows = [(q["file"], q["line"], q["reason"]) for q in report.quarantine[:limit]]
    more = report.quarantined - len(rows)
    if more > 0:
        rows.append(("...", "", f"{more} more in raw.quarantine"))
    return markdown.table(["file", "line", "reason"], rows)


@dg.multi_asset(
    specs=[
        dg.AssetSpec(RAW_TRACES, description="Every valid production trace, once per trace_id, as ingested from "
                     "<data>/inbox/traces (JSON Lines, Parquet or CSV).", group_name="intake", kinds={"duckdb"}),
        dg.AssetSpec(RAW_QUARANTINE, description="Records that broke the trace contract: file, line, reason and "
                     "the record itself. Nothing is dropped silently.", group_name="intake", kinds={"duckdb"}),
    ],
    check_specs=[
        dg.AssetCheckSpec("quarantine_rate_below_5pct", asset=RAW_TRACES,
                          description="Share of this run's records that were quarantined stays under 5%."),
    ],
    pool="duckdb",
)
def raw_traces(context: dg.AssetExecutionContext, config: IntakeConfig, warehouse: Warehouse):
    """Ingest every inbox file not yet in the manifest (file name + content hash)."""
    inbox = warehouse.paths.inbox_traces
    inbox.mkdir(parents=True, exist_ok=True)
    with warehouse.connect() as conn:
        # Files from any source (the endpoint's OTLP batches, exports dropped in), each read as what it is.
        # The endpoint's file of the current hour is still growing: it waits for the next run.
        files = otlp_inbox.closed(intake.expand_paths([inbox]), clock.now())
        report = intake.ingest_paths(conn, files, config, skip_known=True, source_format="auto",
                                     mapping=_mapping(warehouse.paths))
        total = conn.execute("SELECT count(*) FROM raw.traces").fetchone()[0]
        quarantined_total = conn.execute("SELECT count(*) FROM raw.quarantine").fetchone()[0]
    for error in report.errors:
        context.log.error(error["error"])
    for q in report.quarantine[:50]:
        context.log.warning(f"{q['file']}:{q['line']}: {q['reason']}")
    yield dg.MaterializeResult(
        asset_key=RAW_TRACES,
        metadata={
            "dagster/row_count": total,
            "files_ingested": len(report.files),
            "files_already_ingested": report.skipped_files,
            "ingested": report.ingested,
            "duplicates": report.duplicates,
            "quarantined": report.quarantined,
            "quarantine_rate": dg.MetadataValue.float(report.quarantine_rate),
            "unreadable_files": len(report.errors),
            # Which, and why: the messages name the file, never a value from it.
            "unreadable": dg.MetadataValue.json([error["error"] for error in report.errors]),
            # Which source each new file was read as, and the spans or runs left out as not LLM calls.
            "files_by_source": dg.MetadataValue.json(dict(Counter(report.formats.values()))),
            "not_llm_calls": dg.MetadataValue.md(markdown.table(
                ["reason", "spans or runs"], report.skipped_spans.most_common()) if report.skipped_spans else "_none_"),
        },
    )
    yield dg.MaterializeResult(
        asset_key=RAW_QUARANTINE,
        metadata={
            "dagster/row_count": quarantined_total,
            "quarantined_this_run": report.quarantined,
            "preview": dg.MetadataValue.md(_quarantine_preview(report)),
        },
    )
    yield dg.AssetCheckResult(
        asset_key=RAW_TRACES,
        check_name="quarantine_rate_below_5pct",
        passed=report.quarantine_rate <= MAX_QUARANTINE_RATE,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"quarantine_rate": report.quarantine_rate, "quarantined": report.quarantined},
    )


ingest_job = dg.define_asset_job(
    "ingest_job", selection=dg.AssetSelection.assets(RAW_TRACES, RAW_QUARANTINE),
    description="Load new trace files from the inbox into raw/traces.",
)
