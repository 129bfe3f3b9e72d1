"""flywheel evalset: the versioned eval set (station 4)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from flywheel.cli.common import data_dir_option, main, paths_for


@main.group("evalset")
def evalset_group() -> None:
    """The versioned eval set: import the starter suite, export a version, compare two."""


def _connect(data_dir: Path | None):
    from flywheel.core.db import open_connection

    return open_connection(paths_for(data_dir).warehouse)


@evalset_group.command("import")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@data_dir_option
def evalset_import(path: Path, data_dir: Path | None) -> None:
    """Load the team's existing suite (CSV or JSONL) as version 1.

    Columns: input (text, or a JSON list of {role, content}), expected (or expected_behaviour),
    optional taxonomy_code, optional criterion (type:value, e.g. contains:30 days, refusal), optional
    adversarial (true/false), optional added_at. Without a criterion, an expected answer of up to 8
    words must match exactly (equals) and a longer one must appear in the reply (contains). All rows
    are validated; a file with any bad row imports nothing, and each problem is listed by row and column.
    """
    from flywheel.core import evalset

    with _connect(data_dir) as conn:
        try:
            version = evalset.import_starter(conn, path)
        except evalset.EvalSetError as exc:
            raise click.ClickException(str(exc)) from None
        written = evalset.export_versions(conn, paths_for(data_dir).exports)
        n = evalset.rows_at(conn, version).height
    click.echo(f"Imported {n} rows as version {version}" + (f"; exported {written[0]}" if written else "") + ".")


@evalset_group.command("export")
@click.option("--version", type=int, help="Default: the latest.")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@data_dir_option
def evalset_export(version: int | None, fmt: str, output: Path, data_dir: Path | None) -> None:
    """Write one version's rows in the eval row contract."""
    from flywheel.core import evalset

    with _connect(data_dir) as conn:
        latest = evalset.latest_version(conn)
        if not latest or (version and not 1 <= version <= latest):
            raise click.ClickException(f"no eval set version {version or ''} (versions: 1..{latest})" if latest
                                       else "the eval set is empty: flywheel evalset import FILE")
        n = evalset.export(conn, output, version, fmt)
    click.echo(f"Wrote {n} rows of version {version or latest} to {output}.")


@evalset_group.command("diff")
@click.argument("a", type=int)
@click.argument("b", type=int)
@click.option("--json", "as_json", is_flag=True)
@data_dir_option
def evalset_diff(a: int, b: int, as_json: bool, data_dir: Path | None) -> None:
    """Rows added and removed between versions A and B, and how many they share."""
    from flywheel.core import evalset

    with _connect(data_dir) as conn:
        d = evalset.diff(conn, a, b)
    if as_json:
        click.echo(json.dumps(d, indent=2))
        return
    click.echo(f"v{a} -> v{b}: {len(d['added'])} added, {len(d['removed'])} removed, {len(d['common'])} in common")
    for rid in d["added"]:
        click.echo(f"  + {rid}")
    for rid in d["removed"]:
        click.echo(f"  - {rid}")


@evalset_group.command("versions")
@data_dir_option
def evalset_versions(data_dir: Path | None) -> None:
    """Every version: rows added, active rows, adversarial share, what caused it."""
    from flywheel.core import evalset
    from flywheel.core.markdown import table

    with _connect(data_dir) as conn:
        rows = evalset.versions(conn)
    click.echo(table(["version", "created", "added", "active", "adversarial", "cause"],
                     [(v["version"], f"{v['created_at']:%Y-%m-%d %H:%M}", v["rows_added"], v["active_rows"],
                       f"{v['adversarial_share']:.0%}", v["cause"]) for v in rows]) if rows else "No versions yet.")
