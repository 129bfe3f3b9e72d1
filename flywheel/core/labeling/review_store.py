"""The review app's side store: a small SQLite file beside the warehouse, for what people write.

Why a second file: DuckDB lets one process write the warehouse at a time, and the weekly loop, the
drift job and every `flywheel` verb take that lock for seconds to minutes. A reviewer in a browser must
never wait on them, and they must never fail because someone is labelling. SQLite in WAL mode takes
many short writers from many processes, each in a millisecond, with readers never blocked.

So a label from the web or the API is validated (by `labels.validate`, the rules every path shares)
and appended here, to the outbox, in one short SQLite transaction: the reviewer is answered at once.
`land` then appends each outbox label to label.labels through `labels.record` (the same call the
terminal review and the spreadsheet import make) whenever the warehouse is free, in order, once: a
label already in label.labels (a crash between the two commits) is marked landed, not written again.

Also here: reservations (who is labelling which trace, until when), skips, comments and the verdicts of
double review (each reviewer's verdict kept; only an agreed or adjudicated label reaches the outbox).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb

from flywheel.core.common import clock
from flywheel.core.common.db import transaction
from flywheel.core.labeling import labels, reviewers, taxonomy

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS reservations (
         trace_ref TEXT PRIMARY KEY, reviewer TEXT NOT NULL, reserved_until TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS skips (
         reviewer TEXT NOT NULL, trace_ref TEXT NOT NULL, skipped_at TEXT NOT NULL, PRIMARY KEY (reviewer, trace_ref))""",
    """CREATE TABLE IF NOT EXISTS comments (
         id INTEGER PRIMARY KEY, trace_ref TEXT NOT NULL, reviewer TEXT NOT NULL, body TEXT NOT NULL,
         created_at TEXT NOT NULL)""",
    # Every verdict given in the app, final or not (double review keeps both reviewers').
    """CREATE TABLE IF NOT EXISTS verdicts (
         label_id TEXT PRIMARY KEY, trace_ref TEXT NOT NULL, reviewer TEXT NOT NULL, bucket TEXT NOT NULL,
         taxonomy_code TEXT, payload TEXT NOT NULL, kind TEXT NOT NULL, submitted_at TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS verdicts_trace ON verdicts (trace_ref)",
    # Final labels on their way to label.labels, in order (seq), each landed once.
    """CREATE TABLE IF NOT EXISTS outbox (
         seq INTEGER PRIMARY KEY, label_id TEXT NOT NULL UNIQUE, trace_ref TEXT NOT NULL, payload TEXT NOT NULL,
         new_code TEXT, queued_at TEXT NOT NULL, landed_at TEXT, outcome TEXT, error TEXT)""",
    "CREATE INDEX IF NOT EXISTS outbox_trace ON outbox (trace_ref)",
)


def path_for(data_dir: str | Path) -> Path:
    """Where a data directory keeps its side store."""
    return Path(data_dir) / "review" / "review.sqlite3"


def open_store(path: str | Path) -> sqlite3.Connection:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: transactions are ours (BEGIN IMMEDIATE where a read decides a write).
    store = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    store.execute("PRAGMA journal_mode = WAL")
    store.execute("PRAGMA synchronous = NORMAL")  # durable at each checkpoint; WAL keeps it consistent
    store.execute("PRAGMA busy_timeout = 30000")
    for statement in SCHEMA:
        store.execute(statement)
    reviewers.ensure_tables(store)
    return store


@contextlib.contextmanager
def opened(path: str | Path) -> Iterator[sqlite3.Connection]:
    store = open_store(path)
    try:
        yield store
    finally:
        store.close()


@contextlib.contextmanager
def immediate(store: sqlite3.Connection) -> Iterator[None]:
    """A write transaction taken up front, so a read that decides a write sees what it writes over."""
    store.execute("BEGIN IMMEDIATE")
    try:
        yield
        store.execute("COMMIT")
    except BaseException:
        store.execute("ROLLBACK")
        raise


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat()


# ---------------------------------------------------------------------------------------------
# Reservations and skips
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Reservation:
    trace_ref: str
    reviewer: str
    reserved_until: dt.datetime


def reservation(store: sqlite3.Connection, trace_ref: str, now: dt.datetime | None = None) -> Reservation | None:
    """The unexpired reservation of a trace, if any."""
    now = now or clock.now()
    row = store.execute("SELECT reviewer, reserved_until FROM reservations WHERE trace_ref = ? AND reserved_until > ?",
                        [trace_ref, _iso(now)]).fetchone()
    return Reservation(trace_ref, row[0], dt.datetime.fromisoformat(row[1])) if row else None


def reserve_next(store: sqlite3.Connection, reviewer: str, candidates: Sequence[str], *, final: set[str],
                 minutes: float, reviewers_per_trace: int = 1, now: dt.datetime | None = None) -> Reservation | None:
    """Reserve for `reviewer` the first of `candidates` (in review order) still open to them: no final
    label (`final`, plus the outbox), not reserved by anyone else, not already given a verdict by them,
    fewer verdicts than `reviewers_per_trace`, not waiting on adjudication. Traces this reviewer skipped
    come last, oldest skip first. A reservation they already hold among the candidates is renewed and
    returned, so reloading the page does not lose their place."""
    now = now or clock.now()
    until = now + dt.timedelta(minutes=minutes)
    with immediate(store):
        store.execute("DELETE FROM reservations WHERE reserved_until <= ?", [_iso(now)])
        held = {r[0]: r[1] for r in store.execute("SELECT trace_ref, reviewer FROM reservations")}
        closed = final | {r[0] for r in store.execute("SELECT DISTINCT trace_ref FROM outbox")}
        verdicts: dict[str, set[str]] = {}
        for ref, who in store.execute("SELECT trace_ref, reviewer FROM verdicts WHERE kind = 'review'"):
            verdicts.setdefault(ref, set()).add(who)
        skipped = dict(store.execute("SELECT trace_ref, skipped_at FROM skips WHERE reviewer = ?", [reviewer]).fetchall())

        def open_to_me(ref: str) -> bool:
            given = verdicts.get(ref, set())
            return (ref not in closed and held.get(ref, reviewer) == reviewer and reviewer not in given
                    and len(given) < reviewers_per_trace)

        open_refs = [ref for ref in candidates if open_to_me(ref)]
        mine = [ref for ref in open_refs if held.get(ref) == reviewer]
        fresh = [ref for ref in open_refs if ref not in skipped]
        later = sorted((ref for ref in open_refs if ref in skipped), key=lambda ref: skipped[ref])
        choice = (mine or fresh or later or [None])[0]
        if choice is None:
            return None
        store.execute("INSERT OR REPLACE INTO reservations VALUES (?, ?, ?)", [choice, reviewer, _iso(until)])
    return Reservation(choice, reviewer, until)


def reserve(store: sqlite3.Connection, trace_ref: str, reviewer: str, *, minutes: float,
            now: dt.datetime | None = None) -> Reservation | None:
    """Reserve one given trace (opening it from the queue, or going back to it); None when someone else
    holds it."""
    now = now or clock.now()
    with immediate(store):
        current = reservation(store, trace_ref, now)
        if current and current.reviewer != reviewer:
            return None
        until = now + dt.timedelta(minutes=minutes)
        store.execute("INSERT OR REPLACE INTO reservations VALUES (?, ?, ?)", [trace_ref, reviewer, _iso(until)])
    return Reservation(trace_ref, reviewer, until)


def release(store: sqlite3.Connection, trace_ref: str, reviewer: str) -> None:
    with store:
        store.execute("DELETE FROM reservations WHERE trace_ref = ? AND reviewer = ?", [trace_ref, reviewer])


def skip(store: sqlite3.Connection, trace_ref: str, reviewer: str) -> None:
    """Release the trace and serve it to this reviewer again only after the rest."""
    with immediate(store):
        store.execute("DELETE FROM reservations WHERE trace_ref = ? AND reviewer = ?", [trace_ref, reviewer])
        store.execute("INSERT OR REPLACE INTO skips VALUES (?, ?, ?)", [reviewer, trace_ref, _iso(clock.now())])


def reservations(store: sqlite3.Connection, now: dt.datetime | None = None) -> dict[str, Reservation]:
    now = now or clock.now()
    rows = store.execute("SELECT trace_ref, reviewer, reserved_until FROM reservations WHERE reserved_until > ?",
                         [_iso(now)]).fetchall()
    return {r: Reservation(r, who, dt.datetime.fromisoformat(until)) for r, who, until in rows}


# ---------------------------------------------------------------------------------------------
# Comments
# ---------------------------------------------------------------------------------------------

MAX_COMMENT = 4000


def add_comment(store: sqlite3.Connection, trace_ref: str, reviewer: str, body: str) -> None:
    body = (body or "").strip()
    if not body:
        raise ValueError("a comment needs some text")
    if len(body) > MAX_COMMENT:
        raise ValueError(f"a comment holds at most {MAX_COMMENT} characters")
    with store:
        store.execute("INSERT INTO comments (trace_ref, reviewer, body, created_at) VALUES (?, ?, ?, ?)",
                      [trace_ref, reviewer, body, _iso(clock.now())])


def comments(store: sqlite3.Connection, trace_ref: str) -> list[dict]:
    cur = store.execute("SELECT reviewer, body, created_at FROM comments WHERE trace_ref = ? ORDER BY id", [trace_ref])
    return [{"reviewer": r, "body": b, "created_at": c} for r, b, c in cur.fetchall()]


# ---------------------------------------------------------------------------------------------
# Verdicts, double review and the outbox
# ---------------------------------------------------------------------------------------------

def _payload(label: labels.Label, entry: taxonomy.TaxonomyEntry | None) -> str:
    row = asdict(label)
    row["reviewed_at"] = label.reviewed_at.isoformat()
    row["new_entry"] = asdict(entry) if entry else None
    return json.dumps(row)


def _from_payload(payload: str) -> tuple[labels.Label, taxonomy.TaxonomyEntry | None]:
    row = json.loads(payload)
    entry = row.pop("new_entry", None)
    row["reviewed_at"] = dt.datetime.fromisoformat(row["reviewed_at"])
    return labels.Label(**row), (taxonomy.TaxonomyEntry(**entry) if entry else None)


@dataclass(frozen=True)
class Outcome:
    """What became of a verdict: `final` (queued to land in label.labels), `waiting` (double review:
    the second reviewer has not answered yet), `agreed` (it matched the first: the agreed label is
    queued) or `disagreement` (it went to the adjudication list)."""
    state: str
    label: labels.Label


class AwaitingAdjudication(ValueError):
    """A verdict on a trace whose two reviewers disagreed: only an admin's adjudication decides it now."""


