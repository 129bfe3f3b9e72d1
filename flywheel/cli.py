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


def _sample_weeks(paths: Paths, weeks: list[str], overrides: dict, job: str = "weekly_sample_job") -> list[dict]:
    """Run `job` for each week (default: every week with traffic); per-week sampling summaries."""
    from flywheel.core import sampling
    from flywheel.core.db import connect
    from flywheel.core.intake import ensure_raw_tables
    from flywheel.definitions import build_definitions
    from flywheel.defs.runner import run_job
    from flywheel.settings import SamplingSettings

    with connect(paths.warehouse) as conn:
        ensure_raw_tables(conn)
        starts = [sampling.as_week_start(w) for w in weeks] if weeks else sampling.week_starts(conn)
    if not starts:
        raise click.ClickException("raw/traces is empty: ingest some traces first (flywheel ingest PATH).")
    defs = build_definitions(str(paths.data_dir))
    run_config = {"ops": {"sample__sampled_traces": {"config": overrides}}} if overrides else None
    results = []
    for start in tqdm(starts, desc=job, unit="week", disable=not sys.stderr.isatty(), leave=False):
        key = start.date().isoformat()
        # A failed blocking check (a PII leak) stops that week's run; report it and go on with the rest.
        result = run_job(defs, job, paths, partition_key=key, run_config=run_config, raise_on_error=False)
        if not result.success and not result.is_node_success("sample__sampled_traces"):
            raise click.ClickException(f"the {job} run for week {key} failed: see run {result.run_id} in the UI")
        with connect(paths.warehouse, read_only=True) as conn:
            sample = sampling.read_sample(conn, start)
            traffic = sampling.week_traffic(conn, start)
        summary = sampling.summarize(sample, traffic, SamplingSettings(**overrides))
        checks = [(c.check_name, c.passed) for c in result.get_asset_check_evaluations()]
        for name, passed in checks:
            if not passed:
                click.echo(f"warning: week {key}: check {name} failed (run {result.run_id})", err=True)
        results.append({"week": key, "run_id": result.run_id, "success": result.success, **summary, "checks": checks})
    return results


# ---------------------------------------------------------------------------------------------
# scrub, residue
# ---------------------------------------------------------------------------------------------

SCRUB_BATCH = 256


@main.command()
@click.option("--input", "input_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help='JSON Lines: {"id", "text"} records or traces ({"trace_id", "messages"}).')
@click.option("--output", "output_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Where the scrubbed JSON Lines go.")
@click.option("--vocabulary", type=click.Path(dir_okay=False, path_type=Path),
              help="Customer vocabulary CSV (a CRM export with contact_name / company columns).")
@data_dir_option
def scrub(input_path: Path, output_path: Path, vocabulary: Path | None, data_dir: Path | None) -> None:
    """Scrub customer data out of texts or traces; stateless (touches no warehouse).

    Each output line keeps its id and gives the scrubbed `text` (or `messages`) and `spans`
    ([{start, end, entity_type, layer}], offsets into the original text; one list per message for
    traces). Bad lines are reported by number on stderr and skipped. A throughput line goes to stderr.
    """
    import time

    from flywheel.core.scrub import Scrubber
    from flywheel.core.scrub.vocabulary import CustomerVocabulary, VocabularyError

    try:
        vocab = CustomerVocabulary.from_csv(vocabulary) if vocabulary else None
    except VocabularyError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        source = open(input_path, encoding="utf-8", errors="replace")
    except OSError as exc:
        raise click.ClickException(f"{input_path}: {exc.strerror}") from None
    scrubber = Scrubber(vocabulary=vocab)
    started, texts_done, records, bad = time.perf_counter(), 0, 0, 0
    with source, open(output_path, "w", encoding="utf-8") as out, _progress("scrub", unit="rec") as bar:
        batch: list[tuple[dict, list[str]]] = []

        def flush():
            nonlocal texts_done
            for (record, _), scrubbed in zip(batch, scrubber.scrub_conversations(texts for _, texts in batch)):
                out.write(json.dumps(_scrub_output(record, scrubbed), ensure_ascii=False) + "\n")
                texts_done += len(scrubbed)
            bar.update(len(batch))
            batch.clear()

        for number, line in enumerate(source, 1):
            if not line.strip():
                continue
            parsed, reason = _scrub_input(line)
            if reason:
                bad += 1
                click.echo(f"{input_path}:{number}: {reason}; skipped", err=True)
                continue
            batch.append(parsed)
            records += 1
            if len(batch) >= SCRUB_BATCH:
                flush()
        flush()
    seconds = time.perf_counter() - started
    click.echo(
        f"scrubbed {records} records ({texts_done} texts) in {seconds:.1f} s: {texts_done / max(seconds, 1e-9):.1f} texts/s"
        + (f"; {bad} bad lines skipped" if bad else ""),
        err=True,
    )


def _scrub_input(line: str) -> tuple[tuple[dict, list[str]] | None, str | None]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc.msg} at column {exc.colno})"
    if not isinstance(record, dict):
        return None, "not a JSON object"
    if "messages" in record:
        msgs = record["messages"]
        if not isinstance(msgs, list) or not all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in msgs):
            return None, 'field "messages" must be a list of {role, content} with string content'
        if "trace_id" not in record:
            return None, 'a trace needs "trace_id"'
        return (record, [m["content"] for m in msgs]), None
    if not isinstance(record.get("text"), str):
        return None, 'expected {"id", "text"} with a string text, or a trace with "messages"'
    if "id" not in record:
        return None, 'missing "id"'
    return (record, [record["text"]]), None


