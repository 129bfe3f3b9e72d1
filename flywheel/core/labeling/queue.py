"""The review queue: scrubbed sampled traces without a label yet, anomalies first, then strata, then
random picks; within each, the most doubtful judge scores first."""

from __future__ import annotations

import datetime as dt

import duckdb
import polars as pl

from flywheel.core.db import table_exists
from flywheel.core.labeling.labels import ensure_tables

PRIORITY = """CASE WHEN list_contains(a.modes, 'anomaly') THEN 0
                   WHEN list_contains(a.modes, 'stratified') THEN 1 ELSE 2 END"""
QUEUE_COLUMNS = ("week_start", "trace_ref", "priority", "reasons", "judge_score", "intent", "cohort", "turns",
                 "timestamp", "messages")


def review_queue(conn: duckdb.DuckDBPyConnection, week_start: dt.datetime | None = None) -> pl.DataFrame:
    """Unlabelled scrubbed traces (of one week, or all), in review order."""
    if not table_exists(conn, "scrub", "anonymized_traces"):
        return pl.DataFrame(schema={c: pl.String for c in QUEUE_COLUMNS})
    ensure_tables(conn)
    where = "AND a.week_start = $week" if week_start else ""
    return conn.execute(
        f"""SELECT a.week_start, a.trace_ref, {PRIORITY} AS priority, a.reasons, a.judge_score, a.intent, a.cohort,
                   a.turns, a.timestamp, a.messages
            FROM scrub.anonymized_traces a
            WHERE NOT EXISTS (SELECT 1 FROM label.labels l WHERE l.trace_ref = a.trace_ref) {where}
            ORDER BY a.week_start, priority, abs(coalesce(a.judge_score, 0.5) - 0.5), a.timestamp, a.trace_ref""",
        {"week": week_start} if week_start else {},
    ).pl()


def write_queue(conn: duckdb.DuckDBPyConnection, week_start: dt.datetime) -> pl.DataFrame:
    """Snapshot the week's queue into label.review_queue (delete the week, insert), for the UI."""
    queue = review_queue(conn, week_start)
    if not table_exists(conn, "scrub", "anonymized_traces"):
        return queue
    conn.execute("CREATE SCHEMA IF NOT EXISTS label")
    conn.register("queue_snapshot", queue)
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS label.review_queue AS SELECT * FROM queue_snapshot WHERE false")
        conn.execute("BEGIN TRANSACTION")
        conn.execute("DELETE FROM label.review_queue WHERE week_start = ?", [week_start])
        conn.execute("INSERT INTO label.review_queue SELECT * FROM queue_snapshot")
        conn.execute("COMMIT")
    finally:
        conn.unregister("queue_snapshot")
    return queue


def format_conversation(messages: list[dict], width: int | None = None) -> str:
    """'user: ...' lines, one per message, as a reviewer reads them."""
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages)
