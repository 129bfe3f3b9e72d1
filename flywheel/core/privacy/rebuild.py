"""Rewriting the warehouse file so that deleted values leave its bytes.

DuckDB does not overwrite what it deletes. Measured here (DuckDB 1.5, a 20,000-row table with 30 rows
holding a planted e-mail address, then `DELETE` of those rows):

| after                                   | copies of the value left in the file |
| --------------------------------------- | ------------------------------------ |
| DELETE + CHECKPOINT                     | 30 (rows are only marked deleted)    |
| PRAGMA force_checkpoint                 | 30                                   |
| VACUUM + CHECKPOINT                     | 30                                   |
| the table rewritten (CTAS, DROP)        | 30 (the old blocks are freed, never zeroed) |
| close                                   | 30                                   |
| COPY FROM DATABASE into a fresh file    | 0                                    |

(An UPDATE happens to rewrite the updated column's segments at checkpoint, but not the row's other
columns, and freed blocks keep whatever they held until they are reused.) So an erasure rebuilds the
file: `COPY FROM DATABASE` into a new file beside it (schemas, tables, views and constraints; 0.4 s
for the six-month demo's 10 MB), a check that every table has the same row count, and an atomic rename
over the old name. The old connection stays open, holding DuckDB's write lock, until the new file is
in place, so no other process can write to the old file in between; it was checkpointed first, so it
has no write-ahead log that could be mistaken for the new file's. The old file's blocks are then
overwritten with zeros through a handle kept open (best effort: a copy-on-write filesystem or an SSD
may keep the old blocks on the device).

It costs time and space proportional to the warehouse (a second copy while it runs), which is why the
weekly retention does not do it: deleted raw traces leave the file as DuckDB reuses the freed blocks,
and the next `flywheel forget` rebuilds it anyway.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from flywheel.core.common import lake
from flywheel.core.common.db import transaction
from flywheel.core.common.durable import fsync_path

ZERO_CHUNK = 1 << 20


class RebuildError(RuntimeError):
    pass


@dataclass
class Rebuilt:
    bytes_before: int
    bytes_after: int
    seconds: float
    lake_tables: int = 0  # on DuckLake: the tables rewritten (no file is rebuilt there)


def _tables(conn: duckdb.DuckDBPyConnection, catalog: str) -> list[tuple[str, str]]:
    return conn.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = ? AND NOT temporary ORDER BY 1, 2",
        [catalog],
    ).fetchall()


def _counts(conn: duckdb.DuckDBPyConnection, catalog: str) -> dict[tuple[str, str], int]:
    return {(s, t): conn.execute(f'SELECT count(*) FROM "{catalog}"."{s}"."{t}"').fetchone()[0]
            for s, t in _tables(conn, catalog)}


def rebuild(conn: duckdb.DuckDBPyConnection, path: str | Path, finish_sql: list[tuple[str, list]] = ()) -> Rebuilt:
    """Copy the database `conn` has open (read-write, the only connection to it in this process) into
    a fresh file and put it in place of `path`. `finish_sql` runs on the new copy before it is closed
    (with `{db}` standing for its catalog), e.g. to record that the rebuild happened. Closes `conn`.
    Raises RebuildError, leaving the old file as it was, when the copy is not complete."""
    started = time.monotonic()
    path = Path(path)
    fresh = path.with_name(f".{path.name}.rebuild")
    for leftover in (fresh, Path(f"{fresh}.wal")):
        leftover.unlink(missing_ok=True)
    catalog = conn.execute("SELECT current_database()").fetchone()[0]
    conn.execute("CHECKPOINT")
    if Path(f"{path}.wal").exists() and Path(f"{path}.wal").stat().st_size:
        raise RebuildError(f"{path}.wal is not empty after a checkpoint (another connection holds a transaction open); "
                           "nothing was rebuilt")
    quoted = str(fresh).replace("'", "''")
    conn.execute(f"ATTACH '{quoted}' AS flywheel_rebuild")
    try:
        conn.execute(f'COPY FROM DATABASE "{catalog}" TO flywheel_rebuild')
        if _counts(conn, catalog) != _counts(conn, "flywheel_rebuild"):
            raise RebuildError("the rebuilt warehouse does not hold the same rows as the old one; nothing was replaced")
        for sql, params in finish_sql:
            conn.execute(sql.format(db="flywheel_rebuild"), params)
    except BaseException:
        conn.execute("DETACH flywheel_rebuild")
        fresh.unlink(missing_ok=True)
        raise
    conn.execute("DETACH flywheel_rebuild")  # checkpoints the copy: it leaves no log behind
    if Path(f"{fresh}.wal").exists():
        raise RebuildError(f"{fresh}.wal was left behind; nothing was replaced")
    before = path.stat()
    os.chmod(fresh, before.st_mode & 0o777)
    fsync_path(fresh)
    old = os.open(path, os.O_WRONLY)
    try:
        os.replace(fresh, path)  # atomic: readers see the old file or the new one, never a mix
        fsync_path(path.parent)
        conn.close()  # nothing changed since the checkpoint, so closing writes nothing to the old file
        _zero(old, before.st_size)
    finally:
        os.close(old)
    return Rebuilt(before.st_size, path.stat().st_size, time.monotonic() - started)


def _zero(fd: int, size: int) -> None:
    """Overwrite the replaced file (no longer linked; only this handle reaches it) with zeros."""
    chunk = bytes(ZERO_CHUNK)
    os.lseek(fd, 0, os.SEEK_SET)
    left = size
    while left > 0:
        left -= os.write(fd, chunk[:min(left, ZERO_CHUNK)])
    os.fsync(fd)


def purge_lake(conn) -> int:
    """Leave no trace of deleted rows in a DuckLake, the lake's counterpart of rebuild(): a DuckLake
    DELETE only marks rows in a delete file, old snapshots keep the data files that hold them (time
    travel), and the catalog's table statistics keep the smallest and largest value a column ever
    held. Every table is rewritten from its live rows (new files, fresh statistics), then every older
    snapshot is expired and the files only they used are deleted. Measured here: after this, neither
    the data folder nor a dump of the PostgreSQL catalog holds a deleted value. Returns the number of
    tables rewritten."""
    tables = conn.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = ? ORDER BY 1, 2", [lake.CATALOG],
    ).fetchall()
    with transaction(conn):
        for schema, table in tables:
            conn.execute(f'CREATE OR REPLACE TABLE "{schema}"."{table}" AS SELECT * FROM "{schema}"."{table}"')
    conn.execute(f"CALL ducklake_expire_snapshots('{lake.CATALOG}', older_than => now())").fetchall()
    conn.execute(f"CALL ducklake_cleanup_old_files('{lake.CATALOG}', cleanup_all => true)").fetchall()
    return len(tables)
