"""Station 5: monthly drift, and the high-distance traces that focus the next weekly sample."""

import dagster as dg

from flywheel.core.drift import station as drift_station
from flywheel.core.common import markdown
from flywheel import story
from flywheel.core.drift.embeddings import CacheStats
from flywheel.defs.evalset import VERSIONS
from flywheel.defs.intake import RAW_TRACES
from flywheel.defs.regression import monthly_partitions
from flywheel.resources.embedder import EmbedderResource
from flywheel.resources.scrubber import ScrubberResource
from flywheel.resources.warehouse import Warehouse
from flywheel.settings import DriftSettings

GROUP = "station_5_drift"
SCORES = dg.AssetKey(["drift", "scores"])
HIGH_DISTANCE = dg.AssetKey(["drift", "high_distance_traces"])


class DriftConfig(dg.Config, DriftSettings):
    """Launchpad overrides for station 5; defaults live in flywheel.settings."""


@dg.multi_asset(
    specs=[
        dg.AssetSpec(SCORES, deps=[RAW_TRACES, VERSIONS], group_name=GROUP, kinds={"duckdb"},
                     description="Per month: mean distance of 100 production traces (scrubbed, embedded) to their "
                     "nearest active eval row, a bootstrap 95% interval, the permutation p-value against last month "
                     "rescored on the current eval set, the alert (p < alpha), tail share and reverse coverage."),
        dg.AssetSpec(HIGH_DISTANCE, deps=[SCORES], group_name=GROUP, kinds={"duckdb"},
                     description="The month's most distant traces (keyed refs): the drift-focus stratum the first "
                     "weekly sample after the month takes in full."),
    ],
    partitions_def=monthly_partitions, pool="duckdb",
)
def monthly_drift(context: dg.AssetExecutionContext, config: DriftConfig, warehouse: Warehouse,
                  scrubber: ScrubberResource, embedder: EmbedderResource):
    month = context.partition_time_window.start.date()
    stats = CacheStats()
    with warehouse.connect() as conn:
        outcome = drift_station.score_month(conn, month, scrubber.get(), embedder.get(), warehouse.trace_ref(), config,
                                            stats)
        if outcome:
            drift_station.store(conn, month, *outcome, keep=config.high_distance_traces)
        months = drift_station.history(conn)
        trap = story.version_drop(conn)
    if outcome is None:
        context.log.warning(f"{month:%Y-%m}: no traces or no eval set; nothing scored")
    result = outcome[0] if outcome else None
    table = drift_station.history_markdown(months)
    yield dg.MaterializeResult(asset_key=SCORES, metadata={
        "score": dg.MetadataValue.float(result.score if result else 0.0),  # plotted per month by the UI
        "alert": bool(result and result.alert),
        "p_value": dg.MetadataValue.float(result.p_value if result and result.p_value is not None else 1.0),
        "drift_per_month": dg.MetadataValue.md(table + "\n\n" + markdown.bars(
            [(f"{m['month']:%Y-%m}", min(1.0, m["score"])) for m in months])),
        "essays_trap": dg.MetadataValue.md(trap),
        "embedding_cache_hits": stats.hits, "embedding_cache_misses": stats.misses,
    })
    yield dg.MaterializeResult(asset_key=HIGH_DISTANCE, metadata={
        "dagster/row_count": min(config.high_distance_traces, outcome[1].height) if outcome else 0,
    })