def submit(store: sqlite3.Connection, label: labels.Label, entry: taxonomy.TaxonomyEntry | None = None, *,
           reviewers_per_trace: int = 1, kind: str = "review") -> Outcome:
    """Store a validated verdict. With one reviewer per trace (or for a sibling accepted or an
    adjudication) it is the final label; with two, the second verdict decides: the same bucket and code
    is agreement (the label is queued, both names on it), anything else waits for an admin."""
    double = reviewers_per_trace > 1 and kind == "review"
    with immediate(store):
        if double and label.trace_ref in {d["trace_ref"] for d in disagreements(store)}:
            raise AwaitingAdjudication(f"trace {label.trace_ref}: its two reviewers disagreed; an admin adjudicates it "
                                       "on the Agreement page")
        store.execute("DELETE FROM reservations WHERE trace_ref = ? AND reviewer = ?", [label.trace_ref, label.reviewer])
        store.execute("DELETE FROM skips WHERE trace_ref = ? AND reviewer = ?", [label.trace_ref, label.reviewer])
        if double:  # a reviewer who changes their mind before the other answers replaces their verdict
            store.execute("DELETE FROM verdicts WHERE trace_ref = ? AND reviewer = ? AND kind = 'review'",
                          [label.trace_ref, label.reviewer])
        store.execute("INSERT INTO verdicts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                      [label.label_id, label.trace_ref, label.reviewer, label.bucket, label.taxonomy_code,
                       _payload(label, entry), kind, _iso(label.reviewed_at)])
        if reviewers_per_trace <= 1 or kind != "review":
            _queue(store, label, entry)
            return Outcome("final", label)
        given = _review_verdicts(store, label.trace_ref)
        if len(given) < 2:
            return Outcome("waiting", label)
        first, second = given[0], given[-1]
        if (first[0].bucket, first[0].taxonomy_code or None) != (second[0].bucket, second[0].taxonomy_code or None):
            return Outcome("disagreement", label)
        agreed = _combined(first, second)
        _queue(store, agreed, first[1] or second[1])
        return Outcome("agreed", agreed)


