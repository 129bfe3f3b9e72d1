"""Jobs that span stations."""

import dagster as dg

from flywheel.defs.labeling import failure_taxonomy, review_queue
from flywheel.defs.partitions import weekly_partitions
from flywheel.defs.sampling import sampled_traces
from flywheel.defs.scrub import scrub_week

# The Monday loop, as far as the stations built so far go: sample, scrub before anyone reads it, queue
# for review.
weekly_loop_job = dg.define_asset_job(
    "weekly_loop_job",
    selection=dg.AssetSelection.assets(sampled_traces, scrub_week, review_queue),
    partitions_def=weekly_partitions,
    description="One week of the loop: station 1 (sample), station 2 (scrub), station 3's review queue.",
)

taxonomy_job = dg.define_asset_job(
    "taxonomy_job", selection=dg.AssetSelection.assets(failure_taxonomy),
    description="Seed the failure taxonomy from data/reference/taxonomy.yaml (existing codes are kept).",
)
