"""Running the stations as Dagster runs recorded in the data directory's instance, so `make ui`
shows what the CLI and `make demo` did."""

import os
import shutil
from pathlib import Path

import dagster as dg

from flywheel.settings import Paths

REPO_DAGSTER_YAML = Path(__file__).resolve().parents[2] / "dagster.yaml"


def ensure_dagster_home(paths: Paths) -> Path:
    """DAGSTER_HOME defaults to <data>/dagster; the repo's dagster.yaml (the DuckDB pool limit) is
    copied there when the home has none."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(paths.dagster_home)))
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    if not target.exists() and REPO_DAGSTER_YAML.exists():
        shutil.copyfile(REPO_DAGSTER_YAML, target)
    return home


def instance(paths: Paths) -> dg.DagsterInstance:
    ensure_dagster_home(paths)
    return dg.DagsterInstance.get()


def run_job(
    defs: dg.Definitions, job_name: str, paths: Paths, *, partition_key: str | None = None, run_config: dict | None = None,
    raise_on_error: bool = True, tags: dict[str, str] | None = None, log_level: str = "WARNING",
) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def(job_name)
    # The run's full event log is in the instance (and the UI); the terminal gets warnings only.
    config = {"loggers": {"console": {"config": {"log_level": log_level}}}, **(run_config or {})}
    return job.execute_in_process(
        instance=instance(paths), partition_key=partition_key, run_config=config, raise_on_error=raise_on_error,
        tags=tags,
    )


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
