"""Jobs that span stations."""

import dagster as dg

from flywheel.defs.partitions import weekly_partitions
from flywheel.defs.sampling import sampled_traces
from flywheel.defs.scrub import scrub_week

# The Monday loop, as far as the stations built so far go: sample, then scrub before anyone reads it.
weekly_loop_job = dg.define_asset_job(
    "weekly_loop_job",
    selection=dg.AssetSelection.assets(sampled_traces, scrub_week),
    partitions_def=weekly_partitions,
    description="One week of the loop: station 1 (sample) and station 2 (scrub).",
)
