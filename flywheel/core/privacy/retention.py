"""Retention: raw traffic is kept `raw_days` days, and only until the loop is done with it.

A raw trace is deleted when both hold:

* its timestamp is more than `raw_days` days before now (the clock's now: FLYWHEEL_NOW when pinned), and
* its week (the Monday-to-Monday partition its timestamp falls in) has been sampled and scrubbed:
  both `sample/sampled_traces` and `scrub/anonymized_traces` have that partition.

A trace past the cutoff in a week that was never sampled (traffic older than the first partition, a
week nobody ran) is kept and counted as waiting: deleting it would lose traffic the loop never saw.
A sampled trace's raw id (raw.sample_ids) is deleted with its raw trace. A quarantined record is deleted once it was quarantined more than `raw_days` days ago (a bad record
is never sampled; it was reported when it came in). An input file under <data>/inbox/traces is
deleted once its records have all left the warehouse, it is older than the cutoff and it is still the
file the manifest (raw.ingested_files) recorded, so it is never read again; the manifest stays.

Scrubbed traces, labels, eval rows, drift scores and the manifest are not raw and stay. `raw_days = 0`
keeps raw traffic forever. Deleted rows leave the file's bytes as DuckDB reuses their blocks;
`flywheel forget` rebuilds the file when a value must be gone at once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb

from flywheel.core.common.db import table_exists, transaction


@dataclass
class RetentionReport:
    raw_days: int
    cutoff: dt.datetime | None  # None: raw traffic is kept forever
    traces_deleted: int = 0
    quarantine_deleted: int = 0
    traces_waiting: int = 0  # past the cutoff, in a week not yet sampled and scrubbed
    inbox_files_deleted: int = 0
    traces_kept: int = 0

    def to_json(self) -> dict:
        return asdict(self)


def cutoff(now: dt.datetime, raw_days: int) -> dt.datetime | None:
    return None if raw_days <= 0 else now - dt.timedelta(days=raw_days)


def apply_retention(conn: duckdb.DuckDBPyConnection, *, raw_days: int, now: dt.datetime,
                    processed_weeks: Iterable[dt.datetime], inbox: Path | None = None) -> RetentionReport:
    """Delete expired raw traces and quarantine records in one transaction, then the input files
    nothing in the warehouse comes from any more. Counts only: nothing here reads a value."""
    report = RetentionReport(raw_days, cutoff(now, raw_days))
    if not table_exists(conn, "raw", "traces"):
        return report
    if report.cutoff is None:
        report.traces_kept = conn.execute("SELECT count(*) FROM raw.traces").fetchone()[0]
        return report
    weeks = sorted({dt.datetime.combine(w.date() if isinstance(w, dt.datetime) else w, dt.time()) for w in processed_weeks})
    expired = """"timestamp" < $cutoff"""
    done = """date_trunc('week', "timestamp") IN (SELECT unnest($weeks::TIMESTAMP[]))"""
    params = {"cutoff": report.cutoff, "weeks": weeks}
    with transaction(conn):
        report.traces_deleted, report.traces_waiting = conn.execute(
            f"SELECT count(*) FILTER (WHERE {done}), count(*) FILTER (WHERE NOT ({done})) FROM raw.traces WHERE {expired}",
            params).fetchone()
        if report.traces_deleted:
            conn.execute(f"DELETE FROM raw.traces WHERE {expired} AND {done}", params)
        if table_exists(conn, "raw", "sample_ids"):
            # The sample's raw ids go with their raw traces (the sample keeps its keyed references).
            conn.execute("DELETE FROM raw.sample_ids s WHERE NOT EXISTS (SELECT 1 FROM raw.traces t WHERE t.trace_id = s.trace_id)")
        if table_exists(conn, "raw", "quarantine"):
            report.quarantine_deleted = conn.execute(
                "SELECT count(*) FROM raw.quarantine WHERE quarantined_at < ?", [report.cutoff]).fetchone()[0]
            if report.quarantine_deleted:
                conn.execute("DELETE FROM raw.quarantine WHERE quarantined_at < ?", [report.cutoff])
    report.traces_kept = conn.execute("SELECT count(*) FROM raw.traces").fetchone()[0]
    if inbox is not None:
        report.inbox_files_deleted = _expire_inbox_files(conn, inbox, report.cutoff)
    return report


def _expire_inbox_files(conn: duckdb.DuckDBPyConnection, inbox: Path, before: dt.datetime) -> int:
    """Delete input files under `inbox` ingested before the cutoff that no raw trace or quarantine
    record comes from any more, if their content is still what the manifest recorded (so a file
    changed since, which the next ingest would read, is never touched)."""
    if not table_exists(conn, "raw", "ingested_files"):
        return 0
    quarantine = ("AND f.file_name NOT IN (SELECT DISTINCT source_file FROM raw.quarantine WHERE source_file IS NOT NULL)"
                  if table_exists(conn, "raw", "quarantine") else "")
    candidates = conn.execute(
        f"""SELECT f.file_name, list(DISTINCT f.sha256) FROM raw.ingested_files f
            WHERE f.ingested_at < ?
              AND f.file_name NOT IN (SELECT DISTINCT source_file FROM raw.traces WHERE source_file IS NOT NULL) {quarantine}
            GROUP BY 1 HAVING max(f.ingested_at) < ?""", [before, before]).fetchall()
    root = Path(inbox).resolve()
    deleted = 0
    for name, hashes in candidates:
        path = Path(name)
        try:
            if not (path.is_file() and path.resolve().is_relative_to(root)) or _sha256(path) not in hashes:
                continue
            path.unlink()
        except OSError:
            continue  # gone already, or not ours to delete: kept, tried again next week
        deleted += 1
    return deleted


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
