"""Station 5 for one month: draw production traces, scrub them, embed, score against the eval set.

The month's traces are drawn from all of production (raw.traces, deterministically by their sample
key), not from the weekly samples, which over-represent anomalies and strata. They are scrubbed in
memory before anything is embedded; only keyed references, distances and embeddings of scrubbed text
are stored.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import polars as pl

from flywheel.core.common import clock
from flywheel.core.evalset import versions as evalset
from flywheel.core.common import markdown
from flywheel.core.common.db import table_exists, transaction
from flywheel.core.drift.score import DriftResult, drift
from flywheel.core.drift.embeddings import CacheStats, Embedder, embed, user_text
from flywheel.settings import DriftSettings


def month_bounds(month: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(month.replace(day=1), dt.time())
    end = (start + dt.timedelta(days=32)).replace(day=1)
    return start, end


def draw_month(conn: duckdb.DuckDBPyConnection, month: dt.date, n: int) -> list[tuple[str, list[dict]]]:
    """(trace_id, messages) of n traces of the month, the same n on every run."""
    start, end = month_bounds(month)
    return conn.execute(
        "SELECT trace_id, messages FROM raw.traces WHERE timestamp >= ? AND timestamp < ? ORDER BY sample_key::UHUGEINT LIMIT ?",
        [start, end, n],
    ).fetchall()


def scrubbed_texts(scrubber, traces: list[tuple[str, list[dict]]], roles: tuple[str, ...] = ("user",)) -> list[str]:
    conversations = [[m["content"] for m in msgs] for _, msgs in traces]
    out = []
    for (_, msgs), scrubbed in zip(traces, scrubber.scrub_conversations(conversations)):
        out.append(user_text([{"role": m["role"], "content": s.text} for m, s in zip(msgs, scrubbed)], roles))
    return out


def source_months(conn: duckdb.DuckDBPyConnection, rows: pl.DataFrame) -> list[dt.date | None]:
    """For each eval row, the month of the production trace it was folded in from (None for rows from
    a spreadsheet), found through the scrubbed trace it came from."""
    months: dict[str, dt.date] = {}
    if table_exists(conn, "scrub", "anonymized_traces"):
        months = dict(conn.execute(
            """SELECT trace_ref, date_trunc('month', min(timestamp))::DATE FROM scrub.anonymized_traces
               WHERE trace_ref IN (SELECT unnest(?::VARCHAR[])) GROUP BY 1""",
            [[r for r in rows["source_trace_ref"].to_list() if r]],
        ).fetchall())
    return [months.get(ref) if ref else None for ref in rows["source_trace_ref"].to_list()]


def score_month(
    conn: duckdb.DuckDBPyConnection, month: dt.date, scrubber, embedder: Embedder, trace_ref,
    settings: DriftSettings | None = None, stats: CacheStats | None = None,
) -> tuple[DriftResult, pl.DataFrame] | None:
    """The month's drift against the eval set current now (clock.now(): a rerun pinned to the same moment
    scores against the same version, so it picks the same focus traces) with last month, rescored against
    the same set, as the baseline; and its traces by distance, most distant first. None when the month or
    the eval set is empty."""
    settings = settings or DriftSettings()
    version = evalset.version_as_of(conn, clock.now())
    rows = evalset.rows_at(conn, version) if version else None
    current = draw_month(conn, month, settings.traces_per_month)
    if rows is None or rows.is_empty() or not current:
        return None
    roles = tuple(settings.text_roles)
    eval_vectors = embed(conn, embedder, [user_text(m, roles) for m in rows["input"].to_list()], stats)
    current_vectors = embed(conn, embedder, scrubbed_texts(scrubber, current, roles), stats)
    previous_month = month.replace(day=1) - dt.timedelta(days=1)
    previous = draw_month(conn, previous_month, settings.traces_per_month)
    baseline_vectors = embed(conn, embedder, scrubbed_texts(scrubber, previous, roles), stats) if previous else None
    sourced = source_months(conn, rows)
    this_month, last_month = month.replace(day=1), previous_month.replace(day=1)
    result, distances = drift(eval_vectors, current_vectors, baseline_vectors, alpha=settings.alpha,
                              coverage_distance=settings.coverage_distance,
                              current_rows=np.array([m != this_month for m in sourced]),
                              baseline_rows=np.array([m != last_month for m in sourced]))
    ranked = pl.DataFrame({"trace_ref": [trace_ref(tid) for tid, _ in current], "distance": distances})
    return result, ranked.sort("distance", descending=True)


def ensure_tables(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute("CREATE SCHEMA IF NOT EXISTS drift")
    conn.execute(
        """CREATE TABLE IF NOT EXISTS drift.scores (
             month DATE, eval_version INTEGER, score DOUBLE, ci_low DOUBLE, ci_high DOUBLE, p_value DOUBLE,
             alert BOOLEAN, tail_share DOUBLE, reverse_coverage DOUBLE, n_current INTEGER, n_eval INTEGER)"""
    )
    conn.execute("CREATE TABLE IF NOT EXISTS drift.high_distance_traces (month DATE, trace_ref VARCHAR, distance DOUBLE)")


def store(conn: duckdb.DuckDBPyConnection, month: dt.date, result: DriftResult, ranked: pl.DataFrame, keep: int) -> None:
    """Replace the month's score and high-distance traces (a rerun rewrites, never appends)."""
    ensure_tables(conn)
    month = month.replace(day=1)
    top = ranked.head(keep)
    version = evalset.version_as_of(conn, clock.now())
    with transaction(conn):
        conn.execute("DELETE FROM drift.scores WHERE month = ?", [month])
        conn.execute("DELETE FROM drift.high_distance_traces WHERE month = ?", [month])
        conn.execute("INSERT INTO drift.scores VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     [month, version, result.score, result.ci_low, result.ci_high, result.p_value,
                      result.alert, result.tail_share, result.reverse_coverage, result.n_current, result.n_eval])
        for ref, distance in top.iter_rows():
            conn.execute("INSERT INTO drift.high_distance_traces VALUES (?, ?, ?)", [month, ref, float(distance)])


def history_markdown(months: list[dict]) -> str:
    """The drift history as a table, for the UI and the terminal alike."""
    return markdown.table(
        ["month", "eval v", "score", "95% CI", "p vs previous month", "alert", "tail share", "reverse coverage"],
        [(f"{m['month']:%Y-%m}", m["eval_version"], f"{m['score']:.3f}", f"{m['ci_low']:.3f}-{m['ci_high']:.3f}",
          "-" if m["p_value"] is None else f"{m['p_value']:.4f}", "ALERT" if m["alert"] else "",
          "-" if m["tail_share"] is None else f"{m['tail_share']:.0%}", f"{m['reverse_coverage']:.0%}") for m in months],
    )


def history(conn: duckdb.DuckDBPyConnection) -> list[dict]:
    ensure_tables(conn)
    cur = conn.execute("SELECT * FROM drift.scores ORDER BY month")
    return [dict(zip([d[0] for d in cur.description], r)) for r in cur.fetchall()]