def _review_verdicts(store: sqlite3.Connection, trace_ref: str) -> list[tuple[labels.Label, taxonomy.TaxonomyEntry | None]]:
    rows = store.execute("SELECT payload FROM verdicts WHERE trace_ref = ? AND kind = 'review' ORDER BY submitted_at, "
                         "rowid", [trace_ref]).fetchall()
    return [_from_payload(p) for (p,) in rows]


def _combined(first, second) -> labels.Label:
    """The agreed label: the first verdict's wording (the second reviewer agreed with it unseen), with
    both reviewers' names, dated when agreement was reached; the placeholders either marked as hiding
    no personal data are both proposals."""
    label = first[0]
    marked = " ".join(dict.fromkeys(" ".join(filter(None, (label.not_personal, second[0].not_personal))).split()))
    return labels.Label(**{**asdict(label), "not_personal": marked or None,
                           "reviewer": f"{label.reviewer}+{second[0].reviewer}",
                           "reviewed_at": second[0].reviewed_at, "label_id": second[0].label_id + "-agreed",
                           "source": "double_review"})


def _queue(store: sqlite3.Connection, label: labels.Label, entry: taxonomy.TaxonomyEntry | None) -> None:
    store.execute("INSERT INTO outbox (label_id, trace_ref, payload, new_code, queued_at) VALUES (?, ?, ?, ?, ?)",
                  [label.label_id, label.trace_ref, _payload(label, entry), entry.code if entry else None,
                   _iso(clock.now())])


