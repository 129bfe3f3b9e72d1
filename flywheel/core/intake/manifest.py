"""The manifest (raw.ingested_files) agrees with the rows (raw.traces), even after a torn commit.

A batch of files is one transaction: its rows, its quarantined records and one manifest row per file
all carry the batch's moment in `ingested_at` (no other batch has that moment), so a file's rows
find their manifest row by (file name, moment). Killed during COMMIT, DuckDB 1.5 sometimes keeps a
batch's rows but not its manifest rows, although both were written in one transaction. Left so, a
file whose rows are loaded looks never ingested, and is read again as all duplicates.

So every ingest starts by `reconcile`: rows of a (file, moment) with no manifest row get one, marked
as recovered by its unknown content hash (sha256 NULL): the file is in the manifest with the rows
the warehouse holds. When a file of that name is ingested again, its records that match those
rows line for line and id for id are taken back into the new batch (`adopt_torn_rows`), so the
file is reported as loaded once, not as its own duplicates, and the recovered manifest row gives way
to the new batch's full one (`settle_torn`).

Manifest rows written before the manifest carried the batch's moment held the clock reading at the
end of the batch, which matches no moment: such an older row of the file, within LEGACY_WINDOW of a
(file, moment) and claiming rows, accounts for it. (Not any older row of the file: retention deletes
old rows, and a file name comes back week after week.)
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

import duckdb

from flywheel.core.common.db import rollback_quietly

# How far from its batch's moment an older manifest row can be: the length of one batch, with room.
LEGACY_WINDOW = dt.timedelta(hours=1)


@dataclass(frozen=True)
class RecoveredBatch:
    """Rows of one file that a torn commit left without their manifest row."""

    file: str
    ingested_at: dt.datetime
    rows: int


def reconcile(conn: duckdb.DuckDBPyConnection) -> list[RecoveredBatch]:
    """Give every (file, moment) of raw.traces without one a manifest row; returns what it found.
    Only rows intake wrote (with a file and a moment) are looked at."""
    groups = conn.execute(
        """SELECT source_file, ingested_at, count(*) FROM raw.traces
           WHERE source_file IS NOT NULL AND ingested_at IS NOT NULL GROUP BY ALL"""
    ).fetchall()
    if not groups:
        return []
    recorded = conn.execute("SELECT file_name, ingested_at, ingested FROM raw.ingested_files").fetchall()
    torn = unrecorded(groups, recorded)
    if torn:
        _record(conn, torn)
    return torn


def unrecorded(
    groups: list[tuple[str, dt.datetime, int]], recorded: list[tuple[str, dt.datetime, int | None]],
) -> list[RecoveredBatch]:
    """The (file, moment, rows) groups no manifest row accounts for: none has their moment, and no
    older manifest row of the file pairs with them (see the module's last paragraph)."""
    by_file: dict[str, list[tuple[dt.datetime, int]]] = defaultdict(list)
    for file, at, rows in groups:
        by_file[file].append((at, rows))
    recorded_by_file: dict[str, list[tuple[dt.datetime, int | None]]] = defaultdict(list)
    for file, at, ingested in recorded:
        recorded_by_file[file].append((at, ingested))
    torn = []
    for file, found in by_file.items():
        mine = recorded_by_file.get(file, [])
        recorded_moments = {at for at, _ in mine}
        unmatched = sorted((at, rows) for at, rows in found if at not in recorded_moments)
        if not unmatched:
            continue
        group_moments = {at for at, _ in found}
        older = [at for at, ingested in mine if at not in group_moments and (ingested or 0) > 0]
        torn += [RecoveredBatch(file, at, rows) for at, rows in unmatched if not _pair_older(at, older)]
    return torn


def _pair_older(moment: dt.datetime, older: list[dt.datetime]) -> bool:
    """Take the older manifest row nearest `moment` within LEGACY_WINDOW, if there is one."""
    near = [at for at in older if abs(at - moment) <= LEGACY_WINDOW]
    if not near:
        return False
    older.remove(min(near, key=lambda at: abs(at - moment)))
    return True


def _record(conn: duckdb.DuckDBPyConnection, torn: list[RecoveredBatch]) -> None:
    """The recovered manifest rows, in one short transaction. Their quarantined count is what
    raw.quarantine holds of the batch; duplicates, size and content hash are unknown."""
    conn.execute("BEGIN TRANSACTION")
    try:
        for batch in torn:
            conn.execute(
                """INSERT INTO raw.ingested_files
                   SELECT ?, NULL, NULL, ?, NULL,
                          (SELECT count(*) FROM raw.quarantine WHERE source_file = ? AND quarantined_at = ?), ?""",
                [batch.file, batch.rows, batch.file, batch.ingested_at, batch.ingested_at],
            )
        conn.execute("COMMIT")
    except BaseException:
        rollback_quietly(conn)
        raise


def torn_moments(conn: duckdb.DuckDBPyConnection) -> dict[str, list[dt.datetime]]:
    """File name -> moments of its recovered manifest rows (those `reconcile` wrote)."""
    found: dict[str, list[dt.datetime]] = defaultdict(list)
    recovered = conn.execute("SELECT file_name, ingested_at FROM raw.ingested_files WHERE sha256 IS NULL").fetchall()
    for file, at in recovered:
        found[file].append(at)
    return dict(found)


def adopt_torn_rows(
    conn: duckdb.DuckDBPyConnection, checked: str, file: str, moments: list[dt.datetime], ingested_at: dt.datetime,
) -> None:
    """Rows a torn commit left of `file` become the current batch's where the file, read again,
    holds the same valid record on the same line (same trace id): they were this file's load.
    `checked` is a table of the reference query's output. A row the file no longer matches keeps
    its recovered manifest row."""
    conn.execute(
        f"""UPDATE raw.traces t SET ingested_at = ?
            FROM {checked} v
            WHERE v.reason IS NULL AND t.source_file = ? AND list_contains(?, t.ingested_at)
              AND t.source_line = v.line AND t.trace_id = v.trace_id""",
        [ingested_at, file, moments],
    )


def settle_torn(conn: duckdb.DuckDBPyConnection, file: str) -> None:
    """After adopting: a recovered manifest row of `file` with no rows left goes, one with rows
    left counts them."""
    its_rows = "FROM raw.traces t WHERE t.source_file = m.file_name AND t.ingested_at = m.ingested_at"
    conn.execute(
        f"""DELETE FROM raw.ingested_files m
            WHERE m.file_name = ? AND m.sha256 IS NULL AND NOT EXISTS (SELECT 1 {its_rows})""",
        [file],
    )
    conn.execute(
        f"""UPDATE raw.ingested_files m SET ingested = (SELECT count(*) {its_rows})
            WHERE m.file_name = ? AND m.sha256 IS NULL""",
        [file],
    )
