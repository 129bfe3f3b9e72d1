"""Station 1: the weekly sample."""


import dagster as dg

from flywheel.core.sampling import incidents
from flywheel.core.common import markdown
from flywheel.core.sampling import sampler as sampling
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
    kinds={"duckdb"},
    pool="duckdb",
    description="This week's slice of production: random, stratified and anomaly picks, each trace once "
    "with all its reasons and its inclusion probability (weight = 1/p re-weights to production), and in one "
    "week only: a drift-focus trace its own week already sampled is not taken again. Keyed trace "
    "references and routing fields only: the raw ids stay in raw.sample_ids and the text in raw/traces "
    "until the scrubber reads it.",
)
def sampled_traces(context: dg.AssetExecutionContext, config: SamplingConfig, warehouse: Warehouse) -> dg.MaterializeResult:
    # Written here, the week deleted and the draw inserted in one transaction, so a rerun rewrites the
    # partition; the metadata below describes the very rows written.
    week_start = sampling.as_week_start(context.partition_key)
    open_incidents, problems = incidents.read_all(warehouse.paths.inbox_incidents)
    for problem in problems:
        context.log.warning(f"incident file skipped: {problem}")
    with warehouse.connect() as conn:
        drawn = sampling.write_draw(conn, week_start, config, trace_ref=warehouse.trace_ref(),
                                    incidents=incidents.overlapping(open_incidents, week_start))
        traffic = sampling.week_traffic(conn, week_start)
    sample = drawn.sample
    summary = sampling.summarize(sample, traffic, config)
    if drawn.left_out:
        context.log.info(f"{len(drawn.left_out)} picks left out: another week's sample holds them "
                         f"({drawn.focus_left_out()} of the {len(drawn.focus)} drift-focus traces)")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": sample.height,
            "week_traffic": traffic,
            # Last month's most distant traces this week takes, and those already sampled in their own
            # week: reviewed there (the queue shows drift_focus among their reasons), not a second time here.
            "drift_focus_traces": len(drawn.focus),
            "drift_focus_sampled_in_their_own_week": drawn.focus_left_out(),
            "per_mode": dg.MetadataValue.md(_counts_table("mode", summary["per_mode"])),
            "per_reason": dg.MetadataValue.md(_counts_table("reason", summary["per_reason"])),
            "p_random_sees_0.5pct_failure": dg.MetadataValue.float(summary["p_random_sees_rare_failure"]),
            "weighted_traffic_estimate": dg.MetadataValue.float(summary["weighted_traffic_estimate"]),
            "preview": dg.MetadataValue.md(
                # No trace reference either: Dagster's storage is readable by every UI user and never erased.
                markdown.frame(sample.select("timestamp", "intent", "cohort", "reasons", "inclusion_probability"))
            ),
        }
    )


weekly_sample_job = dg.define_asset_job(
    "weekly_sample_job", selection=dg.AssetSelection.assets(sampled_traces), partitions_def=weekly_partitions,
    description="Station 1 for one week.",
)
