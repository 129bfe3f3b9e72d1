"""Retirement: rows the model has stopped failing move to the archive; archived rows that fail again
come back.

The essay's rule, made exact: an active row that failed a regression run at some point, and then has
at least one result in each of the last two calendar months with no failure in either, retires. A
row that never failed is coverage, not a solved problem, and stays; a month without results does not
count, so a row nobody ran stays. Adversarial rows never retire: an attack the model resists today is
the regression test of tomorrow's build, and retiring them would erode the 5-10% share the essay asks
the suite to hold. Archived rows keep being run; one that fails after it was retired
is reinstated in a new version, and the run reports it as an alert.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import polars as pl

from flywheel.core.evalset import versions as evalset
from flywheel.core.evalset import regression


def previous_month(month: dt.date) -> dt.date:
    return (month.replace(day=1) - dt.timedelta(days=1)).replace(day=1)


def next_month(month: dt.date) -> dt.date:
    return (month.replace(day=1) + dt.timedelta(days=32)).replace(day=1)


def candidates(conn: duckdb.DuckDBPyConnection, month: dt.date) -> dict[str, str]:
    """row_id -> reason, for active rows that failed before and passed every run of `month` and the
    month before it."""
    m1 = month.replace(day=1)
    m0 = previous_month(m1)
    end = next_month(m1)
    active = evalset.rows_at(conn)
    if active.is_empty():
        return {}
    conn.register("active_rows", active.filter(~pl.col("adversarial")).select("row_id"))
    try:
        rows = conn.execute(
            """SELECT r.row_id FROM regression.results r JOIN active_rows USING (row_id)
               WHERE r.run_at < ?
               GROUP BY r.row_id
               HAVING count(*) FILTER (WHERE r.run_at >= ? AND r.run_at < ?) > 0
                  AND count(*) FILTER (WHERE r.run_at >= ?) > 0
                  AND bool_and(r.passed) FILTER (WHERE r.run_at >= ?)
                  AND bool_or(NOT r.passed) FILTER (WHERE r.run_at < ?)""",
            [end, m0, m1, m1, m0, m0],
        ).fetchall()
    finally:
        conn.unregister("active_rows")
    reason = f"failed before {m0:%Y-%m}, no failure in {m0:%Y-%m} or {m1:%Y-%m}"
    return {r[0]: reason for r in sorted(rows)}


def comebacks(conn: duckdb.DuckDBPyConnection) -> list[str]:
    """Archived rows with a failed result after the version that retired them."""
    return [r[0] for r in conn.execute(
        """SELECT DISTINCT e.row_id FROM eval.eval_rows e
           JOIN eval.versions v ON v.version = e.version_retired
           JOIN regression.results r ON r.row_id = e.row_id AND NOT r.passed AND r.run_at > v.created_at
           WHERE e.version_retired IS NOT NULL ORDER BY 1"""
    ).fetchall()]


def run_month(conn: duckdb.DuckDBPyConnection, month: dt.date) -> dict:
    """Retire and reinstate once `month` has ended; one version for both, if anything."""
    regression.ensure_table(conn)
    evalset.ensure_tables(conn)
    retire, back = candidates(conn, month), comebacks(conn)
    version = evalset.change_rows(
        conn, retire=retire, reinstate=back,
        cause=f"{month:%Y-%m} retirement: {len(retire)} retired, {len(back)} reinstated after failing again",
    )
    return {"version": version, "retired": sorted(retire), "reinstated": back}
