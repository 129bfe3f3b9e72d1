"""flywheel taxonomy, labels and review: station 3."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import click

from flywheel.cli.common import MONTH, WEEK, data_dir_option, main, output_file, paths_for
from flywheel.paths import Paths


@main.group()
def taxonomy() -> None:
    """The failure taxonomy labels use (seeded from data/reference/taxonomy.yaml)."""


def _seeded_connection(paths: Paths):
    """A warehouse connection with the taxonomy seeded from the data directory's taxonomy.yaml."""
    from flywheel.core.common.db import open_connection
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
    from flywheel.core.common.markdown import table

    conn = _seeded_connection(paths_for(data_dir))
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

    conn = _seeded_connection(paths_for(data_dir))
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

    conn = _seeded_connection(paths_for(data_dir))
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
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), required=True, callback=output_file)
@click.option("--week", type=WEEK, help="Only this week (any day of it, YYYY-MM-DD); default every week with unlabelled traces.")
@data_dir_option
def labels_export(output: Path, week: dt.date | None, data_dir: Path | None) -> None:
    """Write the unlabelled queue as CSV: context columns, the loop's suggestion, then empty label columns.

    The suggestion columns (suggested_bucket, suggested_code, suggestion_confidence, the expected
    behaviour and pass criterion of the most similar labelled trace, similar_traces) are never a
    label: write `accept` in the bucket column to take the suggestion, or fill in your own verdict."""
    from flywheel.core.labeling.queue import review_queue, with_candidate_flags
    from flywheel.core.labeling.spreadsheet import LABEL_COLUMNS, export_queue
    from flywheel.core.labeling.suggestions import suggestions_for
    from flywheel.core.sampling.sampler import as_week_start

    conn = _seeded_connection(paths_for(data_dir))
    with conn:
        queue = with_candidate_flags(conn, review_queue(conn, as_week_start(week) if week else None))
        suggested = suggestions_for(conn, queue["trace_ref"].to_list())
    n = export_queue(queue, output, suggested)
    offered = sum(1 for s in suggested.values() if s["suggested_bucket"])
    click.echo(f"Wrote {n} traces to review to {output}. Fill in: {', '.join(LABEL_COLUMNS)}."
               + (f" {offered} have a suggestion: write accept as the bucket to take one." if offered else ""))


@labels.command("import")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--reviewer", help="Used for rows whose reviewer column is empty.")
@click.option("--json", "as_json", is_flag=True)
@data_dir_option
def labels_import(path: Path, reviewer: str | None, as_json: bool, data_dir: Path | None) -> None:
    """Validate every row, then import the whole file in one transaction, or nothing.

    Rows with errors are reported by row number and column and nothing is imported: fix them and
    import the same file again. Rows already imported with the same verdict add nothing, so importing
    a file twice adds nothing the second time. Rows with an empty bucket are not reviewed yet.
    Exits 1 when any row had errors.
    """
    from flywheel.core.labeling.spreadsheet import SpreadsheetError, import_labels

    paths = paths_for(data_dir)
    if not path.is_file():  # before the warehouse is opened and the taxonomy seeded: a typo costs nothing
        raise click.ClickException(f"{path}: no such file")
    conn = _seeded_connection(paths)
    with conn:
        try:
            report = import_labels(conn, path, default_reviewer=reviewer)
        except SpreadsheetError as exc:
            raise click.ClickException(str(exc)) from None
    header = [e for e in report.errors if e["row"] == 1 and e["message"].startswith("missing column")]
    if header and not as_json:  # not a labels spreadsheet at all: one line, not a report of nothing imported
        raise click.ClickException(f"{path}: not a labels spreadsheet (no {header[0]['column']} column in the header); "
                                   "write one with flywheel labels export --output FILE")
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    elif report.errors:
        click.echo(f"Nothing imported: {len(report.errors)} problem(s) in {path}; fix them and import the file again.")
        for e in report.errors:
            where = f"row {e['row']}, column {e['column']}" if e["column"] else f"row {e['row']}"
            click.echo(f"{path}: {where}: {e['message']}", err=True)
    else:
        click.echo(f"Imported {report.imported} labels ({report.unchanged} unchanged, {report.not_reviewed} rows "
                   f"not reviewed yet" + (f", new codes: {', '.join(report.new_codes)}" if report.new_codes else "") + ").")
    sys.exit(1 if report.errors else 0)


@main.command()
@click.option("--reviewer", help="Your name on the labels (default: your login).")
@click.option("--week", type=WEEK, help="Only this week's queue (any day of it, YYYY-MM-DD).")
@click.option("--month", type=MONTH, help="With --cluster: a cluster of this month (YYYY-MM).")
@click.option("--cluster", "cluster_id", type=int,
              help="Only this cluster from `flywheel clusters --week/--month`: its first trace opens the new "
                   "failure mode, its other members are offered as siblings.")
@data_dir_option
def review(reviewer: str | None, week: dt.date | None, month: dt.date | None, cluster_id: int | None,
           data_dir: Path | None) -> None:
    """Label the review queue from the terminal: anomalies first, one trace at a time.

    For each scrubbed trace: the conversation by role, why it was sampled and its judge score; then
    the bucket (k known failure, w new failure, o not a bug), the code (by number or search), expected
    behaviour, pass criterion (c contains, x not_contains, r regex, e equals, f refusal, u rubric),
    adversarial, and the check that the scrubbed text is clean.

    One key, one meaning: y and n answer yes-or-no questions only; s skips the trace, b goes back one,
    q quits, at every prompt that lists them; Ctrl-C or Ctrl-D quits at any prompt (Ctrl-C exits 130).
    Labels are stored as you go, so quitting keeps them and the next run resumes where you stopped.

    Where the loop has a suggestion (label.suggestions, from the labels so far), it is shown above the
    conversation with its confidence and the labelled traces it is most like; a accepts it. A
    suggestion is never a label: nothing is stored until you answer.
    """
    from flywheel.cli.review import Session, default_reviewer, run

    if cluster_id is not None and (week is None) == (month is None):
        raise click.UsageError("--cluster needs the --week or the --month it was listed for (flywheel clusters)")
    if month is not None and cluster_id is None:
        raise click.UsageError("--month only picks a cluster's month: add --cluster N, or use --week DAY")
    paths = paths_for(data_dir)
    conn = _seeded_connection(paths)  # seed the taxonomy, then hold nothing while the reviewer reads
    members = None
    with conn:
        if cluster_id is not None:
            from flywheel.core.labeling import unexplained

            scope = unexplained.week_scope(week) if week else unexplained.month_scope(month)
            members = unexplained.members(conn, scope, cluster_id)
            if members is None:
                option = f"--week {week}" if week else f"--month {month:%Y-%m}"
                raise click.ClickException(f"no cluster {cluster_id} stored for {scope.split(':')[1]}: list them "
                                           f"with flywheel clusters {option}")
    run(Session(paths.warehouse, reviewer or default_reviewer(), siblings=_sibling_finder(paths), cluster=members,
                week=week if cluster_id is None else None))


def _sibling_finder(paths: Paths):
    """Nearest scrubbed traces of the last 30 days by sentence embedding; the model loads on first use."""

    def find(trace_ref: str, k: int) -> list[dict]:
        from flywheel.core.common.db import connect
        from flywheel.core.labeling.siblings import find_siblings
        from flywheel.resources.embedder import load_embedder

        click.echo("finding siblings (sentence embeddings, cached) ...")
        embedder = load_embedder()  # before the warehouse opens: loading the model takes seconds
        with connect(paths.warehouse) as conn:
            return find_siblings(conn, embedder, trace_ref, k)

    return find


