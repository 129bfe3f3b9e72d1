"""Opening the DuckDB warehouse: late, briefly, and patiently.

DuckDB lets one process write a database file at a time. A second writer (the web UI launching a run
while `flywheel ingest` is loading, say) gets an IOException saying the file is locked; we retry with
backoff instead of failing the run.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb

from flywheel.core.common import lake
from flywheel.core.common.lake import Lake

LOCK_MARKERS = ("Could not set lock", "Conflicting lock", "database is locked")


class WarehouseBusy(RuntimeError):
    """Another process held the warehouse for longer than we waited; the message names it."""


def _is_lock_error(exc: Exception) -> bool:
    return any(marker in str(exc) for marker in LOCK_MARKERS)


def lock_holder(message: str) -> str:
    """Who holds the lock, from DuckDB's error ("... held in /usr/bin/python3 (PID 123)"): the command
    as the person typed it (`flywheel review`, `dagster dev`) when /proc shows it, else the program."""
    found = re.search(r"held in (.+?) \(PID (\d+)\)", message)
    if not found:
        return "another process"
    program, pid = found.groups()
    try:
        argv = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace").split("\0")
    except OSError:
        argv = [program]
    argv = [a for a in argv if a]
    if len(argv) > 1 and os.path.basename(argv[0]).startswith("python"):
        argv = argv[1:]  # `python .venv/bin/flywheel review` reads as `flywheel review`
    words = [os.path.basename(argv[0])] + argv[1:3] if argv else [os.path.basename(program)]
    return f"{' '.join(words)} (PID {pid})"


def open_connection(path: str | Path | Lake, *, read_only: bool = False, timeout_s: float = 60.0) -> duckdb.DuckDBPyConnection:
    """A connection to the warehouse: the DuckDB file at `path` (retried while another process holds
    it), or the DuckLake a `Lake` names (no file lock: several processes write at once)."""
    if isinstance(path, Lake):
        return _configured(lake.connect_lake(path, read_only=read_only))
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        try:
            conn = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as exc:
            if not _is_lock_error(exc):
                raise
            if time.monotonic() > deadline:
                raise WarehouseBusy(f"the warehouse {path} is in use by {lock_holder(str(exc))} and stayed locked for "
                                    f"{timeout_s:.0f} s: try again when it has finished") from None
            time.sleep(delay + random.uniform(0, delay))
            delay = min(delay * 2, 2.0)
    return _configured(conn)


def _configured(conn: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    # Timestamps are stored as UTC; make naive strings mean UTC whatever the machine's zone.
    conn.execute("SET TimeZone = 'UTC'")
    # DuckDB's own progress bar would interleave with ours and with CI logs.
    conn.execute("SET enable_progress_bar = false")
    return conn


@contextlib.contextmanager
def connect(path: str | Path | Lake, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    conn = open_connection(path, read_only=read_only)
    try:
        yield conn
    finally:
        conn.close()


def table_exists(conn: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_catalog = current_database() "
        "AND table_schema = ? AND table_name = ?",
        [schema, table],
    ).fetchone()
    return bool(row and row[0])


def create_table(conn: duckdb.DuckDBPyConnection, ddl: str) -> None:
    """CREATE TABLE as written on the single file; on DuckLake without the constraints it does not keep."""
    conn.execute(lake.portable_ddl(ddl) if lake.on_lake(conn) else ddl)


def rollback_quietly(conn: duckdb.DuckDBPyConnection) -> None:
    """Roll back the open transaction, if there is one: a failed COMMIT or BEGIN leaves none, and
    the error worth raising is the one that brought us here."""
    try:
        conn.execute("ROLLBACK")
    except duckdb.TransactionException:
        pass


@contextlib.contextmanager
def transaction(conn: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """BEGIN, then COMMIT on success or ROLLBACK on any error."""
    conn.execute("BEGIN TRANSACTION")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        rollback_quietly(conn)
        raise


@contextlib.contextmanager
def setting(conn: duckdb.DuckDBPyConnection, name: str, value: str) -> Iterator[None]:
    """A DuckDB setting changed for the block, and put back as it was after it."""
    previous = conn.execute("SELECT current_setting(?)", [name]).fetchone()[0]
    conn.execute(f"SET {name} = ?", [value])
    try:
        yield
    finally:
        conn.execute(f"SET {name} = ?", [previous])
