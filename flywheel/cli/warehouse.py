"""flywheel warehouse: where the state lives, and moving it when one machine is not enough."""

from __future__ import annotations

from pathlib import Path

import click

from flywheel.cli.common import data_dir_option, main


@main.group()
def warehouse() -> None:
    """Where the warehouse is (the DuckDB file or a DuckLake), and moving a single file into a DuckLake."""


@warehouse.command("where")
@data_dir_option
def warehouse_where(data_dir: Path | None) -> None:
    """Print the warehouse this data directory and FLYWHEEL_WAREHOUSE name (passwords masked)."""
    from flywheel.paths import Paths

    click.echo(str(Paths(data_dir).warehouse))


@warehouse.command("migrate")
@click.option("--to", "target", required=True, metavar="ducklake:postgres:DSN",
              help="The DuckLake to move into: ducklake:postgres:<libpq connection string>, empty; its data "
                   "files go to $FLYWHEEL_LAKE_DATA (default <data>/lake).")
@click.option("--from", "source", type=click.Path(dir_okay=False, path_type=Path),
              help="The single-file warehouse to copy (default <data>/flywheel.duckdb).")
@data_dir_option
def warehouse_migrate(target: str, source: Path | None, data_dir: Path | None) -> None:
    """Copy every table and view of the single-file warehouse into an empty DuckLake and check every
    row arrived. The file is left as it was: set FLYWHEEL_WAREHOUSE to the lake when the copy is done,
    keep the same secret.key (or FLYWHEEL_SECRET), and delete the file when you no longer need it."""
    from flywheel.core.common import lake, migrate
    from flywheel.paths import resolve_data_dir

    home = resolve_data_dir(data_dir)
    try:
        to = lake.parse_target(target, home)
    except lake.WarehouseSettingError:
        to = None
    if not isinstance(to, lake.Lake):
        raise click.BadParameter(f"{lake.mask_password(target)!r} is not a DuckLake: give "
                                 "ducklake:postgres:<libpq connection string>", param_hint="--to")
    source = source or home / "flywheel.duckdb"
    click.echo(f"Copying {source} into {to}")
    try:
        copied = migrate.migrate(source, to, on_table=lambda c: click.echo(f"  {c.schema}.{c.table}: {c.rows:,} rows"))
    except migrate.MigrationError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{len(copied)} tables, {sum(c.rows for c in copied):,} rows, every one checked.\n"
               f"Now use the lake:  export {lake.WAREHOUSE_ENV}='{lake.mask_password(target)}'"
               + ("  (with your password in place of ***)" if "***" in lake.mask_password(target) else ""))
