"""Canary leak detection: known customer values must never appear downstream of the scrubber.

Canaries are values known to be customer data: the demo's answer file (every PII string the generator
wrote), the customer vocabulary, and optionally <data>/reference/pii_canaries.txt (one value a line)
for teams that seed their own. A hit counts only on word boundaries ("Acme" does not leak through
"Acmeville").
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

import duckdb
import polars as pl

from flywheel.core.scrub.vocabulary import read_lines

MIN_CANARY_CHARS = 4


def canaries_from_answers(path: Path) -> set[str]:
    values: set[str] = set()
    if not path.exists():
        return values
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            values.update(p["value"] for p in json.loads(line).get("pii", []))
    return values


def canaries_from_file(path: Path) -> set[str]:
    return read_lines(path)


def find_leaks(
    conn: duckdb.DuckDBPyConnection, texts: Iterable[tuple[str, str]], canaries: Iterable[str],
) -> list[dict]:
    """[{where, value}] for every canary found in (where, text) pairs."""
    canary_list = sorted({c for c in canaries if len(c.strip()) >= MIN_CANARY_CHARS})
    pairs = list(texts)
    if not canary_list or not pairs:
        return []
    conn.register("leak_texts", pl.DataFrame({"where": [w for w, _ in pairs], "text": [t for _, t in pairs]}))
    conn.register("leak_canaries", pl.DataFrame({"value": canary_list}))
    try:
        # DuckDB narrows the cross product with a vectorised substring test; Python confirms boundaries.
        hits = conn.execute(
            """SELECT t."where", t.text, c.value FROM leak_texts t, leak_canaries c
               WHERE contains(lower(t.text), lower(c.value))"""
        ).fetchall()
    finally:
        conn.unregister("leak_texts")
        conn.unregister("leak_canaries")
    leaks = []
    for where, text, value in hits:
        if re.search(r"(?<!\w)" + re.escape(value) + r"(?!\w)", text, flags=re.IGNORECASE):
            leaks.append({"where": where, "value": value})
    return leaks


def table_texts(conn: duckdb.DuckDBPyConnection, schemas_to_skip: tuple[str, ...] = ("raw",)) -> list[tuple[str, str]]:
    """Every row of every table outside the skipped schemas, as text (nested values included)."""
    tables = conn.execute(
        "SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema NOT IN "
        f"({', '.join('?' for _ in schemas_to_skip)}) AND table_type = 'BASE TABLE'",
        list(schemas_to_skip),
    ).fetchall()
    out = []
    for schema, table in tables:
        rows = conn.execute(f'SELECT CAST(t AS VARCHAR) FROM "{schema}"."{table}" AS t').fetchall()
        out += [(f"{schema}.{table}", r[0]) for r in rows]
    return out


def redact_values(text: str, values: Iterable[str], placeholder: str = "[LEAK_REDACTED]") -> str:
    """Last line of defence: blank out known values the scrubber missed, so a failed leak check
    still writes nothing known downstream (the check stays failed and counts them)."""
    for value in sorted(set(values), key=len, reverse=True):
        text = re.sub(r"(?<!\w)" + re.escape(value) + r"(?!\w)", placeholder, text, flags=re.IGNORECASE)
    return text
