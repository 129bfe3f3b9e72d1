"""Jobs that span stations, and the schedules that make the loop run itself."""

import dagster as dg

from flywheel.defs.drift import HIGH_DISTANCE, SCORES
from flywheel.defs.evalset import EVAL_ROWS, VERSIONS
from flywheel.defs.intake import RAW_QUARANTINE, RAW_TRACES
from flywheel.defs.labeling import CLUSTERS, SUGGESTIONS, failure_taxonomy, review_queue
from flywheel.defs.privacy import RAW_RETENTION
from flywheel.defs.regression import monthly_retirement
from flywheel.defs.sampling import sampled_traces
from flywheel.defs.scrub import scrub_week

# The Monday loop: take in new files, sample the week, scrub it before anyone reads it, queue it for
# review (with suggestions and clusters), fold in what reviewers labelled since last time, and delete
# raw traffic past its retention.
weekly_loop_job = dg.define_asset_job(
    "weekly_loop_job",
    selection=dg.AssetSelection.assets(RAW_TRACES, RAW_QUARANTINE, sampled_traces, scrub_week, review_queue,
                                       SUGGESTIONS, CLUSTERS,
                                       EVAL_ROWS, VERSIONS, RAW_RETENTION),
    description="One week of the loop: ingest, sample, scrub, queue, fold in, retention.",
)

# The monthly job: drift (which focuses next week's sample) and retirement.
monthly_drift_job = dg.define_asset_job(
    "monthly_drift_job", selection=dg.AssetSelection.assets(SCORES, HIGH_DISTANCE, monthly_retirement),
    description="Score the month's drift, pick the traces that focus next week's sample, retire and reinstate rows.",
)

taxonomy_job = dg.define_asset_job(
    "taxonomy_job", selection=dg.AssetSelection.assets(failure_taxonomy),
    description="Seed the failure taxonomy from data/reference/taxonomy.yaml (existing codes are kept).",
)

# Mondays 05:00 UTC for the week that just ended; the 2nd of the month for the month that just ended.
# On by default: the loop runs itself whenever the daemon runs (`make ui` starts it).
weekly_loop_schedule = dg.build_schedule_from_partitioned_job(
    weekly_loop_job, hour_of_day=5, default_status=dg.DefaultScheduleStatus.RUNNING)
monthly_drift_schedule = dg.build_schedule_from_partitioned_job(
    monthly_drift_job, day_of_month=2, hour_of_day=6, default_status=dg.DefaultScheduleStatus.RUNNING)