def adjudicate(store: sqlite3.Connection, label: labels.Label, entry: taxonomy.TaxonomyEntry | None = None) -> Outcome:
    """An admin's verdict on a disagreement: the final label."""
    label.source = "adjudication"
    return submit(store, label, entry, kind="adjudication")


def disagreements(store: sqlite3.Connection) -> list[dict]:
    """Traces with two review verdicts that differ and no final label yet: the adjudication list."""
    rows = store.execute(
        """SELECT trace_ref FROM verdicts WHERE kind = 'review' GROUP BY trace_ref
           HAVING count(DISTINCT reviewer) >= 2 AND count(DISTINCT bucket || '/' || coalesce(taxonomy_code, '')) > 1
              AND trace_ref NOT IN (SELECT trace_ref FROM outbox)
           ORDER BY min(submitted_at)""").fetchall()
    return [{"trace_ref": ref, "verdicts": [v[0] for v in _review_verdicts(store, ref)]} for (ref,) in rows]


def paired_verdicts(store: sqlite3.Connection) -> list[tuple[str, labels.Label, labels.Label]]:
    """(trace_ref, first, second) for every trace two reviewers judged: what agreement is measured on."""
    refs = store.execute("SELECT trace_ref FROM verdicts WHERE kind = 'review' GROUP BY trace_ref "
                         "HAVING count(DISTINCT reviewer) >= 2").fetchall()
    out = []
    for (ref,) in refs:
        given = _review_verdicts(store, ref)
        out.append((ref, given[0][0], given[1][0]))
    return out


def verdict_counts(store: sqlite3.Connection) -> dict[str, int]:
    return dict(store.execute("SELECT trace_ref, count(DISTINCT reviewer) FROM verdicts WHERE kind = 'review' "
                              "GROUP BY trace_ref").fetchall())


def queued_refs(store: sqlite3.Connection) -> set[str]:
    """Traces with a final label in the outbox (landed or not): reviewed, as far as the queue goes."""
    return {r[0] for r in store.execute("SELECT DISTINCT trace_ref FROM outbox WHERE error IS NULL")}


def opened_codes(store: sqlite3.Connection) -> dict[str, taxonomy.TaxonomyEntry]:
    """Taxonomy entries opened by labels in the outbox, landed or not (a sibling may name one before the
    warehouse, or the app's snapshot of it, has it)."""
    rows = store.execute("SELECT payload FROM outbox WHERE new_code IS NOT NULL AND error IS NULL").fetchall()
    found = {}
    for (payload,) in rows:
        _, entry = _from_payload(payload)
        if entry:
            found[entry.code] = entry
    return found


def pending_count(store: sqlite3.Connection) -> int:
    return store.execute("SELECT count(*) FROM outbox WHERE landed_at IS NULL").fetchone()[0]


def rejected(store: sqlite3.Connection) -> list[dict]:
    cur = store.execute("SELECT label_id, trace_ref, error, landed_at FROM outbox WHERE error IS NOT NULL ORDER BY seq")
    return [{"label_id": a, "trace_ref": b, "error": c, "at": d} for a, b, c, d in cur.fetchall()]


