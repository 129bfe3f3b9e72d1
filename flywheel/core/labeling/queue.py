"""The review queue: scrubbed sampled traces without a label yet, anomalies first, then strata, then
random picks; within each, the most doubtful judge scores first.

Each trace is queued once. The sampler scrubs a trace in one week only; a trace its own week had
sampled before drift put it among its month's most distant is shown there with drift_focus added to
its reasons (and reviewed with the strata), rather than a second time in the drift-focus week. A
warehouse written before that rule may still hold such a trace in two weeks: the earliest is queued.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import polars as pl

from flywheel.core.evalset import versions as evalset
from flywheel.core.common.db import table_exists, transaction
from flywheel.core.drift.score import nearest
from flywheel.core.drift.embeddings import Embedder, embed, user_text
from flywheel.core.labeling.labels import ensure_tables
from flywheel.core.privacy import routing

PRIORITY = """CASE WHEN list_contains(a.modes, 'anomaly') THEN 0
                   WHEN list_contains(a.modes, 'stratified') OR f.in_focus THEN 1 ELSE 2 END"""
QUEUE_COLUMNS = ("week_start", "trace_ref", "priority", "reasons", "judge_score", "intent", "cohort", "turns",
                 "timestamp", "messages")


def review_queue(conn: duckdb.DuckDBPyConnection, week_start: dt.datetime | None = None) -> pl.DataFrame:
    """Unlabelled scrubbed traces (of one week, or all), in review order."""
    if not table_exists(conn, "scrub", "anonymized_traces"):
        return pl.DataFrame(schema={c: pl.String for c in QUEUE_COLUMNS})
    ensure_tables(conn)
    where = "AND a.week_start = $week" if week_start else ""
    # Drift's most distant traces (keyed refs, like the queue's): the drift-focus list of every month.
    focus = ("SELECT DISTINCT trace_ref, true AS in_focus FROM drift.high_distance_traces"
             if table_exists(conn, "drift", "high_distance_traces") else
             "SELECT NULL::VARCHAR AS trace_ref, true AS in_focus WHERE false")
    return conn.execute(
        f"""WITH focus AS ({focus}),
            first_week AS (  -- a warehouse written before the one-week rule may hold a trace in two weeks
              SELECT trace_ref, min(week_start) AS week_start FROM scrub.anonymized_traces GROUP BY trace_ref
            )
            SELECT a.week_start, a.trace_ref, {PRIORITY} AS priority,
                   CASE WHEN f.in_focus AND NOT list_contains(a.reasons, 'drift_focus')
                        THEN list_append(a.reasons, 'drift_focus') ELSE a.reasons END AS reasons,
                   a.judge_score, a.intent, a.cohort, a.turns, a.timestamp, a.messages
            FROM scrub.anonymized_traces a
            JOIN first_week w ON w.trace_ref = a.trace_ref AND w.week_start = a.week_start
            LEFT JOIN focus f ON f.trace_ref = a.trace_ref
            WHERE NOT EXISTS (SELECT 1 FROM label.labels l WHERE l.trace_ref = a.trace_ref) {where}
            ORDER BY a.week_start, priority, abs(coalesce(a.judge_score, 0.5) - 0.5), a.timestamp, a.trace_ref""",
        {"week": week_start} if week_start else {},
    ).pl().pipe(routing.shape_frame)  # scrubbed rows written before routing fields were shaped may hold raw ones


def mark_adversarial_candidates(conn: duckdb.DuckDBPyConnection, queue: pl.DataFrame, embedder: Embedder,
                                threshold: float = 0.6) -> pl.DataFrame:
    """Flag guardrail trips on prompts unlike any adversarial eval row (best cosine similarity below
    threshold): the attacker doing the taxonomy's work. Candidates go first in the queue."""
    tripped = [("guardrail_tripped" in (r or [])) for r in queue["reasons"].to_list()] if queue.height else []
    candidate = [False] * queue.height
    if any(tripped):
        rows = evalset.rows_at(conn)
        adversarial = rows.filter(pl.col("adversarial")) if rows.height else rows
        idx = [i for i, t in enumerate(tripped) if t]
        prompts = embed(conn, embedder, [user_text(queue["messages"][i]) for i in idx])
        if adversarial.height:
            known = embed(conn, embedder, [user_text(m) for m in adversarial["input"].to_list()])
            best, _ = nearest(prompts, known)
        else:
            best = np.full(len(idx), -1.0)  # no adversarial row yet: every trip is new
        for i, similarity in zip(idx, best):
            candidate[i] = bool(similarity < threshold)
    marked = queue.with_columns(pl.Series("adversarial_candidate", candidate, dtype=pl.Boolean))
    return marked.with_row_index("_order").sort(["week_start", "priority", "adversarial_candidate", "_order"],
                                                descending=[False, False, True, False]).drop("_order")


def with_candidate_flags(conn: duckdb.DuckDBPyConnection, queue: pl.DataFrame) -> pl.DataFrame:
    """The adversarial-candidate flag from the weekly snapshot (label.review_queue, computed with the
    real embedder), candidates first within their priority; False where the snapshot has no row."""
    if not queue.height or "adversarial_candidate" in queue.columns:
        return queue
    flags = (conn.execute("SELECT DISTINCT trace_ref, adversarial_candidate FROM label.review_queue").pl()
             if table_exists(conn, "label", "review_queue") else
             pl.DataFrame(schema={"trace_ref": pl.String, "adversarial_candidate": pl.Boolean}))
    marked = queue.join(flags.unique("trace_ref"), on="trace_ref", how="left", maintain_order="left").with_columns(
        pl.col("adversarial_candidate").fill_null(False))
    return marked.with_row_index("_order").sort(["week_start", "priority", "adversarial_candidate", "_order"],
                                                descending=[False, False, True, False]).drop("_order")


def write_queue(conn: duckdb.DuckDBPyConnection, week_start: dt.datetime, embedder: Embedder | None = None) -> pl.DataFrame:
    """Snapshot the week's queue into label.review_queue (delete the week, insert), for the UI."""
    queue = review_queue(conn, week_start)
    if embedder is not None and queue.height:
        queue = mark_adversarial_candidates(conn, queue, embedder)
    elif "adversarial_candidate" not in queue.columns:
        queue = queue.with_columns(pl.lit(False).alias("adversarial_candidate"))
    if not table_exists(conn, "scrub", "anonymized_traces"):
        return queue
    conn.execute("CREATE SCHEMA IF NOT EXISTS label")
    conn.register("queue_snapshot", queue)
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS label.review_queue AS SELECT * FROM queue_snapshot WHERE false")
        with transaction(conn):
            conn.execute("DELETE FROM label.review_queue WHERE week_start = ?", [week_start])
            conn.execute("INSERT INTO label.review_queue SELECT * FROM queue_snapshot")
    finally:
        conn.unregister("queue_snapshot")
    return queue


def format_conversation(messages: list[dict], width: int | None = None) -> str:
    """'user: ...' lines, one per message, as a reviewer reads them."""
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages)
