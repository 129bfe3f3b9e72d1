"""Station 4's store: the versioned eval set.

Every row ever added stays in eval.eval_rows. Which versions a row belongs to is kept as spans in
eval.row_spans ([version_from, version_to), open-ended while active), so any past version can be
rebuilt exactly, including rows retired and later reinstated. eval.versions records each version: when,
why, what it added, retired and reinstated, its active count and adversarial share. A change that adds
nothing creates no version. Row ids are stable: a hash of the source trace reference (or, for the
starter spreadsheet, of the input).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from flywheel.contracts import EVAL_ROW_FIELDS
from flywheel.core.common import clock
from flywheel.core.common.db import create_table, transaction
from flywheel.core.labeling.labels import (
    CRITERION_TYPES,
    Label,
    criterion_errors,
    parse_criterion,
)
from flywheel.core.common.records import RecordsError, is_csv, numbered_records, numbering, parse_date
from flywheel.core.common.spreadsheet_safety import escape_cell, unescape_record

# Only a type here (DuckDB's .pl() imports polars when a frame is built): `flywheel gate`, `lookup` and
# `evalset versions` answer without paying for polars' import.
if TYPE_CHECKING:
    import polars as pl

# What `flywheel forget` leaves of an erased customer's eval row (input, expected behaviour, rubric): the
# row id, spans and results stay so past pass rates hold, but there is nothing left to run or judge.
ERASED = "[erased]"

EQUALS_MAX_WORDS = 8  # a plain expected answer this short becomes `equals`, a longer one `contains`
MAX_LISTED_PROBLEMS = 50  # a file that is wrong throughout gets the first problems and a count, not a wall


class EvalSetError(ValueError):
    pass


@dataclass
class Row:
    input: list[dict]
    expected_behaviour: str
    criterion_type: str
    criterion_value: str | None
    taxonomy_code: str | None
    adversarial: bool
    source_trace_ref: str | None
    added_at: dt.date
    source: str

    @property
    def row_id(self) -> str:
        basis = self.source_trace_ref or json.dumps(self.input, sort_keys=True)
        return "row_" + hashlib.sha256(basis.encode("utf-8")).hexdigest()[:16]


def ensure_tables(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute("CREATE SCHEMA IF NOT EXISTS eval")
    create_table(
        conn, """CREATE TABLE IF NOT EXISTS eval.eval_rows (
             row_id VARCHAR PRIMARY KEY, input STRUCT(role VARCHAR, content VARCHAR)[] NOT NULL,
             expected_behaviour VARCHAR NOT NULL, criterion_type VARCHAR NOT NULL, criterion_value VARCHAR,
             taxonomy_code VARCHAR, adversarial BOOLEAN NOT NULL, source_trace_ref VARCHAR, added_at DATE NOT NULL,
             source VARCHAR NOT NULL, version_added INTEGER NOT NULL, version_retired INTEGER, retire_reason VARCHAR)"""
    )
    # Warehouses made before retirement existed lack the reason column.
    conn.execute("ALTER TABLE eval.eval_rows ADD COLUMN IF NOT EXISTS retire_reason VARCHAR")
    conn.execute("CREATE TABLE IF NOT EXISTS eval.row_spans (row_id VARCHAR, version_from INTEGER, version_to INTEGER)")
    create_table(
        conn, """CREATE TABLE IF NOT EXISTS eval.versions (
             version INTEGER PRIMARY KEY, created_at TIMESTAMP, rows_added INTEGER, rows_retired INTEGER,
             rows_reinstated INTEGER, active_rows INTEGER, adversarial_share DOUBLE, cause VARCHAR)"""
    )


def latest_version(conn: duckdb.DuckDBPyConnection) -> int:
    ensure_tables(conn)
    return conn.execute("SELECT coalesce(max(version), 0) FROM eval.versions").fetchone()[0]


def version_as_of(conn: duckdb.DuckDBPyConnection, moment: dt.datetime) -> int:
    """The latest version created at or before `moment` (0 when none): what was current then. A replay
    or a backfill pinned to a past moment must not see versions made after it."""
    ensure_tables(conn)
    return conn.execute("SELECT coalesce(max(version), 0) FROM eval.versions WHERE created_at <= ?",
                        [moment]).fetchone()[0]


# The rows of version $version as they were then; a query, so SQL that needs only some columns (the
# gate) can read it without building a frame.
ROWS_AT_SQL = """SELECT r.* EXCLUDE (version_added, version_retired, retire_reason), $version::INTEGER AS eval_version
                 FROM eval.eval_rows r
                 WHERE EXISTS (SELECT 1 FROM eval.row_spans s WHERE s.row_id = r.row_id AND s.version_from <= $version
                               AND (s.version_to IS NULL OR s.version_to > $version))"""


def rows_at(conn: duckdb.DuckDBPyConnection, version: int | None = None) -> pl.DataFrame:
    """The rows of a version (default the latest), as they were then."""
    ensure_tables(conn)
    version = version or latest_version(conn)
    return conn.execute(f"{ROWS_AT_SQL} ORDER BY added_at, row_id", {"version": version}).pl()


def add_version(conn: duckdb.DuckDBPyConnection, rows: list[Row], cause: str) -> int | None:
    """Add the rows not already in the set as a new version; None when nothing is new."""
    ensure_tables(conn)
    known = {r[0] for r in conn.execute("SELECT row_id FROM eval.eval_rows").fetchall()}
    fresh, seen = [], set()
    for row in rows:
        if row.row_id not in known and row.row_id not in seen:
            fresh.append(row)
            seen.add(row.row_id)
    if not fresh:
        return None
    version = latest_version(conn) + 1
    with transaction(conn):
        for row in fresh:
            conn.execute(
                """INSERT INTO eval.eval_rows (row_id, input, expected_behaviour, criterion_type, criterion_value,
                     taxonomy_code, adversarial, source_trace_ref, added_at, source, version_added)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [row.row_id, row.input, row.expected_behaviour, row.criterion_type, row.criterion_value,
                 row.taxonomy_code, row.adversarial, row.source_trace_ref, row.added_at, row.source, version],
            )
            conn.execute("INSERT INTO eval.row_spans VALUES (?, ?, NULL)", [row.row_id, version])
        _record_version(conn, version, len(fresh), 0, 0, cause)
    return version


