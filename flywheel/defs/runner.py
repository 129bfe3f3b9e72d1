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