def _scrub_output(record: dict, scrubbed) -> dict:
    if "messages" in record:
        return {
            "trace_id": record["trace_id"],
            "messages": [{**m, "content": s.text} for m, s in zip(record["messages"], scrubbed)],
            "spans": [[span.to_json() for span in s.spans] for s in scrubbed],
        }
    return {"id": record["id"], "text": scrubbed[0].text, "spans": [span.to_json() for span in scrubbed[0].spans]}


@main.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
@data_dir_option
@click.pass_context
def residue(ctx: click.Context, as_json: bool, data_dir: Path | None) -> None:
    """Misses per PII class: traces scrubbed, misses reviewers reported, miss rate.

    `flywheel residue add` records a miss; the review workflow records them too.
    """
    if ctx.invoked_subcommand:
        return
    from flywheel.core.db import connect
    from flywheel.core.markdown import table
    from flywheel.core.scrub.residue import summary

    paths = _paths(data_dir)
    with connect(paths.warehouse) as conn:
        rows = summary(conn)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("Nothing scrubbed yet: run the weekly loop (make demo, or flywheel sample + the scrub asset).")
        return
    click.echo(table(
        ["entity class", "traces scrubbed", "traces with findings", "findings", "misses reported", "miss rate"],
        [(r["entity_type"], r["traces_scrubbed"], r["traces_with_findings"], r["findings"], r["misses_reported"],
          f"{r['miss_rate']:.2%}") for r in rows],
    ))


@residue.command("add")
@click.option("--trace-ref", required=True, help="The scrubbed trace's reference (scrub.anonymized_traces.trace_ref).")
@click.option("--entity-type", required=True, help="Class of what leaked, e.g. PERSON, EMAIL_ADDRESS. Never the value.")
@click.option("--note", help="What kind of miss, in words (no customer data).")
@click.option("--reviewer", help="Who found it.")
@data_dir_option
def residue_add(trace_ref: str, entity_type: str, note: str | None, reviewer: str | None, data_dir: Path | None) -> None:
    """Record a scrubber miss found in a scrubbed trace."""
    from flywheel.core.db import connect
    from flywheel.core.scrub.residue import record_miss

    with connect(_paths(data_dir).warehouse) as conn:
        try:
            version = record_miss(conn, trace_ref, entity_type, note=note, reported_by=reviewer)
        except KeyError as exc:
            raise click.ClickException(str(exc.args[0])) from None
    click.echo(f"Recorded a {entity_type.upper()} miss on {trace_ref} (scrubber version {version}).")


