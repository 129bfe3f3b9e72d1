"""Which traces to cluster, whether each is already covered by a taxonomy code, and label.clusters.

- a week: its review queue (scrubbed, sampled, nobody has labelled them);
- a month: its unlabelled scrubbed traces, with drift's most distant traces of the month among them
  once the drift-focus stratum has sampled (and so scrubbed) them;
- a file (`--input`): the user's own traces or queries, clustered as they are and stored nowhere.

A trace is covered when it carries a label with a taxonomy code, or when the nearest active eval row
with a code lies within the drift station's coverage distance: the eval set already tests that kind
of trace. Clusters of the warehouse's traces are stored by scope (`week:2026-03-02`,
`month:2026-03`) so `flywheel review --cluster N` and the review app open the same cluster the
listing showed; only keyed trace refs and terms of scrubbed text are stored.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from flywheel.core.common import clock
from flywheel.core.common.db import table_exists, transaction
from flywheel.core.common.records import json_lines
from flywheel.core.drift.embeddings import Embedder, embed, user_text
from flywheel.core.drift.score import nearest
from flywheel.core.evalset import versions as evalset
from flywheel.core.labeling.clusters import DEFAULT_DISTANCE, DEFAULT_MIN_SIZE, MAX_TRACES, Clustering, find_clusters
from flywheel.core.labeling.labels import ensure_tables as ensure_label_tables
from flywheel.core.labeling.queue import review_queue


@dataclass
class Traces:
    ids: list[str]  # trace refs (warehouse) or the file's ids (--input)
    messages: list[list[dict]]
    labelled_with_code: list[bool]


def week_scope(week_start: dt.date) -> str:
    return f"week:{week_start:%Y-%m-%d}"


def month_scope(month: dt.date) -> str:
    return f"month:{month:%Y-%m}"


def week_traces(conn: duckdb.DuckDBPyConnection, week_start: dt.datetime) -> Traces:
    """The week's queue in review order, the first MAX_TRACES of it (clustering keeps every pair's distance)."""
    queue = review_queue(conn, week_start).head(MAX_TRACES)
    return Traces(queue["trace_ref"].to_list(), queue["messages"].to_list(), [False] * queue.height)


def month_traces(conn: duckdb.DuckDBPyConnection, month: dt.date) -> Traces:
    if not table_exists(conn, "scrub", "anonymized_traces"):
        return Traces([], [], [])
    ensure_label_tables(conn)
    start = dt.datetime.combine(month.replace(day=1), dt.time())
    end = (start + dt.timedelta(days=32)).replace(day=1)
    focus = ("OR a.trace_ref IN (SELECT trace_ref FROM drift.high_distance_traces WHERE month = $month)"
             if table_exists(conn, "drift", "high_distance_traces") else "")
    rows = conn.execute(
        f"""SELECT a.trace_ref, any_value(a.messages), bool_or(l.taxonomy_code IS NOT NULL)
            FROM scrub.anonymized_traces a LEFT JOIN label.current_labels l USING (trace_ref)
            WHERE ((a.timestamp >= $start AND a.timestamp < $end AND l.trace_ref IS NULL) {focus})
            GROUP BY a.trace_ref ORDER BY a.trace_ref LIMIT {MAX_TRACES}""",
        {"start": start, "end": end, **({"month": start.date()} if focus else {})},
    ).fetchall()
    return Traces([r[0] for r in rows], [r[1] for r in rows], [bool(r[2]) for r in rows])


class InputError(ValueError):
    """A --input file that cannot be clustered at all: one line naming the file and where."""


def input_traces(path: Path) -> tuple[Traces, list[str]]:
    """Traces from a JSON Lines file of the trace contract ({"trace_id", "messages"}) or of plain
    queries ({"id", "text"}); and one problem per line left out, naming the line."""
    from flywheel.core.common.records import RecordsError

    try:
        lines = json_lines(path)
    except RecordsError as exc:
        raise InputError(str(exc)) from None
    ids, conversations, problems = [], [], []
    for number, record in lines:
        if isinstance(record, str):
            problems.append(f"{path}: line {number}: {record}")
            continue
        ident = record.get("trace_id", record.get("id"))
        messages = record.get("messages")
        if messages is None and isinstance(record.get("text"), str):
            messages = [{"role": "user", "content": record["text"]}]
        if not isinstance(ident, (str, int)) or isinstance(ident, bool) or str(ident) == "":
            problems.append(f"{path}: line {number}: no trace_id (or id)")
        elif not isinstance(messages, list) or not all(
                isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages):
            problems.append(f"{path}: line {number}: needs messages (a list of {{role, content}}) or text")
        else:
            ids.append(str(ident))
            conversations.append(messages)
    return Traces(ids, conversations, [False] * len(ids)), problems


def covered_by_eval_set(conn: duckdb.DuckDBPyConnection | None, embedder: Embedder, vectors: np.ndarray,
                        coverage_distance: float, roles: tuple[str, ...] = ("user",)) -> np.ndarray:
    """Per trace: is an active eval row with a taxonomy code within coverage_distance of it?"""
    if conn is None or not len(vectors) or not table_exists(conn, "eval", "versions"):
        return np.zeros(len(vectors), dtype=bool)
    version = evalset.version_as_of(conn, clock.now())
    rows = evalset.rows_at(conn, version) if version else None
    if rows is None or rows.is_empty():
        return np.zeros(len(vectors), dtype=bool)
    coded = rows.filter(pl.col("taxonomy_code").is_not_null())
    if coded.is_empty():
        return np.zeros(len(vectors), dtype=bool)
    eval_vectors = embed(conn, embedder, [user_text(m, roles) for m in coded["input"].to_list()])
    best, _ = nearest(vectors, eval_vectors)
    return (1.0 - best) <= coverage_distance


def cluster(conn: duckdb.DuckDBPyConnection | None, embedder: Embedder, traces: Traces, *, coverage_distance: float,
            distance: float = DEFAULT_DISTANCE, min_size: int = DEFAULT_MIN_SIZE, roles: tuple[str, ...] = ("user",),
            vectors: np.ndarray | None = None) -> Clustering:
    """Cluster what the users asked. The warehouse's scrubbed traces are embedded through its cache;
    a caller clustering a file passes `vectors` made in memory (raw text leaves no embedding behind),
    and conn (or None) only to tell coverage by the eval set."""
    texts = [user_text(m, roles) for m in traces.messages]
    if vectors is None:
        vectors = embed(conn, embedder, texts)
    covered = covered_by_eval_set(conn, embedder, vectors, coverage_distance, roles) | np.array(
        traces.labelled_with_code, dtype=bool)
    return find_clusters(vectors, texts, covered=covered.tolist(), distance=distance, min_size=min_size)


def ensure_table(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute("CREATE SCHEMA IF NOT EXISTS label")
    conn.execute("""CREATE TABLE IF NOT EXISTS label.clusters (
                      scope VARCHAR, cluster_id INTEGER, size INTEGER, trace_refs VARCHAR[], terms VARCHAR[],
                      covered_share DOUBLE, created_at TIMESTAMP)""")


def store(conn: duckdb.DuckDBPyConnection, scope: str, clustering: Clustering, ids: list[str]) -> None:
    """Replace the scope's clusters (a rerun rewrites, never appends). Members nearest the centre first."""
    ensure_table(conn)
    now = clock.now()
    with transaction(conn):
        conn.execute("DELETE FROM label.clusters WHERE scope = ?", [scope])
        for c in clustering.clusters:
            conn.execute("INSERT INTO label.clusters VALUES (?, ?, ?, ?, ?, ?, ?)",
                         [scope, c.cluster_id, c.size, [ids[i] for i in c.members], c.terms, c.covered_share, now])


def stored(conn: duckdb.DuckDBPyConnection, scope: str | None = None) -> list[dict]:
    """Stored clusters (of one scope, or all, newest scope first), each as a dict."""
    if not table_exists(conn, "label", "clusters"):
        return []
    where = "WHERE scope = ?" if scope else ""
    cur = conn.execute(f"SELECT * FROM label.clusters {where} ORDER BY created_at DESC, scope, cluster_id",
                       [scope] if scope else [])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def members(conn: duckdb.DuckDBPyConnection, scope: str, cluster_id: int) -> list[str] | None:
    """The cluster's trace refs, nearest its centre first; None when no such cluster is stored."""
    found = [c for c in stored(conn, scope) if c["cluster_id"] == cluster_id]
    return list(found[0]["trace_refs"]) if found else None
