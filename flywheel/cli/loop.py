"""flywheel run and flywheel fold-in: the loop from the command line, as Dagster runs.

Each runs one of the jobs the schedules and sensors run (so the UI shows it, with its lineage), prints
what it did and says what to do next. No Dagster command is ever needed.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click

from flywheel.cli.common import MONTH, WEEK, data_dir_option, main, partition_or_fail, paths_for
from flywheel.paths import Paths


def _run(paths: Paths, job: str, partition_key: str | None, label: str, sample_config: dict | None = None):
    """Run `job` with a progress bar over its steps; a failed run is one line (which step, why, where the log is)."""
    from tqdm import tqdm

    from flywheel.definitions import build_definitions
    from flywheel.defs.runner import failure_line, run_job

    defs = build_definitions(str(paths.data_dir))
    steps = len(defs.resolve_job_def(job).nodes_in_topological_order)
    with tqdm(total=steps, desc=label, unit="step", disable=not sys.stderr.isatty(), leave=False) as bar:
        def on_step(step: str, event: str) -> None:
            if event == "started":
                bar.set_postfix_str(step.replace("__", "/"))
            else:
                bar.update(1)

        run_config = {"ops": {"sample__sampled_traces": {"config": sample_config}}} if sample_config else None
        result = run_job(defs, job, paths, partition_key=partition_key, run_config=run_config, raise_on_error=False,
                         log_level="CRITICAL", on_step=on_step)
    if not result.success:  # a blocking check that fails (a PII leak) fails its step too: named the same way
        raise click.ClickException(f"{label}: {failure_line(result, paths)}")
    return result


@main.command("run")
@click.option("--week", type=WEEK, help="Run the weekly loop for the week holding this day (YYYY-MM-DD): ingest "
              "what is in the inbox, sample, scrub, queue for review, fold in labels.")
@click.option("--month", type=MONTH, help="Run the monthly job for this month (YYYY-MM): drift, the traces that "
              "focus next week's sample, retirement.")
@click.option("--random-rate", type=click.FloatRange(0, 1), help="With --week: override the random share of traffic "
              "sampled (default 0.02; the essay says 1-5%). A trial week of a few traces needs 1.")
@data_dir_option
def run(week: dt.date | None, month: dt.date | None, random_rate: float | None, data_dir: Path | None) -> None:
    """Run the loop for one week (ingest, sample, scrub, queue) or one month (drift, retirement).

    What the schedules do on their own while `make ui` runs, now, as a Dagster run the UI shows.
    Give exactly one of --week or --month. Reruns rewrite the week's partitions and add nothing twice.
    """
    if (week is None) == (month is None):
        raise click.UsageError("give exactly one of --week DAY or --month YYYY-MM")
    if random_rate is not None and week is None:
        raise click.UsageError("--random-rate goes with --week: the monthly job samples nothing")
    # A week's run ingests the inbox, so it may start the warehouse; a month's needs traces already there.
    paths = paths_for(data_dir, need_warehouse=month is not None)
    if week is not None:
        _run_week(paths, week, random_rate)
    else:
        _run_month(paths, month)


def _run_week(paths: Paths, week: dt.date, random_rate: float | None = None) -> None:
    from flywheel.core.common.db import connect
    from flywheel.core.intake.ingest import ensure_raw_tables
    from flywheel.core.labeling.queue import review_queue
    from flywheel.core.sampling import sampler
    from flywheel.defs.partitions import weekly_partitions
    from flywheel.settings import SamplingSettings

    key = week.isoformat()
    partition_or_fail(weekly_partitions, key, "week", "'--week'")
    with connect(paths.warehouse) as conn:
        ensure_raw_tables(conn)
    overrides = {"random_rate": random_rate} if random_rate is not None else {}
    result = _run(paths, "weekly_loop_job", key, f"week {key}", overrides)
    # The week's traffic as the sampler saw it: the same run's retention step may since have deleted raw
    # traces older than retention.raw_days, so raw.traces is no longer the place to count them.
    [sampled_event] = result.asset_materializations_for_node("sample__sampled_traces")
    traffic = sampled_event.metadata["week_traffic"].value
    start = dt.datetime.combine(week, dt.time())
    with connect(paths.warehouse) as conn:  # not read-only: the queue's label tables are created on first use
        sampled = sampler.read_sample(conn, start).height
        waiting = review_queue(conn, start).height
        version = _latest_version(conn)
    _say_what_the_inbox_gave(result)
    click.echo(f"Week {key}: {traffic} traces, {sampled} sampled and scrubbed, {waiting} waiting for review"
               + (f"; eval set at v{version}." if version else "."))
    if not traffic:
        click.echo("No traffic that week: ingest its traces first (flywheel ingest PATH), then run it again.")
    elif not sampled:
        rate = random_rate if random_rate is not None else SamplingSettings().random_rate
        click.echo(f"None of the week's {traffic} traces was sampled: none tripped a guardrail, retried or was handed "
                   f"off, and a random share of {rate:.0%} samples one trace in {round(1 / rate) if rate else 'none'}. "
                   f"To try the loop on a small week: flywheel run --week {key} --random-rate 1.")
    elif waiting:
        click.echo(f"Next: {waiting} traces wait for review: flywheel review (or flywheel labels export --week {key} "
                   "--output queue.csv), then flywheel fold-in.")
    else:
        click.echo("Every sampled trace of the week has a label. Next: flywheel fold-in.")


def _say_what_the_inbox_gave(result) -> None:
    """The run's ingest of the inbox, when it read new files: what it loaded and, above all, what it
    quarantined, which a user of the loop would otherwise not see (flywheel status lists the records)."""
    for event in result.get_asset_materialization_events():
        if event.asset_key.path != ["raw", "traces"]:
            continue
        meta = {k: v.value for k, v in event.step_materialization_data.materialization.metadata.items()}
        if meta.get("files_ingested") or meta.get("unreadable_files"):
            read = meta.get("files_ingested", 0) - meta.get("unreadable_files", 0)  # the report lists both
            click.echo(f"Inbox: {meta.get('ingested', 0)} new traces from {read} file(s), "
                       f"{meta.get('duplicates', 0)} duplicates, {meta.get('quarantined', 0)} quarantined"
                       + (" (flywheel status lists them; raw.quarantine keeps the records)" if meta.get("quarantined")
                          else "")
                       + (f"; {meta['unreadable_files']} file(s) could not be read:" if meta.get("unreadable_files")
                          else "."))
            for error in meta.get("unreadable") or []:
                click.echo(f"  {error}")


def _run_month(paths: Paths, month: dt.date) -> None:
    from flywheel.core.common.db import connect, table_exists
    from flywheel.defs.regression import monthly_partitions

    key = month.isoformat()
    partition_or_fail(monthly_partitions, key, "month", "'--month'")
    _run(paths, "monthly_drift_job", key, f"month {month:%Y-%m}")
    with connect(paths.warehouse, read_only=True) as conn:
        score = conn.execute("SELECT score, p_value, alert, eval_version FROM drift.scores WHERE month = ?",
                             [month]).fetchone() if table_exists(conn, "drift", "scores") else None
    if score is None:
        click.echo(f"Month {month:%Y-%m}: nothing to score (no traces that month, or no eval set yet: "
                   "flywheel evalset import FILE).")
        return
    value, p, alert, version = score
    p_text = "no earlier month to compare with" if p is None else f"p = {p:.3f}"
    click.echo(f"Month {month:%Y-%m}: drift {value:.3f} against eval set v{version} ({p_text})"
               + (": ALERT, the eval set no longer looks like production." if alert else "."))
    click.echo("Its most distant traces go into the next weekly sample (flywheel run --week DAY); retirement ran "
               "too: flywheel evalset versions.")


def _latest_version(conn) -> int:
    from flywheel.core.common.db import table_exists

    if not table_exists(conn, "eval", "versions"):
        return 0
    return conn.execute("SELECT coalesce(max(version), 0) FROM eval.versions").fetchone()[0]


@main.command("fold-in")
@data_dir_option
def fold_in(data_dir: Path | None) -> None:
    """Fold reviewed labels into a new eval set version.

    Failure labels whose scrubbed text the reviewer confirmed clean become eval rows; one new version
    if any row was added, none otherwise. What the labels sensor does on its own while `make ui` runs.
    """
    from flywheel.core.common.db import connect

    paths = paths_for(data_dir)
    with connect(paths.warehouse, read_only=True) as conn:
        before = _latest_version(conn)
    _run(paths, "fold_in_job", None, "fold-in")
    with connect(paths.warehouse, read_only=True) as conn:
        after = _latest_version(conn)
        added = conn.execute("SELECT coalesce(sum(rows_added), 0) FROM eval.versions WHERE version > ?",
                             [before]).fetchone()[0] if after else 0
    if after == before:
        click.echo(f"Nothing new to fold in: the eval set stays at "
                   f"{'v' + str(after) if after else 'no version'}. Label failures first: flywheel review.")
        return
    click.echo(f"Folded {added} reviewed failure(s) into eval set v{after}; exported to "
               f"{paths.exports / f'eval_set_v{after}.jsonl'}.")
    click.echo(f"Next: run it against your model: flywheel regress --target module:function --version {after}, "
               "then flywheel gate.")
