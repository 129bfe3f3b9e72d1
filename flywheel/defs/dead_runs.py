"""Runs whose process died (kill -9, out of memory) are marked failed and give back their pool slot.

A run killed mid-step stays STARTED in Dagster's storage and keeps the one `duckdb` pool slot, so every
later run waits "blocked by limit for pool duckdb" until someone terminates the dead run by hand.
Dagster's own run monitoring cannot see it: the default run launcher has no worker health check, and a
CLI run (execute_in_process) has no launcher at all. Both kinds record the pid of the process that
executes their steps in an engine event; a STARTED run whose process is gone is dead.
"""

from __future__ import annotations

import os

import dagster as dg


def _run_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The pid of the last process that reported executing the run's steps."""
    pid = None
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        data = entry.dagster_event.engine_event_data if entry.dagster_event else None
        value = data.metadata.get("pid") if data and data.metadata else None
        if value is not None:
            pid = int(getattr(value, "text", value))
    return pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    try:  # a killed child its parent has not waited for yet is a zombie: dead for our purpose
        with open(f"/proc/{pid}/stat", encoding="utf-8") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _runs_are_local(instance: dg.DagsterInstance) -> bool:
    # A pid only means something on the machine that wrote it. With SQLite storage every run is this
    # machine's; with shared storage (PostgreSQL) a pid may be another host's, so leave those alone.
    return type(instance.run_storage).__name__.startswith("Sqlite")


def reap_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark STARTED runs whose process is gone as failed and free their pool slots; the run ids reaped."""
    if not _runs_are_local(instance):
        return []
    reaped = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        pid = _run_pid(instance, run.run_id)
        if pid is None or pid == os.getpid() or _alive(pid):
            continue
        instance.report_run_failed(run, message=f"The process running this run (pid {pid}) is gone (killed or out of "
                                   "memory): marked failed by flywheel, its pool slot freed.")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        reaped.append(run.run_id)
    return reaped


@dg.sensor(minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Runs whose process died (kill -9, out of memory) are marked failed and free the duckdb pool.")
def dead_runs_sensor(context: dg.SensorEvaluationContext):
    reaped = reap_dead_runs(context.instance)
    return dg.SkipReason(f"marked {len(reaped)} dead run(s) failed: {', '.join(reaped)}" if reaped
                         else "no dead runs")
