"""Sensors: an incident re-samples its window once; new labels trigger the fold-in."""

import os

import dagster as dg

from flywheel.core.sampling import incidents
from flywheel.core.common.db import table_exists
from flywheel.defs.evalset import fold_in_job
from flywheel.defs.jobs import weekly_loop_job
from flywheel.defs.partitions import weekly_partitions
from flywheel.resources.warehouse import Warehouse


@dg.sensor(job=weekly_loop_job, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
           description="An incident file in <data>/inbox/incidents/ (or `flywheel incident open`) re-runs the weekly "
           "loop for every week its window touches, once: the run key is the incident id and the week.")
def incident_sensor(context: dg.SensorEvaluationContext, warehouse: Warehouse):
    # A file that is not a valid incident is skipped and named in the tick's log and skip reason, never
    # fatal: one bad file in the inbox must not stop the re-sampling of the others.
    found, problems = incidents.read_all(warehouse.paths.inbox_incidents)
    for problem in problems:
        context.log.warning(f"incident file skipped: {problem}")
    known = set(weekly_partitions.get_partition_keys())
    requests = [
        dg.RunRequest(run_key=f"{i.incident_id}:{week:%Y-%m-%d}", partition_key=f"{week:%Y-%m-%d}",
                      tags={"flywheel/incident": i.incident_id})
        for i in found for week in i.weeks() if f"{week:%Y-%m-%d}" in known
    ]
    if not requests:
        reason = "no incident in the inbox" if not found else "no week of an open incident can run yet"
        return dg.SkipReason(reason + (_skipped(problems) if problems else ""))
    return dg.SensorResult(run_requests=requests)


def _skipped(problems: list[str], shown: int = 3) -> str:
    more = f"; and {len(problems) - shown} more" if len(problems) > shown else ""
    return f" ({len(problems)} invalid incident file(s) skipped: " + "; ".join(problems[:shown]) + more + ")"


# How often the daemon looks for new labels. A review team wanting its labels in the eval set sooner
# (or a test) sets FLYWHEEL_LABELS_SENSOR_SECONDS; every look is one small read of label.labels.
LABELS_SENSOR_SECONDS = int(os.environ.get("FLYWHEEL_LABELS_SENSOR_SECONDS", "60") or 60)


@dg.sensor(job=fold_in_job, minimum_interval_seconds=LABELS_SENSOR_SECONDS,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="New or changed labels fold into the eval set (one run per change of the label table).")
def labels_sensor(context: dg.SensorEvaluationContext, warehouse: Warehouse):
    if not warehouse.paths.warehouse.exists():
        return dg.SkipReason("no warehouse yet")
    with warehouse.connect(read_only=True) as conn:
        if not table_exists(conn, "label", "labels"):
            return dg.SkipReason("no labels yet")
        count, latest = conn.execute("SELECT count(*), max(reviewed_at) FROM label.labels").fetchone()
    cursor = f"{count}:{latest}"
    if cursor == context.cursor:
        return dg.SkipReason("no new labels")
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=f"labels:{cursor}")], cursor=cursor)
