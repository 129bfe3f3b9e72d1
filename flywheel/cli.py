"""The `flywheel` command."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import click
from tqdm import tqdm

from flywheel import __version__
from flywheel.settings import DATA_DIR_ENV, IntakeSettings, Paths

MAX_PRINTED_ERRORS = 20


def data_dir_option(fn):
    """--data-dir on every verb, so it can be given where the user types it."""
    return click.option(
        "--data-dir", type=click.Path(file_okay=False, path_type=Path), envvar=DATA_DIR_ENV,
        help=f"Where all state lives (default ./data, or ${DATA_DIR_ENV}).",
    )(fn)


def _paths(data_dir: Path | None) -> Paths:
    return Paths(data_dir)


def _progress(desc: str, total: int | None = None, unit: str = "it"):
    # Only draw bars for a person watching; CI logs and pipes get the summary alone.
    return tqdm(total=total, desc=desc, unit=unit, unit_scale=True, disable=not sys.stderr.isatty(), leave=False)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="flywheel")
def main() -> None:
    """flywheel keeps an LLM application's eval suite alive.

    Every week it samples production traces, scrubs customer data out, queues them for labelling and
    folds new rows into a versioned eval set; every month it checks the eval set still looks like
    production. State lives in one data directory (./data, $FLYWHEEL_DATA or --data-dir).
    """


# ---------------------------------------------------------------------------------------------
# ingest
# ---------------------------------------------------------------------------------------------


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the machine-readable report instead of a summary.")
@click.option("--max-line-bytes", type=int, default=IntakeSettings().max_line_bytes, show_default=True,
              help="Records larger than this are quarantined unread.")
@data_dir_option
def ingest(paths: tuple[Path, ...], as_json: bool, max_line_bytes: int, data_dir: Path | None) -> None:
    """Load trace files (JSON Lines, Parquet, CSV) or folders of them into raw/traces.

    Every record is checked against the trace contract. Bad records go to raw/quarantine with their
    file, line and reason; traces already loaded (same trace_id) are counted as duplicates. Exits 1
    only when a file cannot be read at all.
    """
    from flywheel.core.db import connect
    from flywheel.core.intake import ingest_paths

    paths_ = _paths(data_dir)
    settings = IntakeSettings(max_line_bytes=max_line_bytes)
    with connect(paths_.warehouse) as conn, _progress("ingest", unit="rec") as bar:
        report = ingest_paths(conn, paths, settings, on_progress=bar.update)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        files = len(report.files) - len(report.errors)
        click.echo(
            f"Ingested {report.ingested} traces from {files} file(s): "
            f"{report.duplicates} duplicates, {report.quarantined} quarantined."
        )
        for q in report.quarantine[:MAX_PRINTED_ERRORS]:
            click.echo(f"  {q['file']}:{q['line']}: {q['reason']}", err=True)
        if report.quarantined > MAX_PRINTED_ERRORS:
            click.echo(f"  ... and {report.quarantined - MAX_PRINTED_ERRORS} more, all in raw.quarantine.", err=True)
        if report.quarantined:
            click.echo(f"Quarantined records are kept in raw.quarantine in {paths_.warehouse}.", err=True)
    for error in report.errors:
        click.echo(f"error: {error['error']}", err=True)
    sys.exit(1 if report.errors else 0)


# ---------------------------------------------------------------------------------------------
# sample
# ---------------------------------------------------------------------------------------------


@main.command()
@click.option("--week", "weeks", multiple=True, help="Monday (YYYY-MM-DD) of a week to sample; repeatable. "
              "Default: every week with traffic.")
@click.option("--random-rate", type=float, help="Override the random share (default 0.02).")
@click.option("--salt", help="Override the sampling salt.")
@click.option("--json", "as_json", is_flag=True, help="Print per-week counts as JSON.")
@data_dir_option
def sample(weeks: tuple[str, ...], random_rate: float | None, salt: str | None, as_json: bool, data_dir: Path | None) -> None:
    """Run station 1 (sample/sampled_traces) for weekly partitions, as Dagster runs.

    Ingest first (`flywheel ingest` or the raw/traces asset). Reruns give the same rows.
    """
    overrides = {k: v for k, v in {"random_rate": random_rate, "salt": salt}.items() if v is not None}
    results = _sample_weeks(_paths(data_dir), list(weeks), overrides)
    if as_json:
        click.echo(json.dumps(results, indent=2, default=str))
    else:
        for r in results:
            click.echo(f"{r['week']}: {r['sampled']} of {r['traffic']} traces sampled  {r['per_mode']}")


def _sample_weeks(paths: Paths, weeks: list[str], overrides: dict) -> list[dict]:
    from flywheel.core import sampling
    from flywheel.core.db import connect
    from flywheel.core.intake import ensure_raw_tables
    from flywheel.definitions import build_definitions
    from flywheel.defs.runner import run_job

    with connect(paths.warehouse) as conn:
        ensure_raw_tables(conn)
        starts = [sampling.as_week_start(w) for w in weeks] if weeks else sampling.week_starts(conn)
    if not starts:
        raise click.ClickException("raw/traces is empty: ingest some traces first (flywheel ingest PATH).")
    defs = build_definitions(str(paths.data_dir))
    run_config = {"ops": {"sample__sampled_traces": {"config": overrides}}} if overrides else None
    results = []
    for start in tqdm(starts, desc="sample", unit="week", disable=not sys.stderr.isatty(), leave=False):
        key = start.date().isoformat()
        result = run_job(defs, "weekly_sample_job", paths, partition_key=key, run_config=run_config)
        sample = result.output_for_node("sample__sampled_traces")
        with connect(paths.warehouse, read_only=True) as conn:
            traffic = sampling.week_traffic(conn, start)
        from flywheel.settings import SamplingSettings

        summary = sampling.summarize(sample, traffic, SamplingSettings(**overrides))
        results.append({"week": key, "run_id": result.run_id, **summary})
    return results


# ---------------------------------------------------------------------------------------------
# demo
# ---------------------------------------------------------------------------------------------


@main.group()
def demo() -> None:
    """SIMULATED help-desk traffic and the whole loop on it (what `make demo` runs)."""


def _monday(ctx, param, value: str) -> dt.date:
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from None
    if day.weekday() != 0:
        raise click.BadParameter(f"{day} is a {day:%A}; weeks start on Monday")
    return day


@demo.command("generate")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for traces/, truth/answers.jsonl, customer_vocabulary.csv, starter_eval_set.csv.")
@click.option("--weeks", type=click.IntRange(1, 520), default=4, show_default=True)
@click.option("--traces-per-day", type=click.IntRange(1), default=100, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--start", default="2026-03-02", show_default=True, callback=_monday, help="A Monday.")
@data_dir_option
def demo_generate(out: Path, weeks: int, traces_per_day: int, seed: int, start: dt.date, data_dir: Path | None) -> None:
    """Write synthetic traffic of a help-desk assistant, with its hidden truth kept apart.

    Traces go to OUT/traces/ (one JSON Lines file per day); which traces are failures, adversarial,
    and which strings are PII goes to OUT/truth/answers.jsonl, never into a trace. Deterministic for
    a seed; streams, so any volume fits in memory.
    """
    from flywheel.demo.generator import write_demo

    with _progress("generate", total=weeks * 7 * traces_per_day, unit="trace") as bar:
        summary = write_demo(out, weeks=weeks, traces_per_day=traces_per_day, seed=seed, start=start, progress=bar.update)
    click.echo(
        f"Wrote {summary.traces} traces in {len(summary.trace_files)} files to {out / 'traces'} "
        f"({summary.failures} failures, {summary.adversarial} adversarial, cohorts {summary.by_cohort}).\n"
        f"Hidden truth: {summary.answers_file}\nCustomer vocabulary: {summary.vocabulary_file}\n"
        f"Starter eval set: {summary.eval_set_file}"
    )


@demo.command("run")
@click.option("--weeks", type=click.IntRange(1, 520), default=12, show_default=True,
              help="Weeks of traffic from 2026-03-02; the enterprise cohort arrives in week 11.")
@click.option("--traces-per-day", type=click.IntRange(1), default=60, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@data_dir_option
def demo_run(weeks: int, traces_per_day: int, seed: int, data_dir: Path | None) -> None:
    """Generate demo traffic into the inbox and run the loop on it as Dagster runs.

    For now: ingest (raw/traces) and the weekly sample (station 1) for every week; later stations
    join as they land. Rerunning is safe: files already ingested are skipped, partitions rewritten.
    """
    from flywheel.definitions import build_definitions
    from flywheel.demo.generator import write_demo
    from flywheel.defs.runner import run_job

    paths = _paths(data_dir)
    click.echo(f"[1/3] Generating {weeks} weeks x {traces_per_day} traces/day of SIMULATED traffic ...")
    with _progress("generate", total=weeks * 7 * traces_per_day, unit="trace") as bar:
        summary = write_demo(paths.demo, weeks=weeks, traces_per_day=traces_per_day, seed=seed,
                             traces_dir=paths.inbox_traces, progress=bar.update)
    click.echo(f"      {summary.traces} traces into {paths.inbox_traces}; truth in {summary.answers_file}")

    click.echo("[2/3] Ingesting the inbox (Dagster run of raw/traces) ...")
    defs = build_definitions(str(paths.data_dir))
    result = run_job(defs, "ingest_job", paths)
    meta = _materialization_metadata(result, "raw/traces")
    click.echo(
        f"      ingested {meta.get('ingested')} new, {meta.get('duplicates')} duplicates, "
        f"{meta.get('quarantined')} quarantined; raw/traces holds {meta.get('dagster/row_count')} traces"
    )

    click.echo("[3/3] Sampling every week (Dagster runs of sample/sampled_traces) ...")
    results = _sample_weeks(paths, [], {})
    click.echo("")
    click.echo(_demo_summary(results))
    click.echo(f"\nWarehouse: {paths.warehouse}\nSee the runs and lineage: make ui  (http://127.0.0.1:3000)")


def _materialization_metadata(result, key: str) -> dict:
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        if mat.asset_key.to_user_string() == key:
            return {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
    return {}


def _demo_summary(results: list[dict]) -> str:
    from flywheel.core import markdown

    rows = [
        (r["week"], r["traffic"], r["sampled"], r["per_mode"].get("random", 0), r["per_mode"].get("stratified", 0),
         r["per_mode"].get("anomaly", 0), f"{r['p_random_sees_rare_failure']:.0%}")
        for r in results
    ]
    header = ["week", "traffic", "sampled", "random", "stratified", "anomaly", "P(random sees 0.5% mode)"]
    total_traffic = sum(r["traffic"] for r in results)
    total_sampled = sum(r["sampled"] for r in results)
    return (
        "Station 1 - weekly samples\n" + markdown.table(header, rows)
        + f"\n\n{total_sampled} of {total_traffic} traces sampled. The last column is the essay's warning: a "
        "random slice alone rarely sees a failure mode at 0.5% prevalence; strata and anomalies are what find it."
    )


if __name__ == "__main__":  # pragma: no cover
    main()
