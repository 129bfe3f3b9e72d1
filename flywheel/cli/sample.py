"""flywheel sample: station 1 as Dagster runs."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import click
from tqdm import tqdm

from flywheel.cli.common import WEEK, data_dir_option, main, partition_or_fail, paths_for
from flywheel.paths import Paths


@main.command()
@click.option("--week", "weeks", type=WEEK, multiple=True, help="A week to sample, as any day of it (YYYY-MM-DD); "
              "repeatable. Default: every ended week with traffic.")
@click.option("--random-rate", type=click.FloatRange(0, 1), help="Override the random share (default 0.02; the essay "
              "says 1-5%).")
@click.option("--salt", help="Override the sampling salt.")
@click.option("--json", "as_json", is_flag=True, help="Print per-week counts as JSON.")
@data_dir_option
def sample(weeks: tuple[dt.date, ...], random_rate: float | None, salt: str | None, as_json: bool, data_dir: Path | None) -> None:
    """Run station 1 (sample/sampled_traces) for weekly partitions, as Dagster runs.

    Ingest first (`flywheel ingest` or the raw/traces asset). Reruns give the same rows.
    """
    overrides = {k: v for k, v in {"random_rate": random_rate, "salt": salt}.items() if v is not None}
    results = run_weeks(paths_for(data_dir), list(weeks), overrides)
    if as_json:
        click.echo(json.dumps(results, indent=2, default=str))
    else:
        for r in results:
            click.echo(f"{r['week']}: {r['sampled']} of {r['traffic']} traces sampled  {r['per_mode']}")


def run_weeks(paths: Paths, weeks: list[dt.date], overrides: dict, job: str = "weekly_sample_job") -> list[dict]:
    """Run `job` for each week (default: every ended week with traffic); per-week sampling summaries."""
    from flywheel.core.sampling import sampler as sampling
    from flywheel.core.common.db import connect
    from flywheel.core.intake.ingest import ensure_raw_tables
    from flywheel.definitions import build_definitions
    import dagster as dg

    from flywheel.defs.partitions import weekly_partitions
    from flywheel.defs.runner import failure_line, run_job
    from flywheel.settings import SamplingSettings

    for week in weeks:
        partition_or_fail(weekly_partitions, week.isoformat(), "week", "'--week'")
    with connect(paths.warehouse) as conn:
        ensure_raw_tables(conn)
        starts = [sampling.as_week_start(w) for w in weeks] if weeks else [
            w for w in sampling.week_starts(conn) if weekly_partitions.has_partition_key(w.date().isoformat())]
    if not starts:
        raise click.ClickException("raw/traces has no traffic in an ended week: ingest some traces first "
                                   "(flywheel ingest PATH).")
    defs = build_definitions(str(paths.data_dir))
    run_config = {"ops": {"sample__sampled_traces": {"config": overrides}}} if overrides else None
    results = []
    for start in tqdm(starts, desc=job, unit="week", disable=not sys.stderr.isatty(), leave=False):
        key = start.date().isoformat()
        # A failed blocking check (a PII leak) stops that week's run; report it and go on with the rest.
        result = run_job(defs, job, paths, partition_key=key, run_config=run_config, raise_on_error=False)
        if not result.success and not result.is_node_success("sample__sampled_traces"):
            raise click.ClickException(f"week {key}: {failure_line(result, paths)}")
        with connect(paths.warehouse, read_only=True) as conn:
            sample = sampling.read_sample(conn, start)
            traffic = sampling.week_traffic(conn, start)
        summary = sampling.summarize(sample, traffic, SamplingSettings(**overrides))
        evaluations = result.get_asset_check_evaluations()
        checks = [(c.check_name, c.passed) for c in evaluations]
        for c in evaluations:  # warnings (e.g. the adversarial share) are for the UI; errors are said here
            if not c.passed and c.severity == dg.AssetCheckSeverity.ERROR:
                click.echo(f"warning: week {key}: check {c.check_name} failed (run {result.run_id})", err=True)
        results.append({"week": key, "run_id": result.run_id, "success": result.success, **summary, "checks": checks})
    return results