def _record_version(conn, version: int, added: int, retired: int, reinstated: int, cause: str) -> None:
    active, adversarial = conn.execute(
        """SELECT count(*), coalesce(avg(adversarial::INTEGER), 0) FROM eval.eval_rows r
           WHERE EXISTS (SELECT 1 FROM eval.row_spans s WHERE s.row_id = r.row_id AND s.version_to IS NULL)"""
    ).fetchone()
    conn.execute("INSERT INTO eval.versions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                 [version, clock.now(), added, retired, reinstated, active, adversarial, cause])


def archived_at(conn: duckdb.DuckDBPyConnection, version: int) -> pl.DataFrame:
    """Rows added by `version` but not part of it: the archive as of that version."""
    ensure_tables(conn)
    return conn.execute(
        """SELECT r.* EXCLUDE (version_added, version_retired, retire_reason), ?::INTEGER AS eval_version
           FROM eval.eval_rows r WHERE r.version_added <= ?
             AND NOT EXISTS (SELECT 1 FROM eval.row_spans s WHERE s.row_id = r.row_id AND s.version_from <= ?
                             AND (s.version_to IS NULL OR s.version_to > ?))
           ORDER BY r.row_id""",
        [version, version, version, version],
    ).pl()


def change_rows(conn: duckdb.DuckDBPyConnection, *, retire: dict[str, str] | None = None,
                reinstate: list[str] | None = None, cause: str) -> int | None:
    """Retire rows (moved to the archive, never deleted; reason kept) and reinstate archived ones, as one
    new version; None when there is nothing to change."""
    retire, reinstate = retire or {}, reinstate or []
    if not retire and not reinstate:
        return None
    version = latest_version(conn) + 1
    with transaction(conn):
        for row_id, reason in retire.items():
            conn.execute("UPDATE eval.row_spans SET version_to = ? WHERE row_id = ? AND version_to IS NULL", [version, row_id])
            conn.execute("UPDATE eval.eval_rows SET version_retired = ?, retire_reason = ? WHERE row_id = ?",
                         [version, reason, row_id])
        for row_id in reinstate:
            conn.execute("INSERT INTO eval.row_spans VALUES (?, ?, NULL)", [row_id, version])
            conn.execute("UPDATE eval.eval_rows SET version_retired = NULL, retire_reason = NULL WHERE row_id = ?", [row_id])
        _record_version(conn, version, 0, len(retire), len(reinstate), cause)
    return version


# ---------------------------------------------------------------------------------------------
# The starter spreadsheet (version 1)
# ---------------------------------------------------------------------------------------------


def _criterion_for(expected: str, criterion: str | None) -> tuple[str, str | None]:
    """An explicit `type:value` criterion wins; a plain expected answer of at most EQUALS_MAX_WORDS
    words must be matched exactly (equals), a longer one must appear in the reply (contains)."""
    if criterion and criterion.strip():
        return parse_criterion(criterion)
    return ("equals" if len(expected.split()) <= EQUALS_MAX_WORDS else "contains"), expected.strip()


def _text(rec: dict, *names: str) -> str | None:
    """The first of these fields that is present, as text; numbers are taken as their text. A list or
    an object where text belongs is a TypeError naming the field."""
    for name in names:
        value = rec.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise TypeError(name)
        return str(value).strip()
    return None


def _messages(raw) -> list[dict] | None:
    """The input as messages: text is one user message; a JSON list of {role, content} (as a list in
    JSONL, or its text in a CSV cell) is the conversation. None when it is neither."""
    if isinstance(raw, str) and raw.strip().startswith("["):
        try:
            raw = json.loads(raw)
        except (ValueError, RecursionError):
            pass
    if isinstance(raw, str) and raw.strip():
        return [{"role": "user", "content": raw.strip()}]
    if isinstance(raw, list) and raw and all(
            isinstance(m, dict) and isinstance(m.get("content"), str) and isinstance(m.get("role", "user"), str)
            for m in raw):
        return [{"role": m.get("role", "user"), "content": m["content"]} for m in raw]
    return None


def _starter_row(rec: dict, today: dt.date | None) -> tuple[Row | None, list[tuple[str, str]]]:
    """One record of the starter file as a Row, or its problems as (column, why); never the value."""
    problems: list[tuple[str, str]] = []
    messages = _messages(rec.get("input"))
    if messages is None:
        raw = rec.get("input")
        present = raw is not None and not (isinstance(raw, str) and not raw.strip())
        problems.append(("input", ("not text, nor a JSON list of {role, content} with text content" if present else
                                   "missing: the user message (text, or a JSON list of {role, content})")))
    fields: dict[str, str | None] = {}
    for column, names in (("expected", ("expected", "expected_behaviour")),
                          ("criterion", ("criterion", "pass_criterion")),
                          ("taxonomy_code", ("taxonomy_code",)), ("added_at", ("added_at",))):
        try:
            fields[column] = _text(rec, *names)
        except TypeError as bad:
            problems.append((str(bad), "not text (a JSON list or object where text belongs)"))
            fields[column] = None
    expected = fields["expected"] or ""
    if not expected and not any(c == "expected" for c, _ in problems):
        problems.append(("expected", "missing: the expected answer or behaviour"))
    kind, value = _criterion_for(expected, fields["criterion"])
    if kind not in CRITERION_TYPES:
        problems.append(("criterion", f"not one of {', '.join(CRITERION_TYPES)}"))
    else:
        probe = Label("x", "known_failure", "x", "x", expected or "x", kind, value)
        problems += [("criterion", e.message) for e in criterion_errors(probe)]
    raw_flag = rec.get("adversarial")
    flag = "" if raw_flag is None else str(raw_flag).strip().lower() if isinstance(raw_flag, (str, bool, int)) else "?"
    if flag not in ("", "true", "false", "1", "0", "yes", "no"):
        problems.append(("adversarial", "not true/false (yes/no, 1/0 also work)"))
    added_at = today or clock.today()
    if fields["added_at"]:
        try:
            added_at = parse_date(fields["added_at"])
        except ValueError as exc:
            problems.append(("added_at", str(exc)))
    if problems:
        return None, problems
    return Row(messages, expected, kind, value, fields["taxonomy_code"], flag in ("true", "1", "yes"), None, added_at,
               "starter"), []


def parse_starter(path: str | Path, today: dt.date | None = None) -> tuple[list[Row], list[str]]:
    """Rows from a team's spreadsheet (CSV or JSONL), and every problem as 'row N, column C: why'
    (for JSONL, 'line N'). A file that cannot be read at all (not UTF-8, empty, a JSON list, a CSV
    cell past the limit) is one EvalSetError naming the file and where."""
    path = Path(path)
    try:
        records = numbered_records(path)
    except RecordsError as exc:
        raise EvalSetError(str(exc)) from None
    if is_csv(path):  # a CSV `evalset export` wrote: cells escaped against formula injection read back as they were
        records = [(n, unescape_record(r) if isinstance(r, dict) else r) for n, r in records]
    unit = numbering(path)
    rows, errors = [], []
    for number, rec in records:
        if isinstance(rec, str):
            errors.append(f"{unit} {number}: {rec}")
            continue
        row, problems = _starter_row(rec, today)
        if problems:
            errors += [f"{unit} {number}, column {column}: {why}" for column, why in problems]
        else:
            rows.append(row)
    return rows, errors


def import_starter(conn: duckdb.DuckDBPyConnection, path: str | Path) -> int:
    """The team's existing suite as version 1. All or nothing: a starter set with a bad row is fixed
    first, not half-loaded."""
    if latest_version(conn) > 0:
        raise EvalSetError("the eval set already has versions; new rows come in through the fold-in")
    rows, errors = parse_starter(path)
    if len(errors) == 1:
        raise EvalSetError(f"{path}: {errors[0]}; nothing imported")
    if errors:
        shown = errors[:MAX_LISTED_PROBLEMS] + ([f"... and {len(errors) - MAX_LISTED_PROBLEMS} more"]
                                                if len(errors) > MAX_LISTED_PROBLEMS else [])
        raise EvalSetError(f"{path}: {len(errors)} problem(s), nothing imported:\n  " + "\n  ".join(shown))
    if not rows:
        raise EvalSetError(f"{path}: no rows")
    return add_version(conn, rows, f"starter import of {Path(path).name}")


# ---------------------------------------------------------------------------------------------
# Fold-in: reviewed failures become rows
# ---------------------------------------------------------------------------------------------


def fold_in(conn: duckdb.DuckDBPyConnection) -> int | None:
    """Reviewed failure labels (current, pii_ok) whose trace is not yet a row become rows of a new
    version. The row's input is the conversation up to the reply that failed."""
    ensure_tables(conn)
    candidates = conn.execute(
        """SELECT l.trace_ref, l.expected_behaviour, l.criterion_type, l.criterion_value, l.taxonomy_code,
                  l.adversarial, l.reviewed_at::DATE, a.messages
           FROM label.current_labels l JOIN scrub.anonymized_traces a USING (trace_ref)
           WHERE l.bucket IN ('known_failure', 'new_failure') AND l.pii_ok
             AND NOT EXISTS (SELECT 1 FROM eval.eval_rows e WHERE e.source_trace_ref = l.trace_ref)
           ORDER BY l.reviewed_at, l.trace_ref"""
    ).fetchall()
    rows = []
    for ref, expected, kind, value, code, adversarial, reviewed, messages in candidates:
        prompt = messages[:-1] if len(messages) > 1 and messages[-1]["role"] == "assistant" else messages
        rows.append(Row(prompt, expected, kind, value, code, adversarial, ref, reviewed, "fold-in"))
    return add_version(conn, rows, f"fold-in of {len(rows)} reviewed failure label(s)") if rows else None


# ---------------------------------------------------------------------------------------------
# Export and diff
# ---------------------------------------------------------------------------------------------


def contract_records(rows: pl.DataFrame) -> list[dict]:
    """Rows in the eval row contract: one definition in flywheel.contracts.EVAL_ROW_FIELDS."""
    out = []
    for r in rows.iter_rows(named=True):
        criterion = r["criterion_type"] + (f":{r['criterion_value']}" if r["criterion_value"] else "")
        record = {**r, "pass_criterion": criterion, "added_at": str(r["added_at"])}
        out.append({k: record[k] for k in EVAL_ROW_FIELDS})
    return out


def contract_rows(conn: duckdb.DuckDBPyConnection, version: int) -> list[dict]:
    """A version's rows as dicts with their typed criterion, for the harness exports."""
    cur = conn.execute(f"{ROWS_AT_SQL} ORDER BY added_at, row_id", {"version": version})
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def export(conn: duckdb.DuckDBPyConnection, path: str | Path, version: int | None = None, fmt: str = "jsonl") -> int:
    records = contract_records(rows_at(conn, version))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "jsonl":
        with open(path, "w", encoding="utf-8") as fh:
            for rec in records:
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    elif fmt == "csv":
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(EVAL_ROW_FIELDS))
            writer.writeheader()
            # Cells a spreadsheet would run (=, +, -, @, tab, CR first) are written inert; parse_starter reverses it.
            writer.writerows({k: escape_cell(json.dumps(v, ensure_ascii=False) if k == "input" else v)
                              for k, v in r.items()} for r in records)
    else:
        raise EvalSetError(f"unknown format {fmt!r}: jsonl or csv")
    return len(records)


