"""flywheel forget: erase a customer along lineage (flywheel/core/privacy/erasure.py)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from flywheel.cli.common import data_dir_option, main, paths_for


def _operator(given: str | None) -> str:
    if given and given.strip():
        return given.strip()
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container user without a passwd entry
        return "unknown"


def _drift_scrubber(paths, customer_id: str, trace_ids: tuple[str, ...]):
    """The scrubber drift uses (the data directory's vocabulary and keep terms), loaded only when drift
    may have embedded their raw traces: it takes seconds to load."""
    from flywheel.core.common.db import connect
    from flywheel.core.privacy import erasure

    with connect(paths.warehouse, read_only=True) as conn:
        if not erasure.drift_may_hold(conn, customer_id, trace_ids):
            return None
    click.echo("Loading the scrubber, to find the vectors drift made from their traces ...", err=True)
    from flywheel.cli.scrub import data_scrubber

    return data_scrubber(paths)


def _span(versions: list[int]) -> str:
    if not versions:
        return "none"
    return f"v{versions[0]}" if len(versions) == 1 else f"v{versions[0]}-v{versions[-1]}" if \
        versions == list(range(versions[0], versions[-1] + 1)) else ", ".join(f"v{v}" for v in versions)


def _print(report, operator: str, reason: str | None) -> None:
    from flywheel.core.common.markdown import table

    who = f"customer {report.customer_ref}"
    if not report.changed:
        if report.dry_run:
            click.echo(f"Dry run: nothing of {who} is in the warehouse; nothing would change.")
        elif report.previous:
            last = report.previous[-1]
            click.echo(f"Nothing left to erase for {who}: erased on {last['erased_at']:%Y-%m-%d %H:%M} by "
                       f"{last['operator']} ({last['erasure_id']}). Nothing changed.")
        else:
            click.echo(f"Nothing to erase: no trace, sample, label or eval row of {who} is in the warehouse. "
                       "Nothing changed.")
        if report.exports_rewritten or report.rebuilt:
            click.echo("Finished an earlier erasure that was interrupted: "
                       + "; ".join(([f"rewrote {len(report.exports_rewritten)} export file(s)"] if report.exports_rewritten else [])
                                   + (["rebuilt the warehouse file"] if report.rebuilt else [])) + ".")
    else:
        head = (f"Dry run, nothing changed. Erasing {who} would touch:" if report.dry_run else
                f"Erased {who} (erasure {report.erasure_id}, operator {operator}"
                + (f", reason: {reason}" if reason else "") + "):")
        click.echo(head)
        click.echo(table(["table", "rows", "what happens" if report.dry_run else "what happened"],
                         [(t, n, report.actions[t]) for t, n in report.tables.items()]))
        if report.tombstoned_rows:
            would = "would be" if report.dry_run else "are"
            click.echo(f"{len(report.tombstoned_rows)} eval row(s) {would} tombstoned in every version holding them "
                       f"({_span(report.versions_with_erased_rows)}): input and expected behaviour become [erased]; row "
                       "ids, version spans and results stay, so past pass rates do not move, and each version's cause "
                       "says how many rows were erased.")
        if report.archived_in_version:
            click.echo(f"Eval set v{report.archived_in_version} archives the {report.active_rows} erased row(s) that "
                       "were active.")
        elif report.dry_run and report.active_rows:
            click.echo(f"A new eval set version would archive the {report.active_rows} that are active.")
        if report.exports_rewritten:
            click.echo(f"Rewrote {len(report.exports_rewritten)} export file(s) with the tombstones "
                       f"({_span(report.exports_rewritten)}; recorded in eval.export_rewrites).")
        if report.rebuilt and report.rebuilt.lake_tables:
            click.echo(f"Rewrote the lake's {report.rebuilt.lake_tables} tables without the erased rows and removed "
                       f"their older snapshots and data files ({report.rebuilt.seconds:.1f} s).")
        elif report.rebuilt:
            r = report.rebuilt
            click.echo(f"Rebuilt the warehouse file without the erased bytes ({r.bytes_before / 1e6:.1f} MB -> "
                       f"{r.bytes_after / 1e6:.1f} MB, {r.seconds:.1f} s).")
        if not report.dry_run:
            click.echo("The audit row is in privacy.erasures (the keyed hash of the id, never the id). "
                       "flywheel lookup --customer-id now finds nothing.")
    if report.not_erased:
        click.echo("Left in place:")
        for note in report.not_erased:
            click.echo(f"  - {note}")


@main.command()
@click.option("--customer-id", required=True, help="The customer's id as your systems know it. Only its keyed hash "
              "is stored, in the audit row.")
@click.option("--trace-id", "trace_ids", multiple=True, metavar="ID",
              help="Also erase this trace (repeatable): one without a customer id, or a quarantined line.")
@click.option("--reason", help="Why, for the audit row: a ticket or request number, not the customer's name or id.")
@click.option("--operator", help="Who, for the audit row (default: your OS user).")
@click.option("--dry-run", is_flag=True, help="List per table what would go; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON: counts and keyed hashes, never the id.")
@data_dir_option
def forget(customer_id: str, trace_ids: tuple[str, ...], reason: str | None, operator: str | None, dry_run: bool,
           as_json: bool, data_dir: Path | None) -> None:
    """Erase a customer along lineage: raw traces, quarantine, samples, scrubbed traces, queue, labels'
    free text, embeddings and drift references go; their eval rows are tombstoned in every version,
    exports rewritten, an audit row written, the database file rebuilt.

    Eval rows keep their id, version spans and results, so past versions' pass rates do not move; each
    version says how many of its rows were erased. The audit row (privacy.erasures) holds when, who,
    why, the keyed hash of the id and counts per table, never the id. Running it again changes nothing
    and says so. Needs the warehouse to itself for a moment: the file is rewritten, because DuckDB
    keeps deleted values in its bytes.
    """
    from flywheel.core.common import keys
    from flywheel.core.labeling import review_store
    from flywheel.core.privacy import erasure

    paths = paths_for(data_dir)
    key = keys.load_key(paths.data_dir)
    who = _operator(operator)
    scrubber = _drift_scrubber(paths, customer_id, trace_ids)
    try:
        report = erasure.forget(paths.warehouse, paths.exports, key, customer_id, trace_ids, operator=who, reason=reason,
                                dry_run=dry_run, scrubber=scrubber, inbox=paths.inbox_traces,
                                side_store=review_store.path_for(paths.data_dir))
    except erasure.ErasureError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2, default=str))
    else:
        _print(report, who, reason)
    if report.lookup_rows_after:
        raise click.ClickException(f"lookup still finds {report.lookup_rows_after} eval row(s) of this customer after "
                                   "the erasure: this is a bug in flywheel; report it")
