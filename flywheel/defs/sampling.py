"""Station 1: the weekly sample."""


import dagster as dg
import polars as pl

from flywheel.core import markdown, sampling
from flywheel.defs.intake import RAW_TRACES
from flywheel.defs.partitions import weekly_partitions
from flywheel.resources.warehouse import Warehouse
from flywheel.settings import SamplingSettings


class SamplingConfig(dg.Config, SamplingSettings):
    """Launchpad overrides for station 1; defaults (the essay's) live in flywheel.settings."""


def _counts_table(title: str, counts: dict[str, int]) -> str:
    return markdown.table([title, "traces"], sorted(counts.items(), key=lambda kv: -kv[1]))


@dg.asset(
    key=["sample", "sampled_traces"],
    deps=[RAW_TRACES],
    partitions_def=weekly_partitions,
    group_name="station_1_sample",
    kinds={"duckdb", "polars"},
    pool="duckdb",
    metadata={"partition_expr": "week_start"},
    description="This week's slice of production: random, stratified and anomaly picks, each trace once "
    "with all its reasons and its inclusion probability (weight = 1/p re-weights to production). Ids and "
    "routing fields only: the text stays in raw/traces until the scrubber reads it.",
)
def sampled_traces(context: dg.AssetExecutionContext, config: SamplingConfig, warehouse: Warehouse) -> pl.DataFrame:
    week_start = sampling.as_week_start(context.partition_key)
    with warehouse.connect() as conn:
        sample = sampling.sample_week(conn, week_start, config, trace_ref=warehouse.trace_ref())
        traffic = sampling.week_traffic(conn, week_start)
    summary = sampling.summarize(sample, traffic, config)
    context.add_output_metadata(
        {
            "dagster/row_count": sample.height,
            "week_traffic": traffic,
            "per_mode": dg.MetadataValue.md(_counts_table("mode", summary["per_mode"])),
            "per_reason": dg.MetadataValue.md(_counts_table("reason", summary["per_reason"])),
            "p_random_sees_0.5pct_failure": dg.MetadataValue.float(summary["p_random_sees_rare_failure"]),
            "weighted_traffic_estimate": dg.MetadataValue.float(summary["weighted_traffic_estimate"]),
            "preview": dg.MetadataValue.md(
                markdown.frame(sample.select("trace_id", "intent", "cohort", "reasons", "inclusion_probability"))
            ),
        }
    )
    return sample


weekly_sample_job = dg.define_asset_job(
    "weekly_sample_job", selection=dg.AssetSelection.assets(sampled_traces), partitions_def=weekly_partitions,
    description="Station 1 for one week.",
)
