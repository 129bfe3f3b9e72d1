"""Retention in the weekly loop: raw traffic past `retention.raw_days` is deleted once its week was
sampled and scrubbed (flywheel/core/privacy/retention.py says exactly when)."""

import datetime as dt

import dagster as dg

from flywheel.core.common import clock
from flywheel.core.privacy import retention
from flywheel.defs.sampling import sampled_traces
from flywheel.defs.scrub import ANONYMIZED
from flywheel.resources.warehouse import Warehouse
from flywheel.settings import RetentionSettings

RAW_RETENTION = dg.AssetKey(["privacy", "raw_retention"])


class RetentionConfig(dg.Config, RetentionSettings):
    """Launchpad overrides for retention; the default (90 days) lives in flywheel.settings."""


def processed_weeks(instance: dg.DagsterInstance) -> list[dt.datetime]:
    """Weeks whose sample and scrub partitions both exist: the loop is done with their raw traffic."""
    sampled = instance.get_materialized_partitions(sampled_traces.key)
    scrubbed = instance.get_materialized_partitions(ANONYMIZED)
    return sorted(dt.datetime.fromisoformat(week) for week in sampled & scrubbed)


@dg.asset(
    key=RAW_RETENTION,
    deps=[ANONYMIZED],  # in the weekly loop it runs after the week is scrubbed
    group_name="privacy",
    kinds={"duckdb"},
    pool="duckdb",
    description="Deletes raw traces older than retention.raw_days (default 90; 0 keeps them forever) whose week "
    "was sampled and scrubbed, quarantine records quarantined that long ago, and inbox files nothing in the "
    "warehouse comes from any more. Scrubbed traces, labels and eval rows stay. Counts only, never a value.",
)
def raw_retention(context: dg.AssetExecutionContext, config: RetentionConfig, warehouse: Warehouse) -> dg.MaterializeResult:
    weeks = processed_weeks(context.instance)
    with warehouse.connect() as conn:
        report = retention.apply_retention(conn, raw_days=config.raw_days, now=clock.now(), processed_weeks=weeks,
                                           inbox=warehouse.paths.inbox_traces)
    if report.cutoff is None:
        context.log.info("retention.raw_days is 0: raw traffic is kept forever")
    return dg.MaterializeResult(metadata={
        "raw_days": config.raw_days,
        "cutoff": "kept forever" if report.cutoff is None else report.cutoff.isoformat(sep=" "),
        "traces_deleted": report.traces_deleted,
        "quarantine_deleted": report.quarantine_deleted,
        "traces_waiting": dg.MetadataValue.int(report.traces_waiting),
        "inbox_files_deleted": report.inbox_files_deleted,
        "dagster/row_count": report.traces_kept,
    })
