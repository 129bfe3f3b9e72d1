"""Erasure along lineage: everything flywheel holds from one customer's traces, in one transaction.

Found through the raw customer id (raw.traces, raw.quarantine) and its keyed hashes (the customer
reference in scrub.anonymized_traces, and the trace references of every trace of theirs):

- raw.traces: their traces deleted (and any trace given with --trace-id);
- raw.quarantine: deleted where the record's customer_id or trace_id field is theirs (parsed, or read off
  a line too broken to parse); records that only mention the id are reported and kept;
- raw.sample_ids (the sample's raw ids), sample.sampled_traces, scrub.anonymized_traces, scrub.scrub_report, label.review_queue,
  drift.high_distance_traces: deleted;
- scrub.residue: the reviewer's note blanked; the class stays, so miss rates stay true;
- scrub.keep_proposals (placeholders a reviewer marked "not personal data" on their traces): deleted;
  scrub.keep_term_changes and scrub.keep_candidates hold only words found for many customers, and stay;
- label.labels: free text blanked (expected behaviour, criterion value, PII note); verdict, code and
  history stay;
- label.suggestions: deleted where the trace is theirs or a suggestion names it as a similar labelled
  trace (it copies that label's expected behaviour); label.clusters: clusters holding their traces
  deleted. Both are written again by the next run;
- embed.cache: the vectors of their texts deleted (scrubbed traces, eval rows, raw user turns and, given
  the scrubber drift uses, the texts drift scrubbed in memory);
- eval.eval_rows: tombstoned. Input and expected behaviour become [erased] and the criterion a rubric
  (which the built-in runner skips without a judge: a row with no input cannot be run); row id,
  taxonomy code, adversarial flag, version spans and results stay, so every past version's pass rate is
  unchanged. Active ones are archived in a new version, so the gate never judges a tombstone;
- eval.versions: each version that held such a row says "; n rows erased" in its cause;
- <data>/exports: each version file that held such a row is rewritten with the tombstone, the one
  exception to "an export is written once", recorded in eval.export_rewrites;
- privacy.erasures: the audit row (when, who, why, the customer's keyed hash, counts per table; never
  the id), and privacy.erased_rows.

Then the database file is rebuilt (flywheel.core.privacy.rebuild), because DuckDB keeps deleted
values in the file's bytes. A second run finds nothing, changes nothing and says so (after finishing
an export rewrite or rebuild a crash interrupted).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb

from flywheel.core.common import clock, lake
from flywheel.core.common.db import create_table, open_connection, rollback_quietly, table_exists
from flywheel.core.common.keys import keyed_hash
from flywheel.core.drift.embeddings import text_hash, user_text
from flywheel.core.evalset.versions import ERASED
from flywheel.core.privacy import rebuild as rebuild_file

TOMBSTONE = ERASED
TOMBSTONE_INPUT = [{"role": "user", "content": TOMBSTONE}]
ARCHIVE_REASON = "erased: the customer's data was removed (flywheel forget)"
_REF = re.compile(r"^[a-z]_[0-9a-f]{32}$")


class ErasureError(ValueError):
    pass


@dataclass
class Erasure:
    """What an erasure did (or, dry, would do). Holds keyed hashes and counts, never an id or a value."""

    customer_ref: str
    dry_run: bool
    tables: dict[str, int] = field(default_factory=dict)  # "schema.table" -> rows deleted, blanked or tombstoned
    actions: dict[str, str] = field(default_factory=dict)  # "schema.table" -> what happens to them
    tombstoned_rows: list[str] = field(default_factory=list)
    versions_with_erased_rows: list[int] = field(default_factory=list)
    active_rows: int = 0  # of the tombstoned rows, those in the latest version (a new version archives them)
    archived_in_version: int | None = None  # that new version
    exports_rewritten: list[int] = field(default_factory=list)
    not_erased: list[str] = field(default_factory=list)  # what was left in place, and why
    previous: list[dict] = field(default_factory=list)  # earlier erasures of this customer
    erasure_id: str | None = None
    rebuilt: rebuild_file.Rebuilt | None = None
    lookup_rows_after: int | None = None

    @property
    def changed(self) -> bool:
        return any(self.tables.values())

    def to_json(self) -> dict:
        out = asdict(self)
        out["changed"] = self.changed
        out["rebuilt"] = asdict(self.rebuilt) if self.rebuilt else None
        return out


# ---------------------------------------------------------------------------------------------
# Finding what is theirs
# ---------------------------------------------------------------------------------------------


def _columns(conn: duckdb.DuckDBPyConnection, schema: str, table: str) -> set[str]:
    return {r[0] for r in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
        [schema, table]).fetchall()}


def _fill(conn: duckdb.DuckDBPyConnection, name: str, column: str, values) -> None:
    conn.execute(f"CREATE OR REPLACE TEMP TABLE {name} ({column} VARCHAR)")
    if values:
        conn.execute(f"INSERT INTO {name} SELECT DISTINCT unnest(?::VARCHAR[])", [sorted(values)])


@dataclass
class _Target:
    customer_id: str
    customer_ref: str
    trace_ids: set[str]
    trace_refs: set[str]


def _find(conn: duckdb.DuckDBPyConnection, key: bytes, customer_id: str, trace_ids: Sequence[str]) -> _Target:
    """The customer's raw trace ids and trace references, from every table that can link them: raw
    traces by customer id, scrubbed traces by the customer's keyed hash, and the sample's raw ids
    (raw.sample_ids) of those references (their raw trace may be gone already, deleted by retention)."""
    customer_ref = keyed_hash(key, customer_id, kind="customer")
    ids = {str(t) for t in trace_ids}
    if table_exists(conn, "raw", "traces"):
        ids |= {r[0] for r in conn.execute("SELECT trace_id FROM raw.traces WHERE customer_id = ?", [customer_id]).fetchall()}
    refs = {keyed_hash(key, t, kind="trace") for t in ids}
    if table_exists(conn, "scrub", "anonymized_traces") and "customer_ref" in _columns(conn, "scrub", "anonymized_traces"):
        refs |= {r[0] for r in conn.execute("SELECT trace_ref FROM scrub.anonymized_traces WHERE customer_ref = ?",
                                            [customer_ref]).fetchall()}
    if table_exists(conn, "raw", "sample_ids") and refs:
        ids |= {r[0] for r in conn.execute("SELECT DISTINCT trace_id FROM raw.sample_ids WHERE trace_ref IN "
                                           "(SELECT unnest(?::VARCHAR[]))", [sorted(refs)]).fetchall() if r[0] is not None}
    # A sample written before raw.sample_ids held raw ids itself.
    if table_exists(conn, "sample", "sampled_traces") and "trace_id" in _columns(conn, "sample", "sampled_traces"):
        sampled = [r[0] for r in conn.execute("SELECT DISTINCT trace_id FROM sample.sampled_traces").fetchall()]
        ids |= {t for t in sampled if t is not None and keyed_hash(key, t, kind="trace") in refs}
    _fill(conn, "erase_ids", "trace_id", ids)
    _fill(conn, "erase_refs", "trace_ref", refs)
    return _Target(customer_id, customer_ref, ids, refs)


# Where other sources name the user, read off a record's text as _quarantine_matches reads customer_id.
_SOURCE_USER_FIELD = r'"(?:userId|user_id|attributes\.user\.id|attributes\.enduser\.id)"\s*:\s*"?([^",}\s]*)'
_OTLP_USER_ATTRIBUTE = r'"key"\s*:\s*"(?:enduser\.id|user\.id)"\s*,\s*"value"\s*:\s*\{\s*"stringValue"\s*:\s*"([^"]*)"'


def _quarantine_matches(conn: duckdb.DuckDBPyConnection, target: _Target) -> list[tuple[str, int]]:
    """Fill erase_quarantine with the quarantined records that are theirs: the record's customer_id or
    trace_id field (parsed, or read off a record too broken to parse) holds their id, or a field in
    which another source names its user does (Langfuse userId, LangSmith metadata user_id, OTel
    enduser.id or user.id, Phoenix attributes.user.id), at any depth (a batch line of many spans is
    theirs when one of its spans is). Returns (file, line) of records left in place that still mention
    the customer id elsewhere."""
    conn.execute("CREATE OR REPLACE TEMP TABLE erase_quarantine (rid BIGINT)")
    if not table_exists(conn, "raw", "quarantine"):
        return []
    # A record that is not JSON still shows its fields when a line was cut short or mangled; the
    # patterns read `"customer_id": "x"` and `"customer_id": 123` alike.
    conn.execute(
        r"""INSERT INTO erase_quarantine
            SELECT rowid FROM (
              SELECT rowid, record,
                     CASE WHEN json_valid(record) THEN json_extract_string(record, '$.customer_id')
                          ELSE regexp_extract(record, '"customer_id"\s*:\s*"?([^",}\s]*)', 1) END AS customer_id,
                     CASE WHEN json_valid(record) THEN json_extract_string(record, '$.trace_id')
                          ELSE regexp_extract(record, '"trace_id"\s*:\s*"?([^",}\s]*)', 1) END AS trace_id
              FROM raw.quarantine)
            WHERE customer_id = $id OR trace_id IN (SELECT trace_id FROM erase_ids)
               OR list_contains(regexp_extract_all(record, $named, 1), $id)
               OR list_contains(regexp_extract_all(record, $attribute, 1), $id)""",
        {"id": target.customer_id, "named": _SOURCE_USER_FIELD, "attribute": _OTLP_USER_ATTRIBUTE},
    )
    return conn.execute(
        """SELECT source_file, line FROM raw.quarantine
           WHERE contains(record, ?) AND rowid NOT IN (SELECT rid FROM erase_quarantine) ORDER BY 1, 2""",
        [target.customer_id],
    ).fetchall()


def _text_hashes(conn: duckdb.DuckDBPyConnection, target: _Target, scrubber, roles: Sequence[tuple[str, ...]]) -> set[str]:
    """Hashes of every text of theirs the embedding cache may hold: the user turns of their scrubbed
    traces and eval rows, their raw user turns, and (given the scrubber drift used) their raw traces
    scrubbed the way drift scrubs them in memory."""
    conversations: list[list[dict]] = []
    if table_exists(conn, "scrub", "anonymized_traces"):
        conversations += [r[0] for r in conn.execute(
            "SELECT messages FROM scrub.anonymized_traces WHERE trace_ref IN (SELECT trace_ref FROM erase_refs)").fetchall()]
    if table_exists(conn, "eval", "eval_rows"):
        conversations += [r[0] for r in conn.execute(
            "SELECT input FROM eval.eval_rows WHERE source_trace_ref IN (SELECT trace_ref FROM erase_refs)").fetchall()]
    raw: list[tuple[str, list[dict]]] = []
    if table_exists(conn, "raw", "traces"):
        raw = conn.execute("SELECT trace_id, messages FROM raw.traces WHERE trace_id IN (SELECT trace_id FROM erase_ids) "
                           "ORDER BY trace_id").fetchall()
        conversations += [m for _, m in raw]
    texts = [user_text(messages, r) for messages in conversations for r in roles]
    if scrubber is not None and raw:
        from flywheel.core.drift.station import scrubbed_texts

        texts += [t for r in roles for t in scrubbed_texts(scrubber, raw, r)]
    hashes = {text_hash(t) for t in texts if t and t != TOMBSTONE}
    _fill(conn, "erase_hashes", "text_hash", hashes)
    return hashes


# ---------------------------------------------------------------------------------------------
# What goes, table by table
# ---------------------------------------------------------------------------------------------


@dataclass
class _Step:
    table: str
    action: str
    where: str
    update: str | None = None  # SET clause; None deletes

    def count(self, conn) -> int:
        return conn.execute(f"SELECT count(*) FROM {self.table} WHERE {self.where}").fetchone()[0]

    def apply(self, conn) -> None:
        verb = f"UPDATE {self.table} SET {self.update}" if self.update else f"DELETE FROM {self.table}"
        conn.execute(f"{verb} WHERE {self.where}")


def _blank(columns: list[str]) -> tuple[str, str]:
    """(SET clause, WHERE part) that replace these free-text columns by the tombstone where they hold text."""
    sets = ", ".join(f"{c} = CASE WHEN {c} IS NULL THEN NULL ELSE '{TOMBSTONE}' END" for c in columns)
    holds = " OR ".join(f"({c} IS NOT NULL AND {c} <> '{TOMBSTONE}')" for c in columns)
    return sets, f"({holds})"


def _steps(conn: duckdb.DuckDBPyConnection, target: _Target) -> list[_Step]:
    ids, refs = "(SELECT trace_id FROM erase_ids)", "(SELECT trace_ref FROM erase_refs)"
    assert _REF.match(target.customer_ref)  # inlined below: a keyed hash, hex only
    steps: list[_Step] = []

    def have(schema: str, table: str, *needed: str) -> set[str] | None:
        if not table_exists(conn, schema, table):
            return None
        columns = _columns(conn, schema, table)
        return columns if set(needed) <= columns else None

    if have("raw", "traces", "trace_id") is not None:
        steps.append(_Step("raw.traces", "deleted", f"trace_id IN {ids}"))
    if have("raw", "quarantine") is not None:
        steps.append(_Step("raw.quarantine", "deleted", "rowid IN (SELECT rid FROM erase_quarantine)"))
    if have("raw", "sample_ids", "trace_id", "trace_ref") is not None:
        steps.append(_Step("raw.sample_ids", "deleted", f"trace_id IN {ids} OR trace_ref IN {refs}"))
    sample = have("sample", "sampled_traces")
    if sample is not None:
        links = ([f"trace_id IN {ids}"] if "trace_id" in sample else []) + \
                ([f"trace_ref IN {refs}"] if "trace_ref" in sample else []) + \
                ([f"customer_ref = '{target.customer_ref}'"] if "customer_ref" in sample else [])
        if links:
            steps.append(_Step("sample.sampled_traces", "deleted", " OR ".join(links)))
    if have("scrub", "anonymized_traces", "trace_ref") is not None:
        steps.append(_Step("scrub.anonymized_traces", "deleted", f"trace_ref IN {refs}"))
    if have("scrub", "scrub_report", "trace_ref") is not None:
        steps.append(_Step("scrub.scrub_report", "deleted", f"trace_ref IN {refs}"))
    if have("scrub", "residue", "trace_ref", "note") is not None:
        sets, holds = _blank(["note"])
        steps.append(_Step("scrub.residue", "note blanked", f"trace_ref IN {refs} AND {holds}", sets))
    if have("scrub", "keep_proposals", "trace_ref") is not None:
        steps.append(_Step("scrub.keep_proposals", "deleted", f"trace_ref IN {refs}"))
    if have("label", "review_queue", "trace_ref") is not None:
        steps.append(_Step("label.review_queue", "deleted", f"trace_ref IN {refs}"))
    labels = have("label", "labels", "trace_ref")
    if labels is not None:
        free = [c for c in ("expected_behaviour", "criterion_value", "pii_note") if c in labels]
        if free:
            sets, holds = _blank(free)
            steps.append(_Step("label.labels", "free text blanked", f"trace_ref IN {refs} AND {holds}", sets))
    if have("label", "suggestions", "trace_ref", "similar_refs") is not None:
        # A suggestion copies the expected behaviour and criterion of its most similar labelled trace and
        # names it: gone with either trace (the next run of label/suggestions writes them again).
        steps.append(_Step("label.suggestions", "deleted", f"trace_ref IN {refs} OR EXISTS (SELECT 1 FROM erase_refs e "
                                                             "WHERE list_contains(similar_refs, e.trace_ref))"))
    if have("label", "clusters", "trace_refs") is not None:
        steps.append(_Step("label.clusters", "deleted (clusters that held their traces; rebuilt on the next run)",
                           "EXISTS (SELECT 1 FROM erase_refs e WHERE list_contains(trace_refs, e.trace_ref))"))
    if have("drift", "high_distance_traces", "trace_ref") is not None:
        steps.append(_Step("drift.high_distance_traces", "deleted", f"trace_ref IN {refs}"))
    if have("embed", "cache", "text_hash") is not None:
        steps.append(_Step("embed.cache", "deleted", "text_hash IN (SELECT text_hash FROM erase_hashes)"))
    return steps


# Tables the steps know; any other table with a column that links to a customer is reported, not guessed at.
_KNOWN = {"raw.traces", "raw.quarantine", "raw.ingested_files", "raw.sample_ids", "sample.sampled_traces", "scrub.anonymized_traces",
          "scrub.scrub_report", "scrub.residue", "scrub.keep_proposals", "scrub.keep_term_changes", "scrub.keep_candidates", "label.review_queue", "label.labels", "label.taxonomy",
          "label.suggestions", "label.clusters",
          "drift.high_distance_traces", "drift.scores", "embed.cache", "eval.eval_rows", "eval.row_spans",
          "eval.versions", "eval.export_rewrites", "regression.results"}
_LINKS = {"trace_id": "erase_ids", "trace_ref": "erase_refs", "source_trace_ref": "erase_refs"}


def _unknown_tables(conn: duckdb.DuckDBPyConnection, target: _Target) -> list[str]:
    found = []
    rows = conn.execute(
        """SELECT c.table_schema, c.table_name, list(c.column_name) FROM information_schema.columns c
           JOIN information_schema.tables t USING (table_catalog, table_schema, table_name)
           WHERE t.table_type = 'BASE TABLE' AND t.table_catalog = current_database() GROUP BY 1, 2 ORDER BY 1, 2"""
    ).fetchall()
    for schema, table, columns in rows:
        name = f"{schema}.{table}"
        if name in _KNOWN or schema == "privacy":
            continue
        tests = [f'"{c}" IN (SELECT * FROM {_LINKS[c]})' for c in columns if c in _LINKS]
        tests += [f"\"{c}\" = '{target.customer_ref}'" for c in columns if c == "customer_ref"]
        tests += ['"customer_id"::VARCHAR = $id'] if "customer_id" in columns else []
        if not tests:
            continue
        n = conn.execute(f'SELECT count(*) FROM "{schema}"."{table}" WHERE {" OR ".join(tests)}',
                         {"id": target.customer_id} if "customer_id" in columns else {}).fetchone()[0]
        if n:
            found.append(f"{name}: {n} row(s) refer to their traces, but erasure does not know this table; "
                         f"erase them by hand")
    return found


def _left_in_place(conn: duckdb.DuckDBPyConnection, target: _Target, mentions: list[tuple[str, int]],
                   inbox: Path | None, scrubbed_in_memory: bool) -> list[str]:
    """What erasure leaves, in sentences with file names, lines and counts, never a value."""
    notes = []
    if mentions:
        where = ", ".join(f"{Path(f).name}:{line}" for f, line in mentions[:10]) + (" ..." if len(mentions) > 10 else "")
        notes.append(f"raw.quarantine: {len(mentions)} record(s) mention the customer id outside a customer_id field "
                     f"and were kept ({where}); delete them by hand if they are theirs")
    if inbox is not None and table_exists(conn, "raw", "traces"):
        files = {f for (f,) in conn.execute(
            "SELECT DISTINCT source_file FROM raw.traces WHERE trace_id IN (SELECT trace_id FROM erase_ids)").fetchall()}
        if table_exists(conn, "raw", "quarantine"):
            files |= {f for (f,) in conn.execute(
                "SELECT DISTINCT source_file FROM raw.quarantine WHERE rowid IN (SELECT rid FROM erase_quarantine)").fetchall()}
        kept = sorted(Path(f).name for f in files if f and Path(f).exists() and Path(f).resolve().is_relative_to(inbox.resolve()))
        if kept:
            notes.append(f"{inbox}: {len(kept)} input file(s) still hold their records ({', '.join(kept[:5])}"
                         f"{' ...' if len(kept) > 5 else ''}); flywheel does not rewrite input files: delete or redact them")
    if not scrubbed_in_memory and target.trace_ids and table_exists(conn, "drift", "scores"):
        notes.append("embed.cache: the vectors drift made from their raw traces (scrubbed in memory) were not looked "
                     "for, because no scrubber was given")
    if table_exists(conn, "label", "taxonomy") and "created_from" in _columns(conn, "label", "taxonomy"):
        n = conn.execute("SELECT count(*) FROM label.taxonomy WHERE created_from IN (SELECT trace_ref FROM erase_refs)"
                         ).fetchone()[0]
        if n:
            notes.append(f"label.taxonomy: {n} failure mode(s) were first seen in their traces and are kept (a definition "
                         f"describes the failure, not the customer; its trace reference no longer resolves)")
    return notes + _unknown_tables(conn, target)


# ---------------------------------------------------------------------------------------------
# Eval rows: tombstones, versions, exports
# ---------------------------------------------------------------------------------------------


def ensure_tables(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute("CREATE SCHEMA IF NOT EXISTS privacy")
    create_table(
        conn, """CREATE TABLE IF NOT EXISTS privacy.erasures (
             erasure_id VARCHAR PRIMARY KEY, erased_at TIMESTAMP NOT NULL, operator VARCHAR NOT NULL, reason VARCHAR,
             customer_ref VARCHAR NOT NULL, trace_refs VARCHAR[], counts JSON NOT NULL, eval_rows_tombstoned INTEGER,
             archived_in_version INTEGER, bytes_erased_at TIMESTAMP)"""
    )
    conn.execute("CREATE TABLE IF NOT EXISTS privacy.erased_rows (row_id VARCHAR, erasure_id VARCHAR, erased_at TIMESTAMP)")
    conn.execute("CREATE SCHEMA IF NOT EXISTS eval")
    conn.execute(
        """CREATE TABLE IF NOT EXISTS eval.export_rewrites (
             version INTEGER, rewritten_at TIMESTAMP, rows_erased INTEGER, erasure_id VARCHAR, file VARCHAR)"""
    )


def _rows_to_tombstone(conn: duckdb.DuckDBPyConnection) -> list[str]:
    if not table_exists(conn, "eval", "eval_rows"):
        return []
    return [r[0] for r in conn.execute(
        """SELECT row_id FROM eval.eval_rows WHERE source_trace_ref IN (SELECT trace_ref FROM erase_refs)
             AND row_id NOT IN (SELECT row_id FROM privacy.erased_rows) ORDER BY row_id""").fetchall()]


def _versions_holding(conn: duckdb.DuckDBPyConnection, row_ids_sql: str) -> list[int]:
    return [r[0] for r in conn.execute(
        f"""SELECT DISTINCT v.version FROM eval.versions v JOIN eval.row_spans s
              ON s.version_from <= v.version AND (s.version_to IS NULL OR s.version_to > v.version)
            WHERE s.row_id IN ({row_ids_sql}) ORDER BY 1""").fetchall()]


def _tombstone(conn: duckdb.DuckDBPyConnection, erasure_id: str, now: dt.datetime) -> int | None:
    """Tombstone the rows in erase_rows; archive the active ones in a new version (a row with no
    input cannot be run, and the gate must not judge the latest version on it). Every version that
    holds an erased row says so in its cause. Returns the new version, if one was needed."""
    conn.execute("""UPDATE eval.eval_rows SET input = ?::STRUCT(role VARCHAR, content VARCHAR)[],
                      expected_behaviour = ?, criterion_type = 'rubric', criterion_value = ?
                    WHERE row_id IN (SELECT row_id FROM erase_rows)""", [TOMBSTONE_INPUT, TOMBSTONE, TOMBSTONE])
    conn.execute("INSERT INTO privacy.erased_rows SELECT row_id, ?, ? FROM erase_rows", [erasure_id, now])
    active = [r[0] for r in conn.execute(
        "SELECT DISTINCT row_id FROM eval.row_spans WHERE version_to IS NULL AND row_id IN (SELECT row_id FROM erase_rows)"
    ).fetchall()]
    version = None
    if active:
        version = conn.execute("SELECT coalesce(max(version), 0) + 1 FROM eval.versions").fetchone()[0]
        conn.execute("UPDATE eval.row_spans SET version_to = ? WHERE version_to IS NULL AND row_id IN "
                     "(SELECT row_id FROM erase_rows)", [version])
        conn.execute("UPDATE eval.eval_rows SET version_retired = ?, retire_reason = ? WHERE row_id IN "
                     "(SELECT row_id FROM erase_rows) AND version_retired IS NULL", [version, ARCHIVE_REASON])
        members, adversarial = conn.execute(
            """SELECT count(*), coalesce(avg(adversarial::INTEGER), 0) FROM eval.eval_rows r
               WHERE EXISTS (SELECT 1 FROM eval.row_spans s WHERE s.row_id = r.row_id AND s.version_to IS NULL)""").fetchone()
        conn.execute(
            """INSERT INTO eval.versions (version, created_at, rows_added, rows_retired, rows_reinstated, active_rows,
                                          adversarial_share, cause) VALUES (?, ?, 0, ?, 0, ?, ?, ?)""",
            [version, now, len(active), members, adversarial,
             f"erasure {erasure_id}: {len(active)} erased row(s) archived"])
    conn.execute(
        """WITH erased AS (
             SELECT v.version, count(*) AS n FROM eval.versions v JOIN eval.row_spans s
               ON s.version_from <= v.version AND (s.version_to IS NULL OR s.version_to > v.version)
             WHERE s.row_id IN (SELECT row_id FROM privacy.erased_rows) GROUP BY 1)
           UPDATE eval.versions SET cause = regexp_replace(coalesce(cause, ''), '; \\d+ rows? erased$', '')
                                            || '; ' || erased.n || CASE WHEN erased.n = 1 THEN ' row erased' ELSE ' rows erased' END
           FROM erased WHERE eval.versions.version = erased.version""")
    return version


def _export_holds_erased_text(path: Path, erased: set[str]) -> bool:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except ValueError:
                return True  # not ours as written: rewrite it
            if rec.get("row_id") in erased and (rec.get("input") != TOMBSTONE_INPUT
                                                or rec.get("expected_behaviour") != TOMBSTONE):
                return True
    return False


def rewrite_exports(conn: duckdb.DuckDBPyConnection, exports_dir: Path, erasure_id: str | None) -> list[int]:
    """Rewrite <exports>/eval_set_v<N>.jsonl for every version whose file still holds an erased row as
    it was: the one exception to "an export is written once", recorded in eval.export_rewrites. Found
    by reading the files, so a rewrite a crash interrupted is finished by the next erasure."""
    from flywheel.core.evalset import versions as evalset

    if not table_exists(conn, "privacy", "erased_rows"):
        return []
    erased = {r[0] for r in conn.execute("SELECT row_id FROM privacy.erased_rows").fetchall()}
    rewritten = []
    for version in _versions_holding(conn, "SELECT row_id FROM privacy.erased_rows") if erased else []:
        path = Path(exports_dir) / f"eval_set_v{version}.jsonl"
        if not path.exists() or not _export_holds_erased_text(path, erased):
            continue
        tmp = path.with_suffix(".jsonl.tmp")
        evalset.export(conn, tmp, version)
        os.replace(tmp, path)
        n = conn.execute(
            """SELECT count(*) FROM eval.row_spans s WHERE s.version_from <= ? AND (s.version_to IS NULL OR s.version_to > ?)
                 AND s.row_id IN (SELECT row_id FROM privacy.erased_rows)""", [version, version]).fetchone()[0]
        conn.execute("INSERT INTO eval.export_rewrites VALUES (?, ?, ?, ?, ?)", [version, clock.now(), n, erasure_id, path.name])
        rewritten.append(version)
    return rewritten


# ---------------------------------------------------------------------------------------------
# The erasure
# ---------------------------------------------------------------------------------------------


def _check_inputs(customer_id: str, trace_ids: Sequence[str], reason: str | None) -> None:
    if not customer_id.strip():
        raise ErasureError("--customer-id is empty")
    if any(not str(t).strip() for t in trace_ids):
        raise ErasureError("--trace-id is empty")
    # The audit row must never hold the id it exists to protect.
    if reason and any(v and v in reason for v in (customer_id, *trace_ids)):
        raise ErasureError("--reason contains the customer or trace id; the audit row must not hold it: describe the "
                           "request instead (e.g. a ticket number)")


def drift_may_hold(conn: duckdb.DuckDBPyConnection, customer_id: str, trace_ids: Sequence[str] = ()) -> bool:
    """Whether drift may have embedded some of their raw traces: it draws each scored month and the
    month before it (the baseline), scrubbing in memory, so finding those vectors needs the scrubber."""
    if not all(table_exists(conn, s, t) for s, t in (("raw", "traces"), ("drift", "scores"), ("embed", "cache"))):
        return False
    return conn.execute(
        """SELECT count(*) > 0 FROM raw.traces
           WHERE (customer_id = ? OR list_contains(?::VARCHAR[], trace_id))
             AND date_trunc('month', "timestamp")::DATE IN (
               SELECT month FROM drift.scores UNION SELECT (month - INTERVAL 1 MONTH)::DATE FROM drift.scores)""",
        [customer_id, [str(t) for t in trace_ids]]).fetchone()[0]


def previous_erasures(conn: duckdb.DuckDBPyConnection, customer_ref: str) -> list[dict]:
    if not table_exists(conn, "privacy", "erasures"):
        return []
    cur = conn.execute("SELECT erasure_id, erased_at, operator, reason FROM privacy.erasures WHERE customer_ref = ? "
                       "ORDER BY erased_at", [customer_ref])
    return [dict(zip([d[0] for d in cur.description], r)) for r in cur.fetchall()]


def _plan(conn: duckdb.DuckDBPyConnection, key: bytes, customer_id: str, trace_ids: Sequence[str], *, dry_run: bool,
          scrubber, text_roles: Sequence[str], inbox: Path | None) -> tuple[Erasure, list[_Step]]:
    target = _find(conn, key, customer_id, trace_ids)
    mentions = _quarantine_matches(conn, target)
    roles = list(dict.fromkeys([("user",), tuple(text_roles)]))
    _text_hashes(conn, target, scrubber, roles)
    report = Erasure(target.customer_ref, dry_run)
    steps = _steps(conn, target)
    for step in steps:
        report.tables[step.table], report.actions[step.table] = step.count(conn), step.action
    rows = _rows_to_tombstone(conn)
    conn.execute("CREATE OR REPLACE TEMP TABLE erase_rows AS SELECT unnest(?::VARCHAR[]) AS row_id", [rows])
    if table_exists(conn, "eval", "eval_rows"):
        report.tables["eval.eval_rows"], report.actions["eval.eval_rows"] = len(rows), "tombstoned"
        report.tombstoned_rows = rows
        report.versions_with_erased_rows = _versions_holding(conn, "SELECT row_id FROM erase_rows") if rows else []
        report.active_rows = conn.execute("SELECT count(DISTINCT row_id) FROM eval.row_spans WHERE version_to IS NULL "
                                          "AND row_id IN (SELECT row_id FROM erase_rows)").fetchone()[0]
    report.not_erased = _left_in_place(conn, target, mentions, inbox, scrubber is not None)
    report.previous = previous_erasures(conn, target.customer_ref)
    return report, steps


def _audit(conn, report: Erasure, key: bytes, trace_ids: Sequence[str], operator: str, reason: str | None,
           now: dt.datetime) -> None:
    conn.execute(
        "INSERT INTO privacy.erasures VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)",
        [report.erasure_id, now, operator, reason, report.customer_ref,
         sorted({keyed_hash(key, str(t), kind="trace") for t in trace_ids}),
         json.dumps({t: n for t, n in report.tables.items() if n}), len(report.tombstoned_rows),
         report.archived_in_version],
    )


def forget(warehouse: str | Path, exports_dir: str | Path, key: bytes, customer_id: str, trace_ids: Sequence[str] = (),
           *, operator: str, reason: str | None = None, dry_run: bool = False, scrubber=None,
           text_roles: Sequence[str] = ("user",), inbox: Path | None = None, side_store: Path | None = None) -> Erasure:
    """Erase a customer (and any trace given by id) from the warehouse, its exports and its bytes.

    `scrubber` (optional) is the one drift scrubs with; given it, the vectors of their traces drift
    embedded are found too. `side_store` (the review app's, flywheel.core.labeling.review_store) has its
    comments, reservations and verdicts' free text about their traces erased as well, before the
    warehouse commits: a rerun could no longer find which traces were theirs. Opens the warehouse itself: the file is replaced at the end, so no other
    connection to it may be open in this process."""
    customer_id = str(customer_id).strip()
    trace_ids = [str(t).strip() for t in trace_ids]
    _check_inputs(customer_id, trace_ids, reason)
    conn = open_connection(warehouse)
    try:
        conn.execute("BEGIN TRANSACTION")
        try:
            ensure_tables(conn)
            report, steps = _plan(conn, key, customer_id, trace_ids, dry_run=dry_run, scrubber=scrubber,
                                  text_roles=text_roles, inbox=inbox)
            if side_store is not None:
                from flywheel.core.labeling import review_store

                refs = {r[0] for r in conn.execute("SELECT trace_ref FROM erase_refs").fetchall()}
                touched = review_store.erase(side_store, refs, dry_run=dry_run)
                if touched:
                    report.tables["review.side_store"] = touched
                    report.actions["review.side_store"] = "comments deleted, labels' free text blanked"
            if dry_run or not report.changed:
                rollback_quietly(conn)  # a dry run, or a second run, leaves the warehouse exactly as it was
            else:
                now = clock.now()
                report.erasure_id = f"er_{uuid.uuid4().hex[:12]}"
                for step in steps:
                    step.apply(conn)
                if report.tombstoned_rows:
                    report.archived_in_version = _tombstone(conn, report.erasure_id, now)
                _audit(conn, report, key, trace_ids, operator, reason, now)
                conn.execute("COMMIT")
        except BaseException:
            rollback_quietly(conn)
            raise
        if dry_run:
            return report
        _finish(conn, warehouse if isinstance(warehouse, lake.Lake) else Path(warehouse), Path(exports_dir), report)
        conn = None  # _finish closed it (the file may have been replaced)
    finally:
        if conn is not None:
            conn.close()
    from flywheel.core.common.db import connect
    from flywheel.core.evalset.regression import lookup_customer

    with connect(warehouse, read_only=True) as after:
        report.lookup_rows_after = len(lookup_customer(after, report.customer_ref))
    return report


def _finish(conn: duckdb.DuckDBPyConnection, warehouse: Path, exports_dir: Path, report: Erasure) -> None:
    """After the commit: rewrite the exports, write the new version's, rebuild the file. Each step is
    found again by the next run if this one is interrupted, so a second run completes the first.
    Closes conn."""
    from flywheel.core.evalset import versions as evalset

    report.exports_rewritten = rewrite_exports(conn, exports_dir, report.erasure_id)
    if table_exists(conn, "privacy", "erased_rows"):
        evalset.export_versions(conn, exports_dir)  # the version archiving erased rows, as a fold-in writes it
    pending = (table_exists(conn, "privacy", "erasures") and
               conn.execute("SELECT count(*) FROM privacy.erasures WHERE bytes_erased_at IS NULL").fetchone()[0])
    if not pending:
        conn.close()
        return
    if lake.on_lake(conn):  # no file to rebuild: the lake's tables are rewritten and its history dropped
        started = time.monotonic()
        tables = rebuild_file.purge_lake(conn)
        conn.execute("UPDATE privacy.erasures SET bytes_erased_at = ? WHERE bytes_erased_at IS NULL", [clock.now()])
        conn.close()
        report.rebuilt = rebuild_file.Rebuilt(0, 0, time.monotonic() - started, lake_tables=tables)
        return
    report.rebuilt = rebuild_file.rebuild(
        conn, warehouse,
        finish_sql=[("UPDATE {db}.privacy.erasures SET bytes_erased_at = ? WHERE bytes_erased_at IS NULL", [clock.now()])])
