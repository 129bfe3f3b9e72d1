"""Residue: the essay's "every miss has a documented residue".

A reviewer who finds customer data the scrubber missed records the class of what leaked (never the
value itself). `summary` turns that into a miss rate per class, the number a privacy officer asks for.
"""

from __future__ import annotations

import duckdb

from flywheel.core.common import clock
from flywheel.core.common.db import table_exists


def ensure_residue_table(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute("CREATE SCHEMA IF NOT EXISTS scrub")
    conn.execute(
        """CREATE TABLE IF NOT EXISTS scrub.residue (
             trace_ref VARCHAR NOT NULL, entity_type VARCHAR NOT NULL, note VARCHAR,
             reported_by VARCHAR, reported_at TIMESTAMP DEFAULT now()::TIMESTAMP, scrubber_version VARCHAR)"""
    )


def record_miss(
    conn: duckdb.DuckDBPyConnection, trace_ref: str, entity_type: str, *, note: str | None = None,
    reported_by: str | None = None,
) -> str | None:
    """Record a miss on a scrubbed trace; returns the scrubber version that produced the trace."""
    ensure_residue_table(conn)
    version = None
    if table_exists(conn, "scrub", "anonymized_traces"):
        row = conn.execute(
            "SELECT scrubber_version FROM scrub.anonymized_traces WHERE trace_ref = ? LIMIT 1", [trace_ref]
        ).fetchone()
        if row is None:
            raise KeyError(f"no scrubbed trace with trace_ref {trace_ref!r}")
        version = row[0]
    conn.execute(
        "INSERT INTO scrub.residue (trace_ref, entity_type, note, reported_by, reported_at, scrubber_version) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [trace_ref, entity_type.upper(), note, reported_by, clock.now(), version],
    )
    return version


def summary(conn: duckdb.DuckDBPyConnection) -> list[dict]:
    """Per entity class: traces scrubbed, traces where the scrubber found it, misses reported, miss rate
    (misses per scrubbed trace)."""
    if not table_exists(conn, "scrub", "scrub_report"):
        return []
    residue = "scrub.residue" if table_exists(conn, "scrub", "residue") else \
        "(SELECT NULL::VARCHAR AS entity_type, NULL::VARCHAR AS trace_ref WHERE false)"
    scrubbed = conn.execute("SELECT count(DISTINCT trace_ref) FROM scrub.scrub_report").fetchone()[0]
    rows = conn.execute(
        f"""WITH found AS (
             SELECT c.entity_type, count(DISTINCT r.trace_ref) AS traces_with_findings, sum(c.n) AS findings
             FROM scrub.scrub_report r, unnest(r.entity_counts) AS u(c) GROUP BY 1
           ), misses AS (
             SELECT entity_type, count(*) AS misses, count(DISTINCT trace_ref) AS traces_missed
             FROM {residue} GROUP BY 1
           )
           SELECT coalesce(f.entity_type, m.entity_type) AS entity_type,
                  coalesce(f.traces_with_findings, 0), coalesce(f.findings, 0), coalesce(m.misses, 0)
           FROM found f FULL JOIN misses m ON f.entity_type = m.entity_type
           ORDER BY 1"""
    ).fetchall()
    return [
        {"entity_type": t, "traces_scrubbed": scrubbed, "traces_with_findings": tf, "findings": int(f),
         "misses_reported": m, "miss_rate": (m / scrubbed) if scrubbed else 0.0}
        for t, tf, f, m in rows
    ]
