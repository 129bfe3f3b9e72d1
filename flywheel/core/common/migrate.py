"""Moving a single-file warehouse into a DuckLake, every table and view, every row.

The lake is attached to the same connection as the old file (read-only), so the copy runs inside
DuckDB, table by table in one transaction: a failure leaves the lake as it was. Tables are created
from their rows (CREATE TABLE AS), which leaves behind the keys and checks DuckLake does not keep.
The old file is not touched; the user switches FLYWHEEL_WAREHOUSE when the copy is verified.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flywheel.core.common import db, lake

SOURCE = "flywheel_single_file"


class MigrationError(RuntimeError):
    """The copy could not be made or did not hold every row; the lake was left as it was."""


@dataclass
class Copied:
    schema: str
    table: str
    rows: int


def migrate(source: Path, target: lake.Lake, on_table: Callable[[Copied], None] = lambda _: None) -> list[Copied]:
    if not source.exists():
        raise MigrationError(f"{source} does not exist: there is no single-file warehouse to move")
    conn = db.open_connection(target)
    try:
        conn.execute(f"ATTACH '{str(source).replace(chr(39), chr(39) * 2)}' AS {SOURCE} (READ_ONLY)")
        tables = conn.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = ? AND NOT temporary ORDER BY 1, 2",
            [SOURCE]).fetchall()
        views = conn.execute(
            "SELECT schema_name, view_name, sql FROM duckdb_views() WHERE database_name = ? AND NOT internal "
            "AND NOT temporary ORDER BY 1, 2", [SOURCE]).fetchall()
        present = conn.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = ? ORDER BY 1, 2",
            [lake.CATALOG]).fetchall()
        if present:
            names = ", ".join(f"{s}.{t}" for s, t in present[:3])
            raise MigrationError(f"{target} already holds tables ({names}{', ...' if len(present) > 3 else ''}): "
                                 "migrate into an empty DuckLake (a new PostgreSQL database and data folder)")
        copied = []
        with db.transaction(conn):
            for schema in sorted({s for s, _ in tables} | {s for s, _, _ in views}):
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            for schema, table in tables:
                columns = conn.execute(
                    "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = ? AND schema_name = ? "
                    "AND table_name = ? ORDER BY column_index", [SOURCE, schema, table]).fetchall()
                select = ", ".join(_as_stored_on_the_lake(name, kind) for name, kind in columns)
                conn.execute(f'CREATE TABLE "{schema}"."{table}" AS SELECT {select} FROM {SOURCE}."{schema}"."{table}"')
                rows = conn.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchone()[0]
                expected = conn.execute(f'SELECT count(*) FROM {SOURCE}."{schema}"."{table}"').fetchone()[0]
                if rows != expected:
                    raise MigrationError(f"{schema}.{table}: {rows} rows copied of {expected}; the lake was left as it was")
                copied.append(Copied(schema, table, rows))
                on_table(copied[-1])
            for schema, view, sql in views:
                conn.execute(sql)  # the view's own CREATE VIEW: its names resolve in the lake, the default catalog
        return copied
    finally:
        # Attached databases belong to the process's DuckDB, which later connections to the lake share.
        conn.execute(f"DETACH DATABASE IF EXISTS {SOURCE}")
        conn.close()


def _as_stored_on_the_lake(name: str, kind: str) -> str:
    """A column in the type the stations create it with on DuckLake: lists for fixed-size arrays
    (the embedding cache), and 128-bit integers as decimal text (raw.traces.sample_key), which
    DuckLake's Parquet files would otherwise round to doubles."""
    quoted = '"' + name.replace('"', '""') + '"'
    fixed = re.fullmatch(r"(.+)\[\d+\]", kind)
    if fixed:
        return f"{quoted}::{fixed.group(1)}[] AS {quoted}"
    if kind in ("HUGEINT", "UHUGEINT"):
        return f"{quoted}::VARCHAR AS {quoted}"
    return quoted