def verdicts_of(store: sqlite3.Connection, trace_ref: str) -> list[dict]:
    cur = store.execute("SELECT reviewer, bucket, taxonomy_code, kind, submitted_at FROM verdicts WHERE trace_ref = ? "
                        "ORDER BY submitted_at, rowid", [trace_ref])
    return [dict(zip(("reviewer", "bucket", "taxonomy_code", "kind", "submitted_at"), r)) for r in cur.fetchall()]


@dataclass
class Landing:
    landed: int = 0
    unchanged: int = 0
    rejected: int = 0
    rows: list = field(default_factory=list)  # label.labels rows written, as dicts
    new_codes: int = 0  # taxonomy entries added with them


def land(store: sqlite3.Connection, conn: duckdb.DuckDBPyConnection, limit: int = 500) -> Landing:
    """Append the outbox's waiting labels to label.labels, in order, through `labels.record`: the same
    validation as every other path. A label the warehouse now refuses (its trace erased, a code taken
    meanwhile with another definition) is marked rejected with the reason, never retried, never lost."""
    result = Landing()
    labels.ensure_tables(conn)
    rows = store.execute("SELECT seq, label_id, payload FROM outbox WHERE landed_at IS NULL ORDER BY seq LIMIT ?",
                         [limit]).fetchall()
    for seq, label_id, payload in rows:
        label, entry = _from_payload(payload)
        outcome, error = "landed", None
        if conn.execute("SELECT 1 FROM label.labels WHERE label_id = ?", [label_id]).fetchone():
            outcome = "landed"  # committed there before this store heard of it: once is enough
        else:
            try:
                with transaction(conn):
                    if entry is not None and entry.code not in taxonomy.codes(conn):
                        taxonomy.add(conn, entry)
                        result.new_codes += 1
                    outcome = "landed" if labels.record(conn, label) else "unchanged"
                if outcome == "landed":
                    result.rows.append(asdict(label))
            except (labels.LabelError, taxonomy.TaxonomyError) as exc:
                outcome, error = "rejected", str(exc)
        with store:
            store.execute("UPDATE outbox SET landed_at = ?, outcome = ?, error = ? WHERE seq = ?",
                          [_iso(clock.now()), outcome, error, seq])
        setattr(result, outcome, getattr(result, outcome) + 1)
    return result


# ---------------------------------------------------------------------------------------------
# Erasure (flywheel forget)
# ---------------------------------------------------------------------------------------------

FREE_TEXT = ("expected_behaviour", "criterion_value", "pii_note")


def erase(path: str | Path, trace_refs: set[str], *, dry_run: bool = False) -> int:
    """What the side store holds about these traces, for `flywheel forget`: comments, reservations and
    skips deleted; the free text of verdicts and outbox labels blanked, as label.labels' is (verdict,
    code and reviewer stay). The file is then vacuumed and its write-ahead log truncated, so the
    deleted text is gone from its bytes too. Returns the rows touched (counted only, when dry)."""
    path = Path(path)
    if not path.exists() or not trace_refs:
        return 0
    refs = sorted(trace_refs)
    marks = ",".join("?" for _ in refs)
    with opened(path) as store:
        counts = [store.execute(f"SELECT count(*) FROM {table} WHERE trace_ref IN ({marks})", refs).fetchone()[0]
                  for table in ("comments", "reservations", "skips", "verdicts", "outbox")]
        if dry_run or not any(counts):
            return sum(counts)
        store.execute("PRAGMA secure_delete = ON")  # freed pages are zeroed, not left holding the text
        with immediate(store):
            for table in ("comments", "reservations", "skips"):
                store.execute(f"DELETE FROM {table} WHERE trace_ref IN ({marks})", refs)
            for table, key in (("verdicts", "label_id"), ("outbox", "seq")):
                rows = store.execute(f"SELECT {key}, payload FROM {table} WHERE trace_ref IN ({marks})", refs).fetchall()
                for row_key, payload in rows:
                    data = json.loads(payload)
                    data.update({k: None for k in FREE_TEXT if data.get(k)})
                    store.execute(f"UPDATE {table} SET payload = ? WHERE {key} = ?", [json.dumps(data), row_key])
        store.execute("VACUUM")
        store.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return sum(counts)
