"""flywheel demo: SIMULATED traffic and the whole loop on it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from flywheel.cli.common import data_dir_option, main, paths_for, progress
from flywheel.cli.sample import run_weeks
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
    run_job(defs, "pass_rates_job", paths, raise_on_error=False)
    # Monthly drift over the demo's months, each against the current eval set.
    last_day = dt.date(2026, 3, 2) + dt.timedelta(weeks=weeks) - dt.timedelta(days=1)
    month = dt.date(2026, 3, 1)
    while month <= last_day:
        run_job(defs, "monthly_drift_job", paths, partition_key=month.isoformat())
        month = (month + dt.timedelta(days=32)).replace(day=1)
    click.echo("")
    click.echo(_demo_summary(results))
    click.echo("")
    click.echo(_scrub_summary(paths, results))
    click.echo("")
    click.echo(_label_summary(paths, labelled))
    click.echo("")
    click.echo(_evalset_summary(paths))
    click.echo("")
    click.echo(_drift_summary(paths))
    click.echo(f"\nWarehouse: {paths.warehouse}\nSee the runs, lineage and checks: make ui  (http://127.0.0.1:3000)")


def _drift_summary(paths: Paths) -> str:
    from flywheel.core import drift_station, markdown
    from flywheel.core.db import connect

    with connect(paths.warehouse) as conn:
        months = drift_station.history(conn)
    return (
        "Station 5 - drift per month (100 production traces against the current eval set)\n"
        + markdown.table(["month", "score", "95% CI", "p vs previous month", "alert", "tail share", "reverse coverage"],
                         [(f"{m['month']:%Y-%m}", f"{m['score']:.3f}", f"{m['ci_low']:.3f}-{m['ci_high']:.3f}",
                           "-" if m["p_value"] is None else f"{m['p_value']:.4f}", "ALERT" if m["alert"] else "",
                           "-" if m["tail_share"] is None else f"{m['tail_share']:.0%}", f"{m['reverse_coverage']:.0%}")
                          for m in months])
    )


def _evalset_summary(paths: Paths) -> str:
    from flywheel.core import evalset, markdown, regression
    from flywheel.core.db import connect

    with connect(paths.warehouse) as conn:
        history = evalset.versions(conn)
        rates = regression.pass_rates(conn)
    exports = sorted(p.name for p in paths.exports.glob("eval_set_v*.jsonl"))
    rate = {(r["eval_version"], r["slice"]): r for r in rates}

    def pct(version, slice_):
        r = rate.get((version, slice_))
        return f"{r['pass_rate']:.0%} (n={r['n']})" if r else "-"

    return (
        "Station 4 - eval set versions and the simulated model's pass rates\n"
        + markdown.table(["version", "rows added", "active", "adversarial share", "pass rate", "adversarial",
                          "shared rows: before -> now", "cause"],
                         [(v["version"], v["rows_added"], v["active_rows"], f"{v['adversarial_share']:.0%}",
                           pct(v["version"], "overall"), pct(v["version"], "adversarial"),
                           f"{pct(v['version'], 'shared with previous version: before')} -> "
                           f"{pct(v['version'], 'shared with previous version: now')}", v["cause"]) for v in history])
        + "\nA lower pass rate on a new version with the shared rows unchanged is a harder set, not a regression."
        + f"\nExports (written once each): {', '.join(exports)} in {paths.exports}"
    )


def _label_summary(paths: Paths, labelled) -> str:
    from flywheel.core import markdown
    from flywheel.core.db import connect

    with connect(paths.warehouse, read_only=True) as conn:
        looked = conn.execute("SELECT count(*) FROM label.current_labels").fetchone()[0]
        queued = conn.execute("SELECT count(*) FROM scrub.anonymized_traces").fetchone()[0]
        codes = conn.execute(
            """SELECT taxonomy_code, count(*), any_value(t.created_from) FROM label.current_labels l
               JOIN label.taxonomy t ON t.code = l.taxonomy_code GROUP BY 1 ORDER BY 2 DESC"""
        ).fetchall()
        pii = conn.execute("SELECT count(*) FROM label.current_labels WHERE NOT pii_ok").fetchone()[0]
        buckets = dict(conn.execute("SELECT bucket, count(*) FROM label.current_labels GROUP BY 1").fetchall())
    share = buckets.get("not_a_bug", 0) / max(1, looked)
    siblings = labelled.get("sibling", 0)
    return (
        f"Station 3 - {looked} of {queued} scrubbed traces labelled (reviewer demo-simulated; "
        f"{sum(labelled.values())} in this run): " + ", ".join(f"{k} {v}" for k, v in sorted(buckets.items()))
        + f"; {share:.0%} of what was looked at is not a bug (the essay: about a third).\n"
        + markdown.table(["taxonomy code", "labels", "origin"],
                         [(c, n, "seed" if origin == "seed" else "new, found in review") for c, n, origin in codes])
        + (f"\nSiblings of the new failure mode accepted from the last 30 days (embedding search): {siblings}"
           if siblings else "")
        + f"\nLabels whose scrubbed text still held PII (sent to residue): {pii}"
    )


def _scrub_summary(paths: Paths, results: list[dict]) -> str:
    from flywheel.core import markdown
    from flywheel.core.db import connect
    from flywheel.core.scrub.residue import summary

    with connect(paths.warehouse, read_only=True) as conn:
        rows = summary(conn)
        layers = conn.execute(
            """SELECT c.layer, sum(c.n) FROM scrub.scrub_report r, unnest(r.entity_counts) AS u(c) GROUP BY 1 ORDER BY 1"""
        ).fetchall()
    failed = [r["week"] for r in results for name, passed in r["checks"] if name == "no_pii_canary_leak" and not passed]
    leak_line = ("PII canary leak check: passed every week (no demo PII value or vocabulary entry in any scrubbed trace)."
                 if not failed else f"PII canary leak check FAILED for weeks {', '.join(failed)}: see the UI.")
    return (
        "Station 2 - scrubbed before anyone reads them\n"
        + markdown.table(["entity class", "findings", "traces with findings", "misses reported"],
                         [(r["entity_type"], r["findings"], r["traces_with_findings"], r["misses_reported"]) for r in rows])
        + "\n\nFindings per layer: " + ", ".join(f"{layer} {n}" for layer, n in layers)
        + "\n" + leak_line
    )


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
