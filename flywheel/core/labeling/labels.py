"""Labels: a reviewer's verdict on one scrubbed trace, append-only.

A label puts the trace in one of the essay's three buckets: a known failure (taxonomy code, expected
behaviour and a typed pass criterion, so it can become an eval row), a new failure (the same, with a
code just added to the taxonomy), or not a bug (reviewed, no row). It also carries the adversarial flag
and `pii_ok`, the reviewer's confirmation that the scrubbed text is clean; when it is not, the class
of what leaked goes to scrub.residue and the trace cannot become a row until it is scrubbed again.

Relabelling never updates: a new label supersedes the old one, and the history stays.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import asdict, dataclass, field

import duckdb

from flywheel.core.common import clock
from flywheel.core.common.db import create_table, table_exists
from flywheel.core.labeling import taxonomy
from flywheel.core.scrub import keep_terms, residue

BUCKETS = ("known_failure", "new_failure", "not_a_bug")
FAILURE_BUCKETS = ("known_failure", "new_failure")
CRITERION_TYPES = ("contains", "not_contains", "regex", "equals", "refusal", "rubric")
# `refusal` needs no value: the reply must decline (the regression runner documents its heuristic).
CRITERIA_WITHOUT_VALUE = ("refusal",)


@dataclass
class Label:
    trace_ref: str
    bucket: str
    reviewer: str
    taxonomy_code: str | None = None
    expected_behaviour: str | None = None
    criterion_type: str | None = None
    criterion_value: str | None = None
    adversarial: bool = False
    pii_ok: bool = True
    pii_issue_class: str | None = None
    pii_note: str | None = None
    # Placeholders the reviewer says hide no personal data ("[NAME_3] [ORG_2]"): each is
    # a keep-term proposal (flywheel.core.scrub.keep_terms), never a word.
    not_personal: str | None = None
    source: str = "review"  # review | csv | sibling | demo
    # The suggestion on screen when the label was given (label.suggestions), so agreement can be measured;
    # a label equal to it was accepted. None when there was none.
    suggested_bucket: str | None = None
    suggested_code: str | None = None
    suggestion_confidence: float | None = None
    reviewed_at: dt.datetime = field(default_factory=clock.now)
    label_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def pass_criterion(self) -> str | None:
        if not self.criterion_type:
            return None
        return self.criterion_type + (f":{self.criterion_value}" if self.criterion_value else "")


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


def _blank(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def validate(label: Label, known_codes: set[str]) -> list[FieldError]:
    """Every problem with a label, each naming its field and why."""
    errors: list[FieldError] = []
    if _blank(label.trace_ref):
        errors.append(FieldError("trace_ref", "missing: which scrubbed trace is this about?"))
    if _blank(label.reviewer):
        errors.append(FieldError("reviewer", "missing: who reviewed it?"))
    if label.bucket not in BUCKETS:
        errors.append(FieldError("bucket", f"{label.bucket!r} is not one of {', '.join(BUCKETS)}"))
        return errors
    if label.bucket in FAILURE_BUCKETS:
        if _blank(label.taxonomy_code):
            errors.append(FieldError("taxonomy_code", "a failure needs a taxonomy code"))
        elif label.taxonomy_code not in known_codes:
            errors.append(FieldError("taxonomy_code", f"unknown code {label.taxonomy_code!r}; known: "
                                     + ", ".join(sorted(known_codes)) + " (add new ones with flywheel taxonomy add)"))
        if _blank(label.expected_behaviour):
            errors.append(FieldError("expected_behaviour", "a failure needs the behaviour the assistant should have shown"))
        errors += criterion_errors(label)
    elif not _blank(label.taxonomy_code) and label.taxonomy_code not in known_codes:
        errors.append(FieldError("taxonomy_code", f"unknown code {label.taxonomy_code!r}"))
    if not label.pii_ok and _blank(label.pii_issue_class):
        errors.append(FieldError("pii_issue_class", "when the scrubbed text is not clean, say which class leaked "
                                 "(e.g. PERSON, EMAIL_ADDRESS); never the value"))
    errors += [FieldError("not_personal", problem) for problem in keep_terms.parse(label.not_personal)[1]]
    return errors


def criterion_errors(label: Label) -> list[FieldError]:
    kind, value = label.criterion_type, label.criterion_value
    if _blank(kind):
        return [FieldError("criterion_type", f"a failure needs a pass criterion: one of {', '.join(CRITERION_TYPES)}")]
    if kind not in CRITERION_TYPES:
        return [FieldError("criterion_type", f"{kind!r} is not one of {', '.join(CRITERION_TYPES)}")]
    if kind not in CRITERIA_WITHOUT_VALUE and _blank(value):
        return [FieldError("criterion_value", f"a {kind} criterion needs a value")]
    if kind == "regex":
        try:
            re.compile(value)
        except re.error as exc:
            return [FieldError("criterion_value", f"invalid regex: {exc}")]
    return []


def parse_criterion(text: str | None) -> tuple[str | None, str | None]:
    """'contains:30 days' -> ('contains', '30 days'); 'refusal' -> ('refusal', None)."""
    if _blank(text):
        return None, None
    kind, _, value = text.strip().partition(":")
    return kind.strip().lower(), (value.strip() or None)


# ---------------------------------------------------------------------------------------------
# Storage
# ---------------------------------------------------------------------------------------------

COLUMNS = (
    "label_id", "trace_ref", "bucket", "taxonomy_code", "expected_behaviour", "criterion_type", "criterion_value",
    "adversarial", "pii_ok", "pii_issue_class", "pii_note", "reviewer", "reviewed_at", "source",
    "suggested_bucket", "suggested_code", "suggestion_confidence", "not_personal",
)


def ensure_tables(conn: duckdb.DuckDBPyConnection) -> None:
    taxonomy.ensure_table(conn)
    create_table(
        conn, """CREATE TABLE IF NOT EXISTS label.labels (
             label_id VARCHAR PRIMARY KEY, trace_ref VARCHAR NOT NULL, bucket VARCHAR NOT NULL,
             taxonomy_code VARCHAR, expected_behaviour VARCHAR, criterion_type VARCHAR, criterion_value VARCHAR,
             adversarial BOOLEAN NOT NULL, pii_ok BOOLEAN NOT NULL, pii_issue_class VARCHAR, pii_note VARCHAR,
             reviewer VARCHAR NOT NULL, reviewed_at TIMESTAMP NOT NULL, source VARCHAR NOT NULL)"""
    )
    # Added with label suggestions and keep-term proposals; a warehouse from before gains them (NULL: no
    # suggestion was shown, no placeholder marked).
    have = label_columns(conn)
    for column, kind in (("suggested_bucket", "VARCHAR"), ("suggested_code", "VARCHAR"),
                         ("suggestion_confidence", "DOUBLE"), ("not_personal", "VARCHAR")):
        if column not in have:  # only then: a read-only connection may call this too
            conn.execute(f"ALTER TABLE label.labels ADD COLUMN {column} {kind}")
    # The latest label per trace is the one in force; older ones stay as history.
    conn.execute(
        """CREATE VIEW IF NOT EXISTS label.current_labels AS
           SELECT * FROM label.labels
           QUALIFY row_number() OVER (PARTITION BY trace_ref ORDER BY reviewed_at DESC, label_id DESC) = 1"""
    )


def label_columns(conn: duckdb.DuckDBPyConnection) -> set[str]:
    """The columns label.labels has (none before it exists); a read, so a read-only connection works."""
    return {r[0] for r in conn.execute(
        "SELECT column_name FROM duckdb_columns() WHERE schema_name = 'label' AND table_name = 'labels'").fetchall()}


class LabelError(ValueError):
    def __init__(self, errors: list[FieldError]):
        super().__init__("; ".join(map(str, errors)))
        self.errors = errors


def _same_verdict(a: dict, b: Label) -> bool:
    keys = ("bucket", "taxonomy_code", "expected_behaviour", "criterion_type", "criterion_value", "adversarial",
            "pii_ok", "pii_issue_class", "not_personal")
    return all((a.get(k) or None) == (getattr(b, k) or None) for k in keys)


def record(conn: duckdb.DuckDBPyConnection, label: Label) -> bool:
    """Validate and append a label. Returns False (and stores nothing) when it repeats the verdict in
    force for that trace, so re-importing the same spreadsheet adds nothing."""
    ensure_tables(conn)
    errors = validate(label, taxonomy.codes(conn))
    if not _blank(label.trace_ref) and not is_scrubbed_trace(conn, label.trace_ref):
        errors.insert(0, FieldError("trace_ref", f"no scrubbed trace {label.trace_ref!r} in scrub.anonymized_traces"))
    if errors:
        raise LabelError(errors)
    current = current_label(conn, label.trace_ref)
    if current and _same_verdict(current, label):
        return False
    placeholders, _ = keep_terms.parse(label.not_personal)
    missing = keep_terms.missing_placeholders(conn, label.trace_ref, placeholders)
    if missing:
        raise LabelError([FieldError("not_personal", f"{', '.join(missing)} not in this trace's scrubbed text")])
    row = asdict(label)
    conn.execute(f"INSERT INTO label.labels ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})",
                 [row[c] for c in COLUMNS])
    if not label.pii_ok:
        residue.record_miss(conn, label.trace_ref, label.pii_issue_class, note=label.pii_note, reported_by=label.reviewer)
    if placeholders:
        keep_terms.propose(conn, label.label_id, label.trace_ref, placeholders, label.reviewer)
    return True


def is_scrubbed_trace(conn: duckdb.DuckDBPyConnection, trace_ref: str) -> bool:
    if not table_exists(conn, "scrub", "anonymized_traces"):
        return False
    return conn.execute("SELECT count(*) FROM scrub.anonymized_traces WHERE trace_ref = ?", [trace_ref]).fetchone()[0] > 0


def current_label(conn: duckdb.DuckDBPyConnection, trace_ref: str) -> dict | None:
    ensure_tables(conn)
    cur = conn.execute("SELECT * FROM label.current_labels WHERE trace_ref = ?", [trace_ref])
    row = cur.fetchone()
    return dict(zip([d[0] for d in cur.description], row)) if row else None


def labelled(conn: duckdb.DuckDBPyConnection, trace_refs: list[str]) -> set[str]:
    """Which of these traces have a label, in one query."""
    ensure_tables(conn)
    if not trace_refs:
        return set()
    rows = conn.execute("SELECT DISTINCT trace_ref FROM label.labels WHERE list_contains(?, trace_ref)",
                        [trace_refs]).fetchall()
    return {r[0] for r in rows}


def history(conn: duckdb.DuckDBPyConnection, trace_ref: str) -> list[dict]:
    ensure_tables(conn)
    cur = conn.execute("SELECT * FROM label.labels WHERE trace_ref = ? ORDER BY reviewed_at, label_id", [trace_ref])
    return [dict(zip([d[0] for d in cur.description], r)) for r in cur.fetchall()]
