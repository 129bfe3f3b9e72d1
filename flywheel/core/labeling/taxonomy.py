"""The failure taxonomy: codes a label can use, seeded from data/reference/taxonomy.yaml."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import duckdb

from flywheel.core.common import clock
from flywheel.core.common.db import create_table

CODE = re.compile(r"^[a-z][a-z0-9_]{2,48}$")
SENTENCE_END = re.compile(r"[.!?](?:\s|$)")


class TaxonomyError(ValueError):
    pass


@dataclass(frozen=True)
class TaxonomyEntry:
    code: str
    name: str
    definition: str
    created_from: str = "seed"

    def problems(self) -> list[str]:
        out = []
        if not CODE.match(self.code or ""):
            out.append(f"code {self.code!r} must be snake_case: a lowercase letter, then 2-48 of a-z, 0-9, _")
        if not (self.name or "").strip():
            out.append("name is empty")
        sentences = len(SENTENCE_END.findall((self.definition or "").strip()))
        if sentences < 2:
            out.append(f"definition must be two sentences (what goes wrong, and how to tell); found {sentences}")
        return out


def load_seed(path: str | Path) -> list[TaxonomyEntry]:
    import yaml  # here, not at the top: the light verbs (gate, lookup) import this module but never seed

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    except OSError as exc:
        raise TaxonomyError(f"{path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise TaxonomyError(f"{path}{where}: not valid YAML: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(raw, list):
        raise TaxonomyError(f"{path}: expected a list of entries (code, name, definition)")
    entries, seen = [], set()
    for i, item in enumerate(raw, 1):
        if not isinstance(item, dict):
            raise TaxonomyError(f"{path}: entry {i} is not a mapping")
        entry = TaxonomyEntry(str(item.get("code", "")), str(item.get("name", "")), " ".join(str(item.get("definition", "")).split()))
        problems = entry.problems() + ([f"code {entry.code!r} appears twice"] if entry.code in seen else [])
        if problems:
            raise TaxonomyError(f"{path}: entry {i} ({entry.code or '?'}): " + "; ".join(problems))
        seen.add(entry.code)
        entries.append(entry)
    return entries


def ensure_table(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute("CREATE SCHEMA IF NOT EXISTS label")
    create_table(
        conn, """CREATE TABLE IF NOT EXISTS label.taxonomy (
             code VARCHAR PRIMARY KEY, name VARCHAR NOT NULL, definition VARCHAR NOT NULL,
             created_at TIMESTAMP NOT NULL, created_from VARCHAR NOT NULL)"""
    )


def seed(conn: duckdb.DuckDBPyConnection, entries: list[TaxonomyEntry]) -> int:
    """Add seed entries whose code is new; existing codes (seeded or discovered) are left as they are."""
    ensure_table(conn)
    known = codes(conn)
    added = 0
    for e in entries:
        if e.code not in known:
            conn.execute("INSERT INTO label.taxonomy VALUES (?, ?, ?, ?, ?)",
                         [e.code, e.name, e.definition, clock.now(), e.created_from])
            added += 1
    return added


def add(conn: duckdb.DuckDBPyConnection, entry: TaxonomyEntry) -> None:
    """A new failure mode found while labelling."""
    ensure_table(conn)
    problems = entry.problems()
    if entry.code in codes(conn):
        problems.append(f"code {entry.code!r} already exists")
    if problems:
        raise TaxonomyError("; ".join(problems))
    conn.execute("INSERT INTO label.taxonomy VALUES (?, ?, ?, ?, ?)",
                 [entry.code, entry.name, entry.definition, clock.now(),
                  entry.created_from])


def codes(conn: duckdb.DuckDBPyConnection) -> set[str]:
    ensure_table(conn)
    return {r[0] for r in conn.execute("SELECT code FROM label.taxonomy").fetchall()}


def entries(conn: duckdb.DuckDBPyConnection) -> list[dict]:
    ensure_table(conn)
    cur = conn.execute("SELECT code, name, definition, created_at, created_from FROM label.taxonomy ORDER BY created_at, code")
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, row)) for row in cur.fetchall()]


def update(conn: duckdb.DuckDBPyConnection, entry: TaxonomyEntry) -> None:
    """An admin's correction of a code's name or definition (the code itself never changes: labels name it)."""
    ensure_table(conn)
    problems = entry.problems()
    if entry.code not in codes(conn):
        problems.append(f"no code {entry.code!r} to edit")
    if problems:
        raise TaxonomyError("; ".join(problems))
    conn.execute("UPDATE label.taxonomy SET name = ?, definition = ? WHERE code = ?", [entry.name, entry.definition, entry.code])