# ---------------------------------------------------------------------------------------------
# taxonomy, labels
# ---------------------------------------------------------------------------------------------


@main.group()
def taxonomy() -> None:
    """The failure taxonomy labels use (seeded from data/reference/taxonomy.yaml)."""


def _seeded_connection(paths: Paths):
    """A warehouse connection with the taxonomy seeded from the data directory's taxonomy.yaml."""
    from flywheel.core.db import open_connection
    from flywheel.core.labeling import taxonomy as tax

    conn = open_connection(paths.warehouse)
    if paths.taxonomy_seed.exists():
        try:
            tax.seed(conn, tax.load_seed(paths.taxonomy_seed))
        except tax.TaxonomyError as exc:
            conn.close()
            raise click.ClickException(str(exc)) from None
    return conn


@taxonomy.command("list")
@click.option("--json", "as_json", is_flag=True)
@data_dir_option
def taxonomy_list(as_json: bool, data_dir: Path | None) -> None:
    """Every failure mode: code, name and where it came from."""
    from flywheel.core.labeling import taxonomy as tax
    from flywheel.core.markdown import table

    conn = _seeded_connection(_paths(data_dir))
    with conn:
        rows = tax.entries(conn)
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
    else:
        click.echo(table(["code", "name", "from"], [(r["code"], r["name"], r["created_from"]) for r in rows]))


@taxonomy.command("show")
@click.argument("code")
@data_dir_option
def taxonomy_show(code: str, data_dir: Path | None) -> None:
    """One failure mode with its definition."""
    from flywheel.core.labeling import taxonomy as tax

    conn = _seeded_connection(_paths(data_dir))
    with conn:
        found = [r for r in tax.entries(conn) if r["code"] == code]
    if not found:
        raise click.ClickException(f"no taxonomy code {code!r}; see flywheel taxonomy list")
    r = found[0]
    click.echo(f"{r['code']}: {r['name']}\n\n{r['definition']}\n\nadded {r['created_at']:%Y-%m-%d} from {r['created_from']}")


@taxonomy.command("add")
@click.option("--code", required=True, help="snake_case, e.g. enterprise_sla_ignored")
@click.option("--name", required=True)
@click.option("--definition", required=True, help="Two sentences: what goes wrong, and how to tell.")
@click.option("--from-trace", "created_from", default="manual", help="The trace ref that revealed it.")
@data_dir_option
def taxonomy_add(code: str, name: str, definition: str, created_from: str, data_dir: Path | None) -> None:
    """Add a new failure mode."""
    from flywheel.core.labeling import taxonomy as tax

    conn = _seeded_connection(_paths(data_dir))
    with conn:
        try:
            tax.add(conn, tax.TaxonomyEntry(code, name, " ".join(definition.split()), created_from))
        except tax.TaxonomyError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"Added {code}.")


@main.group()
def labels() -> None:
    """The spreadsheet round trip: export the review queue, fill in labels, import them."""


@labels.command("export")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--week", help="Only this week (any day of it); default every week with unlabelled traces.")
@data_dir_option
def labels_export(output: Path, week: str | None, data_dir: Path | None) -> None:
    """Write the unlabelled queue as CSV: context columns, then empty label columns to fill in."""
    from flywheel.core.labeling.queue import review_queue
    from flywheel.core.labeling.spreadsheet import LABEL_COLUMNS, export_queue
    from flywheel.core.sampling import as_week_start

    conn = _seeded_connection(_paths(data_dir))
    with conn:
        queue = review_queue(conn, as_week_start(week) if week else None)
    n = export_queue(queue, output)
    click.echo(f"Wrote {n} traces to review to {output}. Fill in: {', '.join(LABEL_COLUMNS)}.")


