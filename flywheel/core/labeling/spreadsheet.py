"""The spreadsheet round trip teams already have: export the queue as CSV, fill in the label columns,
import it back.

Import policy: whole file or nothing. Every row is validated first; when any row has errors, each is
reported by spreadsheet row number and column and nothing is imported, so the reviewer fixes them and
imports the same file again. A valid file commits in one transaction. A row whose verdict is already
the one in force for its trace adds nothing, so importing the same file twice adds nothing the second
time. Rows whose `bucket` is empty are not reviewed yet and are skipped.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from flywheel.core.common.db import table_exists, transaction
from flywheel.core.common.records import RecordsError, csv_rows
from flywheel.core.common.spreadsheet_safety import escape_row, unescape_record
from flywheel.core.labeling import labels, taxonomy
from flywheel.core.labeling.queue import format_conversation
from flywheel.core.scrub import keep_terms

CONTEXT_COLUMNS = ("trace_ref", "week_start", "priority", "reasons", "adversarial_candidate", "judge_score", "intent",
                   "cohort", "conversation")
# The loop's suggestion (label.suggestions), never a label: type `accept` as the bucket to take it
# (bucket, code, and the expected behaviour and criterion below unless you fill those in), or overwrite.
SUGGESTION_COLUMNS = ("suggested_bucket", "suggested_code", "suggestion_confidence", "suggested_expected_behaviour",
                      "suggested_pass_criterion", "similar_traces")
ACCEPT = "accept"
LABEL_COLUMNS = (
    "bucket", "taxonomy_code", "new_code_name", "new_code_definition", "expected_behaviour", "criterion_type",
    "criterion_value", "adversarial", "pii_ok", "pii_issue_class", "pii_note", "not_personal", "reviewer",
)
TRUE = {"true", "yes", "y", "1", "x"}
FALSE = {"false", "no", "n", "0", ""}


@dataclass
class ImportReport:
    imported: int = 0
    unchanged: int = 0
    not_reviewed: int = 0
    new_codes: list[str] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)  # {"row", "column", "message"}

    def to_json(self) -> dict:
        return {"imported": self.imported, "unchanged": self.unchanged, "not_reviewed": self.not_reviewed,
                "new_codes": self.new_codes, "errors": self.errors}


def _placeholders(text: str) -> str | None:
    """The not_personal cell as the label stores it: placeholders one space apart (what is not a
    placeholder stays, for labels.validate to name)."""
    return " ".join(re.split(r"[\s,;]+", text.strip())) if text and text.strip() else None


def _suggestion_cells(s: dict | None) -> list:
    if not s or not s["suggested_bucket"]:
        return ["", "", "" if not s else f"{s['suggestion_confidence']:.2f}", "", "",
                " ".join(s["similar_refs"] or []) if s else ""]
    criterion = s["suggested_criterion_type"] or ""
    if s["suggested_criterion_value"]:
        criterion += f":{s['suggested_criterion_value']}"
    return [s["suggested_bucket"], s["suggested_code"] or "", f"{s['suggestion_confidence']:.2f}",
            s["suggested_expected_behaviour"] or "", criterion, " ".join(s["similar_refs"] or [])]


def export_queue(queue: pl.DataFrame, path: str | Path, suggestions: dict[str, dict] | None = None) -> int:
    suggestions = suggestions or {}
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(CONTEXT_COLUMNS + SUGGESTION_COLUMNS + LABEL_COLUMNS)
        for row in queue.iter_rows(named=True):
            # Every cell a spreadsheet would run (=, +, -, @, tab, CR first) is written inert; import reverses it.
            writer.writerow(escape_row([
                row["trace_ref"], str(row["week_start"])[:10], ["anomaly", "stratified", "random"][row["priority"]],
                ", ".join(row["reasons"] or []), "yes" if row.get("adversarial_candidate") else "",
                row["judge_score"], row["intent"], row["cohort"],
                format_conversation(row["messages"]),
            ] + _suggestion_cells(suggestions.get(row["trace_ref"]))) + [""] * len(LABEL_COLUMNS))
    return queue.height


def _flag(value: str, column: str, default: bool) -> tuple[bool, dict | None]:
    low = (value or "").strip().lower()
    if not low:
        return default, None
    if low in TRUE:
        return True, None
    if low in FALSE:
        return False, None
    return default, {"column": column, "message": "not true/false (yes/no, 1/0 also work)"}


class SpreadsheetError(ValueError):
    """A file that cannot be read as a labels spreadsheet at all: one line naming the file and where."""


@dataclass
class ParsedRow:
    number: int
    label: labels.Label
    new_entry: taxonomy.TaxonomyEntry | None


def import_labels(conn: duckdb.DuckDBPyConnection, path: str | Path, *,
                  default_reviewer: str | None = None) -> ImportReport:
    """Import a filled-in spreadsheet whole or not at all.

    Every row is validated first; any row with errors rejects the file (each error reported by row and
    column) and nothing is stored, not even a new taxonomy code. Otherwise the labels and the codes they
    introduce commit in one transaction. A row whose verdict is the one already in force for its trace
    adds nothing, so importing the same file again adds nothing; a trace may appear in one file once
    (twice only with the same verdict)."""
    path = Path(path)
    report = ImportReport()
    try:
        header, records = csv_rows(path)
    except RecordsError as exc:
        raise SpreadsheetError(str(exc)) from None
    # Cells the export escaped against formula injection read back as the text they were.
    records = [(n, unescape_record(r) if isinstance(r, dict) else r) for n, r in records]
    missing = [c for c in ("trace_ref", "bucket") if c not in header]
    if missing:
        report.errors.append({"row": 1, "column": ", ".join(missing), "message": "missing column(s) in the header"})
        return report
    rows = _validate_rows(conn, records, report, default_reviewer)
    if report.errors:
        return report
    try:
        # One transaction: the new taxonomy entries and every label land together, or none does.
        with transaction(conn):
            for row in rows:
                if row.new_entry:
                    taxonomy.add(conn, row.new_entry)
                    report.new_codes.append(row.new_entry.code)
                if labels.record(conn, row.label):
                    report.imported += 1
                else:
                    report.unchanged += 1
    except (labels.LabelError, taxonomy.TaxonomyError) as exc:  # changed under us since validation
        report.imported = report.unchanged = 0
        report.new_codes = []
        errors = getattr(exc, "errors", None) or [labels.FieldError("taxonomy_code", str(exc))]
        report.errors += [{"row": row.number, "column": e.field, "message": e.message} for e in errors]
    return report


def _validate_rows(conn, records: list[tuple[int, dict | str]], report: ImportReport,
                   default_reviewer: str | None) -> list[ParsedRow]:
    """Every reviewed row as a label ready to record; each problem goes to report.errors."""
    known = taxonomy.codes(conn)
    new_codes: dict[str, tuple[int, taxonomy.TaxonomyEntry]] = {}
    scrubbed = _scrubbed(conn, [r.get("trace_ref", "").strip() for _, r in records if isinstance(r, dict)])
    first_for_trace: dict[str, ParsedRow] = {}
    rows: list[ParsedRow] = []
    for number, record in records:
        if isinstance(record, str):
            report.errors.append({"row": number, "column": "", "message": record})
            continue
        row, problems = parse_record(record, number, known, new_codes, scrubbed, default_reviewer)
        if row is None and not problems:
            report.not_reviewed += 1
            continue
        if row is not None and row.label.trace_ref in first_for_trace:
            first = first_for_trace[row.label.trace_ref]
            if _verdict(first.label) == _verdict(row.label):
                report.unchanged += 1  # the same verdict twice in one file is one label
                continue
            problems.append({"column": "trace_ref", "message": f"this trace is labelled in row {first.number} too, "
                             "with another verdict: keep one row per trace"})
        if row is not None and row.label.not_personal:
            missing = keep_terms.missing_placeholders(conn, row.label.trace_ref, keep_terms.parse(row.label.not_personal)[0])
            if missing:
                problems.append({"column": "not_personal", "message": f"{', '.join(missing)} not in this trace's "
                                 "scrubbed text: copy the placeholders as the conversation column shows them"})
        if problems:
            report.errors += [{"row": number, **p} for p in problems]
            continue
        first_for_trace[row.label.trace_ref] = row
        rows.append(row)
    return rows


def _verdict(label: labels.Label) -> tuple:
    """What a label says about its trace (who said it and the note aside): the same fields the store
    compares to decide that a label repeats the one in force."""
    return tuple(getattr(label, k) or None for k in ("bucket", "taxonomy_code", "expected_behaviour", "criterion_type",
                                                     "criterion_value", "adversarial", "pii_ok", "pii_issue_class",
                                                     "not_personal"))


def _scrubbed(conn, trace_refs: list[str]) -> set[str]:
    """Which of these trace refs are scrubbed traces, in one query."""
    if not trace_refs or not table_exists(conn, "scrub", "anonymized_traces"):
        return set()
    found = conn.execute("SELECT DISTINCT trace_ref FROM scrub.anonymized_traces WHERE list_contains(?, trace_ref)",
                         [sorted(set(trace_refs))]).fetchall()
    return {r[0] for r in found}


def _suggestion(get, problems: list[dict]) -> dict | None:
    """The row's suggestion columns as exported, or None when it had none; a confidence that is not a
    number is a problem (it is recorded with the label)."""
    bucket = get("suggested_bucket").lower()
    if not bucket:
        return None
    if bucket not in ("known_failure", "not_a_bug"):
        problems.append({"column": "suggested_bucket", "message": "a suggestion is known_failure or not_a_bug: "
                         "copy it as the loop gave it, or leave it empty"})
        return None
    try:
        confidence = float(get("suggestion_confidence"))
        if not 0.0 <= confidence <= 1.0:
            raise ValueError
    except ValueError:
        problems.append({"column": "suggestion_confidence", "message": "not a number from 0 to 1: copy it as the "
                         "loop gave it"})
        confidence = None
    return {"bucket": bucket, "code": get("suggested_code") or None, "confidence": confidence,
            "expected": get("suggested_expected_behaviour"),
            "criterion": labels.parse_criterion(get("suggested_pass_criterion"))}


def parse_record(row: dict, number: int, known: set[str], new_codes: dict, scrubbed: set[str],
                 default_reviewer: str | None) -> tuple[ParsedRow | None, list[dict]]:
    """A reviewed row as a label (and the taxonomy entry it introduces), or its problems; (None, [])
    when the row is not reviewed yet."""
    get = lambda c: (row.get(c) or "").strip()  # noqa: E731
    if not get("bucket"):
        return None, []
    problems = []
    suggested = _suggestion(get, problems)
    if get("bucket").lower() == ACCEPT:
        if not suggested:
            return None, problems + [{"column": "bucket", "message": "accept: this row has no suggestion to accept; "
                                      "write the bucket (known_failure, new_failure or not_a_bug)"}]
        row = {**row, "bucket": suggested["bucket"], "taxonomy_code": suggested["code"] or "",
               "expected_behaviour": get("expected_behaviour") or suggested["expected"],
               **({"criterion_type": get("criterion_type"), "criterion_value": get("criterion_value")}
                  if get("criterion_type") else dict(zip(("criterion_type", "criterion_value"),
                                                          map(lambda v: v or "", suggested["criterion"]))))}
    adversarial, err = _flag(get("adversarial"), "adversarial", False)
    problems += [err] if err else []
    pii_ok, err = _flag(get("pii_ok"), "pii_ok", True)
    problems += [err] if err else []
    label = labels.Label(
        trace_ref=get("trace_ref"), bucket=get("bucket").lower(), reviewer=get("reviewer") or default_reviewer or "",
        taxonomy_code=get("taxonomy_code") or None, expected_behaviour=get("expected_behaviour") or None,
        criterion_type=(get("criterion_type").lower() or None), criterion_value=get("criterion_value") or None,
        adversarial=adversarial, pii_ok=pii_ok, pii_issue_class=(get("pii_issue_class").upper() or None),
        pii_note=get("pii_note") or None, not_personal=_placeholders(get("not_personal")), source="csv",
    )
    if suggested:
        label.suggested_bucket, label.suggested_code = suggested["bucket"], suggested["code"]
        label.suggestion_confidence = suggested["confidence"]
    new_entry = None
    code = label.taxonomy_code
    if label.bucket == "new_failure" and code and code not in known:
        entry = taxonomy.TaxonomyEntry(code, get("new_code_name"), " ".join(get("new_code_definition").split()),
                                       created_from=label.trace_ref)
        if code in new_codes:  # introduced by an earlier row of this file
            first, defined = new_codes[code]
            differs = (entry.name, entry.definition) != (defined.name, defined.definition)
            if (entry.name or entry.definition) and differs:
                problems.append({"column": "new_code_definition", "message": f"code {code} is defined in row {first} "
                                 "with another name or definition: define it once"})
        else:
            new_entry = entry
            problems += [{"column": "new_code_name" if "name" in p else "new_code_definition" if "definition" in p
                          else "taxonomy_code", "message": p} for p in entry.problems()]
    codes = known | set(new_codes) | ({code} if new_entry else set())
    problems += [{"column": e.field, "message": e.message} for e in labels.validate(label, codes)]
    if label.trace_ref and label.trace_ref not in scrubbed:
        problems.append({"column": "trace_ref", "message": "no scrubbed trace has this trace_ref"})
    if new_entry and not problems:
        new_codes[code] = (number, new_entry)
    return ParsedRow(number, label, new_entry if not problems else None), problems
