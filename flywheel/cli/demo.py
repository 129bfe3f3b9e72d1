"""flywheel demo: SIMULATED traffic and the whole loop on it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from flywheel.cli.common import data_dir_option, main, paths_for, progress
from flywheel.paths import Paths


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

    with progress("generate", total=weeks * 7 * traces_per_day, unit="trace") as bar:
        summary = write_demo(out, weeks=weeks, traces_per_day=traces_per_day, seed=seed, start=start, progress=bar.update)
    click.echo(
        f"Wrote {summary.traces} traces in {len(summary.trace_files)} files to {out / 'traces'} "
        f"({summary.failures} failures, {summary.adversarial} adversarial, cohorts {summary.by_cohort}).\n"
        f"Hidden truth: {summary.answers_file}\nCustomer vocabulary: {summary.vocabulary_file}\n"
        f"Product words for the scrubber to keep: {summary.keep_terms_file}\n"
        f"Starter eval set: {summary.eval_set_file}"
    )


@demo.command("run")
@click.option("--weeks", type=click.IntRange(1, 520), default=27, show_default=True,
              help="Weeks of traffic from 2026-03-02 (27: March to August, six months); the enterprise cohort "
              "arrives in week 11.")
@click.option("--traces-per-day", type=click.IntRange(1), default=60, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@data_dir_option
def demo_run(weeks: int, traces_per_day: int, seed: int, data_dir: Path | None) -> None:
    """Replay months of SIMULATED help-desk traffic through the whole loop, as Dagster runs, and
    print the story.

    Every week: the week's traffic lands in the inbox, weekly_loop_job ingests, samples, scrubs and
    queues it; a simulated reviewer labels the queue; labels_sensor folds the labels into a new eval
    set version; the simulated model build in production runs it. Every month: drift and
    retirement. One incident, re-sampled once by incident_sensor. Runs, lineage and checks are in
    the data directory's Dagster instance, so `make ui` shows them afterwards. Rerunning is safe:
    files already ingested are skipped, partitions rewritten, labels and versions not added twice.
    """
    import shutil

    from flywheel.core.common import clock
    from flywheel.core.evalset import versions as evalset
    from flywheel.core.common.db import connect
    from flywheel.definitions import build_definitions
    from flywheel.defs.runner import run_job
    from flywheel.demo.generator import DEFAULT_START, write_demo
    from flywheel.demo.replay import replay
    from flywheel.resources.embedder import load_embedder

    paths = paths_for(data_dir, need_warehouse=False)
    click.echo(f"[1/3] Generating {weeks} weeks x {traces_per_day} traces/day of SIMULATED traffic from {DEFAULT_START} ...")
    with progress("generate", total=weeks * 7 * traces_per_day, unit="trace") as bar:
        summary = write_demo(paths.demo, weeks=weeks, traces_per_day=traces_per_day, seed=seed, progress=bar.update)
    # The simulated CRM export becomes the scrubber's customer vocabulary, and Relay's own words its
    # keep list.
    paths.reference.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(summary.vocabulary_file, paths.customer_vocabulary)
    shutil.copyfile(summary.keep_terms_file, paths.keep_terms)
    click.echo(f"      {summary.traces} traces in {paths.demo / 'traces'}, to land in {paths.inbox_traces} week "
               f"by week; hidden truth in {summary.answers_file}")
    with clock.pinned_at(dt.datetime.combine(DEFAULT_START, dt.time(9))), connect(paths.warehouse) as conn:
        if evalset.latest_version(conn) == 0:
            evalset.import_starter(conn, summary.eval_set_file)
            click.echo(f"      the team's March spreadsheet ({summary.eval_set_file}) is eval set version 1")
    defs = build_definitions(str(paths.data_dir))
    run_job(defs, "taxonomy_job", paths)

    click.echo(f"[2/3] Replaying {weeks} Mondays: weekly loop, review, fold-in, regression; drift and retirement "
               "monthly (Dagster runs) ...")
    embedder = load_embedder()
    with progress("weeks", total=weeks, unit="week") as bar:
        def report(week) -> None:
            bar.update(1)
            tqdm_write(_week_line(week))

        outcomes = replay(paths, defs, summary, weeks, embedder=embedder, on_week=report)

    click.echo("[3/3] The story")
    _print_story(paths, outcomes)


def tqdm_write(line: str) -> None:
    from tqdm import tqdm

    tqdm.write(line)


def _week_line(week) -> str:
    labelled = sum(v for k, v in week.labelled.items() if k != "sibling")
    failures = week.labelled.get("known_failure", 0) + week.labelled.get("new_failure", 0)
    parts = [f"      {week.week}: {week.traffic} traces, {week.sample.get('sampled', 0)} sampled, "
             f"{labelled} labelled ({failures} failures)"]
    if week.labelled.get("new_failure"):
        parts.append("new failure mode found")
    if week.new_versions:
        parts.append("eval set " + ", ".join(f"v{v}" for v in week.new_versions))
    if week.regression:
        parts.append("ran " + "; ".join(week.regression))
    if week.months_scored:
        parts.append("drift + retirement for " + ", ".join(week.months_scored))
    failed = [name for name, passed in week.checks if not passed and name == "no_pii_canary_leak"]
    if failed:
        parts.append("PII CANARY LEAK CHECK FAILED")
    line = " | ".join(parts)
    return line + (f"\n      {week.incident}" if week.incident else "")


def _print_story(paths: Paths, outcomes) -> None:
    from flywheel.cli import summary

    results = [{"week": o.week, **o.sample, "checks": o.checks} for o in outcomes]
    labelled: dict[str, int] = {}
    for o in outcomes:
        for k, v in o.labelled.items():
            labelled[k] = labelled.get(k, 0) + v
    incident = next((o.incident for o in outcomes if o.incident), None)
    sections = [
        summary.story_summary(paths),
        summary.sample_summary(results) + (f"\nIncident: {incident}" if incident else ""),
        summary.scrub_summary(paths, results),
        summary.label_summary(paths, labelled),
        summary.evalset_summary(paths),
        summary.drift_summary(paths),
    ]
    click.echo("\n\n".join(sections))
    click.echo(f"\nWarehouse: {paths.warehouse}\n" + summary.ui_summary())