@labels.command("import")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--reviewer", help="Used for rows whose reviewer column is empty.")
@click.option("--json", "as_json", is_flag=True)
@data_dir_option
def labels_import(path: Path, reviewer: str | None, as_json: bool, data_dir: Path | None) -> None:
    """Validate every row and import the valid ones, each whole or not at all.

    Rows with errors are reported by row number and column and left out: fix them and import the same
    file again (rows already imported add nothing). Rows with an empty bucket are not reviewed yet.
    Exits 1 when any row had errors.
    """
    from flywheel.core.labeling.spreadsheet import import_labels

    conn = _seeded_connection(_paths(data_dir))
    with conn:
        try:
            report = import_labels(conn, path, default_reviewer=reviewer)
        except FileNotFoundError as exc:
            raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        click.echo(f"Imported {report.imported} labels ({report.unchanged} unchanged, {report.not_reviewed} rows "
                   f"not reviewed yet" + (f", new codes: {', '.join(report.new_codes)}" if report.new_codes else "") + ").")
        for e in report.errors:
            click.echo(f"{path}: row {e['row']}, column {e['column']}: {e['message']}", err=True)
    sys.exit(1 if report.errors else 0)


@main.command()
@click.option("--reviewer", help="Your name on the labels (default: your login).")
@data_dir_option
def review(reviewer: str | None, data_dir: Path | None) -> None:
    """Label the review queue from the terminal: anomalies first, one trace at a time.

    For each scrubbed trace: the conversation by role, why it was sampled and its judge score; then
    known failure / new failure / not a bug, the code (by number or search), expected behaviour, pass
    criterion, adversarial, and the check that the scrubbed text is clean. s skips, b goes back, q quits;
    labels are stored as you go, so the next run resumes where you stopped.
    """
    from flywheel.review import Session, default_reviewer, run

    paths = _paths(data_dir)
    conn = _seeded_connection(paths)
    with conn:
        run(Session(conn, reviewer or default_reviewer(), siblings=_sibling_finder(paths, conn)))


def _sibling_finder(paths: Paths, conn):
    """Nearest scrubbed traces of the last 30 days by sentence embedding; the model loads on first use."""

    def find(trace_ref: str, k: int) -> list[dict]:
        from flywheel.core.labeling.siblings import find_siblings
        from flywheel.resources.embedder import load_embedder

        click.echo("finding siblings (sentence embeddings, cached) ...")
        return find_siblings(conn, load_embedder(), trace_ref, k)

    return find


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

    paths = _paths(data_dir)
    click.echo(f"[1/3] Generating {weeks} weeks x {traces_per_day} traces/day of SIMULATED traffic ...")
    with _progress("generate", total=weeks * 7 * traces_per_day, unit="trace") as bar:
        summary = write_demo(paths.demo, weeks=weeks, traces_per_day=traces_per_day, seed=seed,
                             traces_dir=paths.inbox_traces, progress=bar.update)
    # The simulated CRM export becomes the scrubber's customer vocabulary, and Relay's own words its
    # keep list.
    paths.reference.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(summary.vocabulary_file, paths.customer_vocabulary)
    shutil.copyfile(summary.keep_terms_file, paths.keep_terms)
    click.echo(f"      {summary.traces} traces into {paths.inbox_traces}; truth in {summary.answers_file}")

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
    results = _sample_weeks(paths, [], {}, job="weekly_loop_job")

    click.echo("[4/4] The SIMULATED reviewer labels the top of each week's queue from the answer file ...")
    from flywheel.core import keys
    from flywheel.core.db import connect
    from flywheel.demo.reviewer import review_weeks

    from flywheel.resources.embedder import load_embedder

    with connect(paths.warehouse) as conn:
        labelled = review_weeks(conn, Path(summary.answers_file), keys.load_key(paths.data_dir),
                                embedder=load_embedder())
    click.echo("")
    click.echo(_demo_summary(results))
    click.echo("")
    click.echo(_scrub_summary(paths, results))
    click.echo("")
    click.echo(_label_summary(paths, labelled))
    click.echo(f"\nWarehouse: {paths.warehouse}\nSee the runs, lineage and checks: make ui  (http://127.0.0.1:3000)")


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
