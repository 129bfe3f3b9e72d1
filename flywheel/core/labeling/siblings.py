"""Siblings of a new failure mode: the scrubbed traces of the last 30 days nearest to the one that
revealed it, by sentence-embedding similarity of what the user asked."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np

from flywheel.core.drift.embeddings import Embedder, embed, user_text


def find_siblings(
    conn: duckdb.DuckDBPyConnection, embedder: Embedder, trace_ref: str, k: int = 5, window_days: int = 30,
) -> list[dict]:
    """Up to k unlabelled scrubbed traces from the window_days before (and the week of) the given
    trace, most similar first, each with its similarity."""
    row = conn.execute("SELECT timestamp, messages FROM scrub.anonymized_traces WHERE trace_ref = ?", [trace_ref]).fetchone()
    if row is None:
        raise KeyError(f"no scrubbed trace {trace_ref!r}")
    when, messages = row
    candidates = conn.execute(
        """SELECT a.trace_ref, a.messages FROM scrub.anonymized_traces a
           WHERE a.trace_ref <> ? AND a.timestamp >= ? AND a.timestamp < ?
             AND NOT EXISTS (SELECT 1 FROM label.labels l WHERE l.trace_ref = a.trace_ref)
           ORDER BY a.trace_ref""",
        [trace_ref, when - dt.timedelta(days=window_days), when + dt.timedelta(days=7)],
    ).fetchall()
    if not candidates:
        return []
    vectors = embed(conn, embedder, [user_text(messages)] + [user_text(m) for _, m in candidates])
    similarity = vectors[1:] @ vectors[0]
    order = np.argsort(-similarity, kind="stable")[:k]
    return [{"trace_ref": candidates[i][0], "messages": candidates[i][1], "similarity": float(similarity[i])}
            for i in order]
