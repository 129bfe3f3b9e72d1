"""The spreadsheet round trip teams already have: export the queue as CSV, fill in the label columns,
import it back.

Import policy: every row is validated on its own. Valid rows are imported, each whole or not at all;
rows with errors are reported by spreadsheet row number and column and left out, so the reviewer fixes
them and imports the same file again (rows already imported with the same verdict add nothing). Rows
whose `bucket` is empty are not reviewed yet and are skipped.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from flywheel.core.common.db import transaction
from flywheel.core.labeling import labels, taxonomy
from flywheel.core.labeling.queue import format_conversation

CONTEXT_COLUMNS = ("trace_ref", "week_start", "priority", "reasons", "adversarial_candidate", "judge_score", "intent",
                   "cohort", "conversation")
LABEL_COLUMNS = (
    "bucket", "taxonomy_code", "new_code_name", "new_code_definition", "expected_behaviour", "criterion_type",
    "criterion_value", "adversarial", "pii_ok", "pii_issue_class", "pii_note", "reviewer",
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


def export_queue(queue: pl.DataFrame, path: str | Path) -> int:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(CONTEXT_COLUMNS + LABEL_COLUMNS)
        for row in queue.iter_rows(named=True):
            writer.writerow([
                row["trace_ref"], str(row["week_start"])[:10], ["anomaly", "stratified", "random"][row["priority"]],
                ", ".join(row["reasons"] or []), "yes" if row.get("adversarial_candidate") else "",
                row["judge_score"], row["intent"], row["cohort"],
                format_conversation(row["messages"]),
            ] + [""] * len(LABEL_COLUMNS))
    return queue.height


def _flag(value: str, column: str, default: bool) -> tuple[bool, dict | None]:
    low = (value or "").strip().lower()
    if not low:
        return default, None
    if low in TRUE:
        return True, None
    if low in FALSE:
        return False, None
    return default, {"column": column, "message": f"{value!r} is not true/false (yes/no, 1/0 also work)"}


def import_labels(conn: duckdb.DuckDBPyConnection, path: str | Path, *, default_reviewer: str | None = None) -> ImportReport:
    path = Path(path)
    report = ImportReport()
    try:
        fh = open(path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise FileNotFoundError(f"{path}: {exc.strerror or exc}") from exc
    with fh:
        reader = csv.DictReader(fh)
        missing = [c for c in ("trace_ref", "bucket") if c not in (reader.fieldnames or [])]
        if missing:
            report.errors.append({"row": 1, "column": ", ".join(missing), "message": "missing column(s) in the header"})
            return report
        # Rows as a spreadsheet shows them (header is row 1), not file lines: a conversation cell spans many.
        for number, row in enumerate(reader, start=2):
            _import_row(conn, row, number, report, default_reviewer)
    return report


def _import_row(conn, row: dict, number: int, report: ImportReport, default_reviewer: str | None) -> None:
    get = lambda c: (row.get(c) or "").strip()  # noqa: E731
    if not get("bucket"):
        report.not_reviewed += 1
        return
    problems = []
    adversarial, err = _flag(get("adversarial"), "adversarial", False)
    problems += [err] if err else []
    pii_ok, err = _flag(get("pii_ok"), "pii_ok", True)
    problems += [err] if err else []
    label = labels.Label(
        trace_ref=get("trace_ref"), bucket=get("bucket").lower(), reviewer=get("reviewer") or default_reviewer or "",
        taxonomy_code=get("taxonomy_code") or None, expected_behaviour=get("expected_behaviour") or None,
        criterion_type=(get("criterion_type").lower() or None), criterion_value=get("criterion_value") or None,
        adversarial=adversarial, pii_ok=pii_ok, pii_issue_class=(get("pii_issue_class").upper() or None),
        pii_note=get("pii_note") or None, source="csv",
    )
    new_entry = None
    if label.bucket == "new_failure" and label.taxonomy_code and label.taxonomy_code not in taxonomy.codes(conn):
        new_entry = taxonomy.TaxonomyEntry(label.taxonomy_code, get("new_code_name"), get("new_code_definition"),
                                           created_from=label.trace_ref)
        problems += [{"column": "new_code_name" if "name" in p else "new_code_definition" if "definition" in p
                      else "taxonomy_code", "message": p} for p in new_entry.problems()]
    codes = taxonomy.codes(conn) | ({new_entry.code} if new_entry else set())
    problems += [{"column": e.field, "message": e.message} for e in labels.validate(label, codes)]
    if label.trace_ref and not labels.is_scrubbed_trace(conn, label.trace_ref):
        problems.append({"column": "trace_ref", "message": f"no scrubbed trace {label.trace_ref!r}"})
    if problems:
        report.errors += [{"row": number, **p} for p in problems]
        return
    # The row lands whole or not at all: the new taxonomy entry and the label commit together.
    with transaction(conn):
        if new_entry:
            taxonomy.add(conn, new_entry)
        stored = labels.record(conn, label)
    if new_entry:
        report.new_codes.append(new_entry.code)
    if stored:
        report.imported += 1
    else:
        report.unchanged += 1
