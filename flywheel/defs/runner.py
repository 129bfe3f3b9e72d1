"""Running the stations as Dagster runs recorded in the data directory's instance, so `make ui`
shows what the CLI and `make demo` did."""

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import dagster as dg

from flywheel.defs.dead_runs import reap_dead_runs
from flywheel.settings import Paths

REPO_DAGSTER_YAML = Path(__file__).resolve().parents[2] / "dagster.yaml"


def ensure_dagster_home(paths: Paths) -> Path:
    """DAGSTER_HOME defaults to <data>/dagster; the repo's dagster.yaml (the DuckDB pool limit) is
    copied there when the home has none."""
    if not os.environ.get("DAGSTER_HOME", "").strip():  # unset, or set to nothing (`export DAGSTER_HOME=`)
        os.environ["DAGSTER_HOME"] = str(paths.dagster_home)
    home = Path(os.environ["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    if not target.exists() and REPO_DAGSTER_YAML.exists():
        shutil.copyfile(REPO_DAGSTER_YAML, target)
    return home


def instance(paths: Paths) -> dg.DagsterInstance:
    ensure_dagster_home(paths)
    inst = dg.DagsterInstance.get()
    reap_dead_runs(inst)  # a run killed earlier must not keep the duckdb pool slot this run needs
    return inst


def run_job(
    defs: dg.Definitions, job_name: str, paths: Paths, *, partition_key: str | None = None, run_config: dict | None = None,
    raise_on_error: bool = True, tags: dict[str, str] | None = None, log_level: str = "WARNING",
    on_step: Callable[[str, str], None] | None = None,
) -> dg.ExecuteInProcessResult:
    """Run a job in this process, recorded in the data directory's instance. `on_step(step_key, event)`
    hears each step start and finish ("started", "done", "failed"), for a progress bar."""
    job = defs.resolve_job_def(job_name)
    if on_step:
        job = job.with_logger_defs({**job.loggers, "flywheel_progress": _progress_logger(on_step)})
    # The run's full event log is in the instance (and the UI); the terminal gets warnings only.
    loggers = {"console": {"config": {"log_level": log_level}}, **({"flywheel_progress": {}} if on_step else {})}
    config = {"loggers": loggers, **(run_config or {})}
    return job.execute_in_process(
        instance=instance(paths), partition_key=partition_key, run_config=config, raise_on_error=raise_on_error,
        tags=tags,
    )


_STEP_EVENTS = {"STEP_START": "started", "STEP_SUCCESS": "done", "STEP_FAILURE": "failed"}


def _progress_logger(on_step: Callable[[str, str], None]) -> dg.LoggerDefinition:
    """A Dagster logger that passes step starts and ends to `on_step` and prints nothing itself."""

    class StepHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            event = getattr(record, "dagster_meta", {}).get("dagster_event")
            if event is not None and event.event_type_value in _STEP_EVENTS:
                on_step(event.step_key, _STEP_EVENTS[event.event_type_value])

    @dg.logger(description="Step starts and ends, for the CLI's progress bar.")
    def flywheel_progress(_init_context):
        log = logging.Logger("flywheel_progress", level=logging.DEBUG)
        log.addHandler(StepHandler())
        return log

    return flywheel_progress


def failure_line(result: dg.ExecuteInProcessResult, paths: Paths) -> str:
    """One line for a failed run: which step, why (the error's first line), and where the full log is."""
    failures = [e for e in result.all_events if e.is_step_failure]
    where = f"full log: run {result.run_id} in the UI (make ui, then /runs/{result.run_id}), stored under {os.environ.get('DAGSTER_HOME', paths.dagster_home)}"
    if not failures:
        return f"the {result.job_def.name} run failed; {where}"
    event = failures[0]
    error = event.step_failure_data.error
    cause = error.cause if error and error.cause and "DagsterExecutionStepExecutionError" in error.cls_name else None
    error = cause or error
    message = (error.message.strip().splitlines() or [""])[0] if error else "unknown error"
    return f"step {event.step_key} failed: {message}; {where}"


def tick_sensor(
    defs: dg.Definitions, sensor_name: str, paths: Paths, *, cursor: str | None = None,
) -> tuple[str | None, list[dg.ExecuteInProcessResult]]:
    """One tick of a sensor, as the daemon would run it: evaluate it, then run each request whose run
    key has no run in the instance yet. Returns the new cursor and the runs started."""
    sensor = defs.resolve_sensor_def(sensor_name)
    inst = instance(paths)
    with dg.build_sensor_context(instance=inst, cursor=cursor, sensor_name=sensor_name, definitions=defs,
                                 resources={"warehouse": defs.resources["warehouse"]}) as context:
        tick = sensor.evaluate_tick(context)
    runs = []
    for request in tick.run_requests or []:
        tags = {**(request.tags or {}), "dagster/sensor_name": sensor_name}
        if request.run_key:
            if inst.get_runs(filters=dg.RunsFilter(tags={"dagster/run_key": request.run_key}), limit=1):
                continue  # the daemon's dedupe: a run key runs once
            tags["dagster/run_key"] = request.run_key
        runs.append(run_job(defs, sensor.job_name, paths, partition_key=request.partition_key, tags=tags,
                            raise_on_error=False))
    return tick.cursor if tick.cursor is not None else cursor, runs
