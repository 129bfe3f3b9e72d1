"""flywheel demo: SIMULATED traffic and the whole loop on it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from flywheel.cli.common import data_dir_option, main, paths_for, progress
from flywheel.cli.sample import run_weeks
from flywheel.cli.summary import drift_summary, evalset_summary, label_summary, sample_summary, scrub_summary
from flywheel.settings import Paths


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
@click.option("--weeks", type=click.IntRange(1, 520), default=16, show_default=True,
              help="Weeks of traffic from 2026-03-02; the enterprise cohort arrives in week 11.")
@click.option("--traces-per-day", type=click.IntRange(1), default=60, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@data_dir_option
def demo_run(weeks: int, traces_per_day: int, seed: int, data_dir: Path | None) -> None:
    """Generate demo traffic into the inbox and run the loop on it as Dagster runs.

    For now: ingest (raw/traces), then for every week the sample (station 1) and the scrub
    (station 2); later stations join as they land. Rerunning is safe: files already ingested are
    skipped, partitions rewritten.
    """
    import shutil

    from flywheel.definitions import build_definitions
    from flywheel.defs.runner import run_job
    from flywheel.demo.generator import write_demo

    paths = paths_for(data_dir)
    click.echo(f"[1/4] Generating {weeks} weeks x {traces_per_day} traces/day of SIMULATED traffic ...")
    with progress("generate", total=weeks * 7 * traces_per_day, unit="trace") as bar:
        summary = write_demo(paths.demo, weeks=weeks, traces_per_day=traces_per_day, seed=seed,
                             traces_dir=paths.inbox_traces, progress=bar.update)
    # The simulated CRM export becomes the scrubber's customer vocabulary, and Relay's own words its
    # keep list.
    paths.reference.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(summary.vocabulary_file, paths.customer_vocabulary)
    shutil.copyfile(summary.keep_terms_file, paths.keep_terms)
    click.echo(f"      {summary.traces} traces into {paths.inbox_traces}; truth in {summary.answers_file}")

    from flywheel.core import evalset
    from flywheel.core.db import connect

    with connect(paths.warehouse) as conn:
        if evalset.latest_version(conn) == 0:
            evalset.import_starter(conn, summary.eval_set_file)
            click.echo(f"      the team's March spreadsheet ({summary.eval_set_file}) is eval set version 1")

    click.echo("[2/4] Ingesting the inbox (Dagster run of raw/traces) ...")
    defs = build_definitions(str(paths.data_dir))
    result = run_job(defs, "ingest_job", paths)
    meta = _materialization_metadata(result, "raw/traces")
    click.echo(
        f"      ingested {meta.get('ingested')} new, {meta.get('duplicates')} duplicates, "
        f"{meta.get('quarantined')} quarantined; raw/traces holds {meta.get('dagster/row_count')} traces"
    )

    click.echo("[3/4] Weekly loop for every week: sample, scrub, queue (Dagster runs of weekly_loop_job) ...")
    run_job(defs, "taxonomy_job", paths)
    results = run_weeks(paths, [], {}, job="weekly_loop_job")
    incident_line = _demo_incident(paths, defs, weeks)

    click.echo("[4/4] The SIMULATED reviewer labels each week's queue; fold-in; the SIMULATED model runs every version ...")
    from flywheel.core import keys
    from flywheel.core.db import connect
    from flywheel.demo.reviewer import review_weeks
    from flywheel.resources.embedder import load_embedder

    with connect(paths.warehouse) as conn:
        labelled = review_weeks(conn, Path(summary.answers_file), keys.load_key(paths.data_dir),
                                embedder=load_embedder())
    run_job(defs, "fold_in_job", paths)
    from flywheel.core import evalset, regression
    from flywheel.demo import model

    with connect(paths.warehouse) as conn:
        regression.ensure_table(conn)
        ran = {v for (v,) in conn.execute("SELECT DISTINCT eval_version FROM regression.results").fetchall()}
        for version in range(1, evalset.latest_version(conn) + 1):
            if version not in ran:  # a rerun does not add a second run of the same version
                regression.run_regression(conn, model.relay_assist, version=version, model_version=model.MODEL_VERSION,
                                          rubric_judge=model.rubric_judge)
    # The gate check fails on the demo's numbers; the summary below says why, the UI shows the check.
    run_job(defs, "pass_rates_job", paths, raise_on_error=False, log_level="CRITICAL")
    # Monthly drift over the demo's months, each against the current eval set.
    last_day = dt.date(2026, 3, 2) + dt.timedelta(weeks=weeks) - dt.timedelta(days=1)
    month = dt.date(2026, 3, 1)
    while month <= last_day:
        run_job(defs, "monthly_drift_job", paths, partition_key=month.isoformat(), raise_on_error=False)
        month = (month + dt.timedelta(days=32)).replace(day=1)
    click.echo("")
    click.echo(sample_summary(results))
    if incident_line:
        click.echo(incident_line)
    click.echo("")
    click.echo(scrub_summary(paths, results))
    click.echo("")
    click.echo(label_summary(paths, labelled))
    click.echo("")
    click.echo(evalset_summary(paths))
    click.echo("")
    click.echo(drift_summary(paths))
    click.echo(f"\nWarehouse: {paths.warehouse}\nSee the runs, lineage and checks: make ui  (http://127.0.0.1:3000)")


def _materialization_metadata(result, key: str) -> dict:
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        if mat.asset_key.to_user_string() == key:
            return {k: getattr(v, "value", v) for k, v in mat.metadata.items()}
    return {}


def _demo_incident(paths: Paths, defs, weeks: int) -> str | None:
    """One incident, as on-call would declare it: an SSO outage hitting enterprise customers in the
    demo's first enterprise week. Re-samples that week once, as the incident_sensor would."""
    from flywheel.core import incidents
    from flywheel.core.db import connect
    from flywheel.defs.runner import run_job

    start = dt.date(2026, 3, 2) + dt.timedelta(weeks=10, days=1)
    if weeks < 12:
        return None
    inc = incidents.new_incident(f"{start}T00:00:00", f"{start + dt.timedelta(days=2)}T00:00:00", cohort="enterprise",
                                 note="SIMULATED: SSO outage for enterprise tenants")
    incidents.write(inc, paths.inbox_incidents)
    import dagster as dg

    from flywheel.defs.runner import instance

    # Once, as the sensor's run key would make it: a rerun of the demo finds the incident's runs.
    if not instance(paths).get_runs(filters=dg.RunsFilter(tags={"flywheel/incident": inc.incident_id})):
        for week in inc.weeks():
            run_job(defs, "weekly_loop_job", paths, partition_key=f"{week:%Y-%m-%d}", raise_on_error=False,
                    tags={"flywheel/incident": inc.incident_id})
    with connect(paths.warehouse, read_only=True) as conn:
        tagged = conn.execute("SELECT count(*) FROM sample.sampled_traces WHERE list_contains(reasons, ?)",
                              [f"incident:{inc.incident_id}"]).fetchone()[0]
    return (f"\nIncident {inc.incident_id} ({inc.note}): week of {inc.weeks()[0]:%Y-%m-%d} re-sampled once, "
            f"{tagged} traces tagged incident:{inc.incident_id}.")