def export_versions(conn: duckdb.DuckDBPyConnection, exports_dir: Path) -> list[Path]:
    """Write <exports>/eval_set_v<N>.jsonl for every version that has none; never rewrite one."""
    ensure_tables(conn)  # a warehouse with no eval set yet has nothing to export, and no table to read
    written = []
    for (version,) in conn.execute("SELECT version FROM eval.versions ORDER BY version").fetchall():
        path = Path(exports_dir) / f"eval_set_v{version}.jsonl"
        if not path.exists():
            tmp = path.with_suffix(".jsonl.tmp")
            export(conn, tmp, version)
            tmp.rename(path)  # a crash never leaves a half-written export under the final name
            written.append(path)
    return written


def diff(conn: duckdb.DuckDBPyConnection, a: int, b: int) -> dict[str, list[str]]:
    before, after = set(rows_at(conn, a)["row_id"]), set(rows_at(conn, b)["row_id"])
    return {"added": sorted(after - before), "removed": sorted(before - after), "common": sorted(before & after)}


def versions(conn: duckdb.DuckDBPyConnection) -> list[dict]:
    ensure_tables(conn)
    cur = conn.execute("SELECT * FROM eval.versions ORDER BY version")
    return [dict(zip([d[0] for d in cur.description], r)) for r in cur.fetchall()]
