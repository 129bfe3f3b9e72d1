"""Whole files or nothing, and no second copies: `results import` and `labels import` validate the whole
file first, load it in one transaction, and a second import of the same file adds nothing."""

from __future__ import annotations

import csv
import json

import pytest
from click.testing import CliRunner

from flywheel.cli import main
from flywheel.core.common.db import connect
from flywheel.core.evalset import regression
from flywheel.core.evalset import versions as evalset
from flywheel.core.labeling import labels, spreadsheet, taxonomy
from flywheel.settings import REPO_REFERENCE
from flywheel_tests.test_evalset import STARTER, write_csv


@pytest.fixture
def wh(tmp_path):
    """Eval set version 1 (three rows) and three scrubbed traces with the demo taxonomy."""
    with connect(tmp_path / "w.duckdb") as conn:
        evalset.import_starter(conn, write_csv(tmp_path / "s.csv", STARTER))
        conn.execute("CREATE SCHEMA scrub")
        conn.execute("""CREATE TABLE scrub.anonymized_traces AS SELECT * FROM (VALUES ('t_1', '3'), ('t_2', '3'), ('t_3', '3'))
                        AS v(trace_ref, scrubber_version)""")
        taxonomy.seed(conn, taxonomy.load_seed(REPO_REFERENCE / "taxonomy.yaml"))
        yield conn


def row_ids(conn) -> list[str]:
    return evalset.rows_at(conn, 1)["row_id"].to_list()


def stored(conn) -> int:
    regression.ensure_table(conn)
    return conn.execute("SELECT count(*) FROM regression.results").fetchone()[0]


def result(rid: str, **overrides) -> dict:
    return {"row_id": rid, "eval_version": 1, "model_version": "m1", "passed": True,
            "run_at": "2026-03-02T10:00:00Z", **overrides}


def write_jsonl(path, records) -> str:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8")
    return str(path)


# --- results import ---------------------------------------------------------------------------------


def test_the_operators_file_loads_whole_or_not_at_all_and_once(wh, tmp_path):
    """Line 11's run_at overflowed after lines 8-10 were committed, line 13 was lost, and the re-import
    of the fixed file stored lines 8-10 twice. Now: nothing, then everything, then nothing again."""
    ids = row_ids(wh)
    records = [result(ids[i % 3], run_at=f"2026-03-{i + 1:02d}T10:00:00Z") for i in range(13)]
    records[10]["run_at"] = "0001-01-01T00:00:00+05:00"
    path = tmp_path / "results.jsonl"
    report = regression.import_results(wh, write_jsonl(path, records))
    assert report.loaded == 0 and stored(wh) == 0
    assert report.rejected == [{"line": 11, "column": "run_at", "reason": "run_at: outside 2000-01-01 to 2099-12-31"}]
    records[10]["run_at"] = "2026-03-11T10:00:00+05:00"
    report = regression.import_results(wh, write_jsonl(path, records))
    assert (report.loaded, report.already, report.rejected) == (13, 0, [])
    again = regression.import_results(wh, write_jsonl(path, records))
    assert (again.loaded, again.already, again.rejected) == (0, 13, [])
    assert stored(wh) == 13, "the same result (row_id, eval_version, model_version, run_at) is stored once"
    run_at = wh.execute("SELECT run_at FROM regression.results ORDER BY run_at").fetchall()[10][0]
    assert str(run_at) == "2026-03-11 05:00:00", "an offset is converted to UTC"


@pytest.mark.parametrize("field,value,fragment", [
    ("eval_version", 1.9, "not an integer version"),
    ("eval_version", "1.0x", "not an integer version"),
    ("eval_version", "1.9", "not an integer version"),
    ("eval_version", True, "true/false is not an integer version"),
    ("eval_version", 0, "must be 1 or more"),
    ("eval_version", 10**40, "does not exist"),
    ("eval_version", 1e300, "does not exist"),
    ("eval_version", 7, "does not exist (versions 1..1)"),
    ("score", "nan", "not a finite number"),
    ("score", float("nan"), "not a finite number"),
    ("score", float("inf"), "not a finite number"),
    ("score", "-Infinity", "not a finite number"),
    ("score", "1e999", "not a finite number"),
    ("score", True, "not a number"),
    ("score", "high", "not a number"),
    ("score", [0.5], "not a number"),
    ("run_at", "0001-01-01T00:00:00+05:00", "outside 2000-01-01 to 2099-12-31"),
    ("run_at", "9999-12-31T23:00:00-05:00", "outside 2000-01-01 to 2099-12-31"),
    ("run_at", "1999-12-31T23:59:59", "outside"),
    ("run_at", "2100-01-01T00:00:00", "outside"),
    ("run_at", "last tuesday", "not an ISO 8601 timestamp"),
    ("run_at", 1767225600, "not an ISO 8601 timestamp"),
    ("passed", "maybe", "not true/false"),
    ("passed", None, "passed: missing"),
    ("row_id", ["a"], "not a string"),
    ("row_id", "row_unknown", "unknown row_id"),
    ("model_version", 1.10, "write it as a string"),
    ("model_version", "  ", "model_version: missing"),
])
def test_an_invalid_value_is_refused_by_line_and_column_and_nothing_loads(wh, tmp_path, field, value, fragment):
    ids = row_ids(wh)
    bad = result(ids[1], **{field: value})
    path = write_jsonl(tmp_path / "r.jsonl", [result(ids[0]), bad, result(ids[2])])
    report = regression.import_results(wh, path)
    assert report.loaded == 0 and stored(wh) == 0
    [problem] = report.rejected
    assert problem["line"] == 2 and problem["column"] == field, problem
    assert fragment in problem["reason"], problem
    if isinstance(value, str) and value.strip() and field != "row_id":
        assert value not in problem["reason"], "a reason says the value's shape, never the value"


@pytest.mark.parametrize("field,value,expected", [
    ("eval_version", "1", 1), ("eval_version", 1.0, 1), ("eval_version", " 1 ", 1), ("eval_version", "1.0", 1),
    ("score", "0.25", 0.25), ("score", 3, 3.0), ("score", -2.5, -2.5), ("score", "", None),
    ("passed", "yes", True), ("passed", "0", False), ("passed", 1, True), ("passed", "FAIL", False),
    ("model_version", 7, "7"), ("model_version", "modèle-β \u2028", "modèle-β"),
])
def test_valid_spellings_are_accepted(wh, tmp_path, field, value, expected):
    ids = row_ids(wh)
    report = regression.import_results(wh, write_jsonl(tmp_path / "r.jsonl", [result(ids[0], **{field: value})]))
    assert (report.loaded, report.rejected) == (1, [])
    column = {"eval_version": "eval_version", "score": "score", "passed": "passed", "model_version": "model_version"}[field]
    assert wh.execute(f"SELECT {column} FROM regression.results").fetchone()[0] == expected


def test_a_result_twice_in_one_file_is_one_result_and_a_contradiction_is_refused(wh, tmp_path):
    ids = row_ids(wh)
    twice = regression.import_results(wh, write_jsonl(tmp_path / "a.jsonl", [result(ids[0]), result(ids[0])]))
    assert (twice.loaded, stored(wh)) == (1, 1)
    clash = regression.import_results(wh, write_jsonl(tmp_path / "b.jsonl", [
        result(ids[1]), result(ids[1], passed=False)]))
    assert clash.loaded == 0 and stored(wh) == 1
    assert clash.rejected[0]["line"] == 2 and "contradicts line 1" in clash.rejected[0]["reason"]


def test_a_result_that_contradicts_a_stored_one_rejects_the_file(wh, tmp_path):
    ids = row_ids(wh)
    regression.import_results(wh, write_jsonl(tmp_path / "a.jsonl", [result(ids[0])]))
    report = regression.import_results(wh, write_jsonl(tmp_path / "b.jsonl", [
        result(ids[1]), result(ids[0], passed=False)]))
    assert report.loaded == 0 and stored(wh) == 1, "nothing of the file loads, not even line 1"
    assert report.rejected[0]["line"] == 2 and "contradicts a stored result" in report.rejected[0]["reason"]
    rerun = regression.import_results(wh, write_jsonl(tmp_path / "c.jsonl", [
        result(ids[0], passed=False, run_at="2026-03-03T10:00:00Z")]))
    assert rerun.loaded == 1, "a corrected run with its own run_at is a new result"


def test_results_without_run_at_are_stamped_and_counted(wh, tmp_path):
    ids = row_ids(wh)
    report = regression.import_results(wh, write_jsonl(tmp_path / "r.jsonl", [
        result(ids[0], run_at=None), result(ids[1])]))
    assert (report.loaded, report.stamped) == (2, 1)


def test_a_csv_results_file_counts_rows_like_a_spreadsheet(wh, tmp_path):
    ids = row_ids(wh)
    path = tmp_path / "r.csv"
    path.write_text("row_id,eval_version,model_version,passed,score,run_at\n"
                    f"{ids[0]},1,m1,true,0.9,2026-03-02T10:00:00Z\n"
                    f"{ids[1]},1.9,m1,true,,2026-03-02T10:00:00Z\n"
                    f"{ids[2]},1,m1,true,nan,\n")
    report = regression.import_results(wh, path)
    assert [(r["line"], r["column"]) for r in report.rejected] == [(3, "eval_version"), (4, "score")]
    assert stored(wh) == 0


def test_results_import_cli_reports_each_line_and_loads_nothing(data_dir, tmp_path):
    runner = CliRunner()
    assert runner.invoke(main, ["evalset", "import", str(write_csv(tmp_path / "s.csv", STARTER))]).exit_code == 0
    with connect(data_dir / "flywheel.duckdb") as conn:
        ids = row_ids(conn)
    path = write_jsonl(tmp_path / "r.jsonl", [result(ids[0]), result(ids[1], eval_version=1.9),
                                              result(ids[2], run_at="0001-01-01T00:00:00+05:00")])
    bad = runner.invoke(main, ["results", "import", path])
    assert bad.exit_code == 1 and "Nothing loaded" in bad.stdout
    assert f"{path}:2: eval_version: not an integer version" in bad.stderr
    assert f"{path}:3: run_at: outside 2000-01-01 to 2099-12-31" in bad.stderr
    good = write_jsonl(tmp_path / "ok.jsonl", [result(i) for i in ids])
    assert "Loaded 3 results." in runner.invoke(main, ["results", "import", good]).stdout
    again = runner.invoke(main, ["results", "import", good])
    assert again.exit_code == 0 and "Loaded 0 results; 3 already stored." in again.stdout
    as_json = json.loads(runner.invoke(main, ["results", "import", good, "--json"]).stdout)
    assert as_json == {"loaded": 0, "already": 3, "stamped": 0, "rejected": []}


# --- labels import ----------------------------------------------------------------------------------

FIELDS = ["trace_ref", "bucket", "taxonomy_code", "new_code_name", "new_code_definition", "expected_behaviour",
          "criterion_type", "criterion_value", "adversarial", "pii_ok", "pii_issue_class", "reviewer"]


def sheet(path, rows: list[dict]) -> str:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows({"reviewer": "ana", **r} for r in rows)
    return str(path)


FAILURE = {"bucket": "known_failure", "taxonomy_code": "wrong_refund_policy", "expected_behaviour": "Quotes 30 days.",
           "criterion_type": "contains", "criterion_value": "30 days"}


def label_count(conn) -> int:
    labels.ensure_tables(conn)
    return conn.execute("SELECT count(*) FROM label.labels").fetchone()[0]


def test_importing_the_same_labels_file_again_adds_nothing(wh, tmp_path, monkeypatch):
    monkeypatch.setenv("FLYWHEEL_NOW", "2026-03-09T10:00:00")  # every label of both imports at one instant
    path = sheet(tmp_path / "l.csv", [{"trace_ref": "t_1", **FAILURE}, {"trace_ref": "t_2", "bucket": "not_a_bug"},
                                      {"trace_ref": "t_3", "bucket": "not_a_bug", "pii_ok": "no",
                                       "pii_issue_class": "person"}])
    first = spreadsheet.import_labels(wh, path)
    assert (first.imported, first.errors) == (3, [])
    for _ in range(2):
        again = spreadsheet.import_labels(wh, path)
        assert (again.imported, again.unchanged, again.errors) == (0, 3, [])
    assert label_count(wh) == 3
    assert wh.execute("SELECT count(*) FROM scrub.residue").fetchone()[0] == 1, "the PII miss is recorded once"


def test_a_trace_labelled_twice_in_one_file_with_different_verdicts_is_refused(wh, tmp_path):
    path = sheet(tmp_path / "l.csv", [{"trace_ref": "t_1", **FAILURE}, {"trace_ref": "t_2", "bucket": "not_a_bug"},
                                      {"trace_ref": "t_1", "bucket": "not_a_bug"}])
    report = spreadsheet.import_labels(wh, path)
    assert report.imported == 0 and label_count(wh) == 0
    assert report.errors == [{"row": 4, "column": "trace_ref", "message": "this trace is labelled in row 2 too, with "
                              "another verdict: keep one row per trace"}]


def test_the_same_verdict_twice_in_one_file_is_one_label(wh, tmp_path):
    path = sheet(tmp_path / "l.csv", [{"trace_ref": "t_1", **FAILURE}, {"trace_ref": "t_1", **FAILURE, "reviewer": "bo"}])
    report = spreadsheet.import_labels(wh, path)
    assert (report.imported, report.errors) == (1, []) and label_count(wh) == 1


def test_a_labels_file_with_one_bad_row_stores_nothing_not_even_its_new_code(wh, tmp_path):
    new = {"bucket": "new_failure", "taxonomy_code": "sso_loop", "new_code_name": "SSO loop",
           "new_code_definition": "It sends the user back to sign in. The tell is a second login link.",
           "expected_behaviour": "Escalates.", "criterion_type": "contains", "criterion_value": "engineer"}
    rows = [{"trace_ref": "t_1", **new}, {"trace_ref": "t_2", **FAILURE, "taxonomy_code": "sso_loop",
                                           "new_code_name": "", "new_code_definition": ""},
            {"trace_ref": "t_3", "bucket": "not_a_bug", "adversarial": "perhaps", "pii_ok": "no",
             "pii_issue_class": "PERSON"}]
    report = spreadsheet.import_labels(wh, sheet(tmp_path / "l.csv", rows))
    assert report.errors == [{"row": 4, "column": "adversarial", "message": "not true/false (yes/no, 1/0 also work)"}]
    assert (report.imported, report.new_codes) == (0, [])
    assert "sso_loop" not in taxonomy.codes(wh) and label_count(wh) == 0
    labels.ensure_tables(wh)
    from flywheel.core.common.db import table_exists
    assert not table_exists(wh, "scrub", "residue") or wh.execute("SELECT count(*) FROM scrub.residue").fetchone()[0] == 0
    rows[2]["adversarial"] = "no"
    fixed = spreadsheet.import_labels(wh, sheet(tmp_path / "l.csv", rows))
    assert (fixed.imported, fixed.new_codes, fixed.errors) == (3, ["sso_loop"], [])
    assert labels.current_label(wh, "t_2")["taxonomy_code"] == "sso_loop", "a later row may use a code an earlier row adds"


def test_a_new_code_defined_twice_differently_is_refused(wh, tmp_path):
    new = {"bucket": "new_failure", "taxonomy_code": "sso_loop", "new_code_name": "SSO loop",
           "new_code_definition": "It loops. The tell is a second login link.", "expected_behaviour": "Escalates.",
           "criterion_type": "refusal"}
    report = spreadsheet.import_labels(wh, sheet(tmp_path / "l.csv", [
        {"trace_ref": "t_1", **new}, {"trace_ref": "t_2", **new, "new_code_name": "Another name"}]))
    assert report.imported == 0 and [(e["row"], e["column"]) for e in report.errors] == [(3, "new_code_definition")]


def test_labels_import_cli_says_nothing_was_imported(data_dir, warehouse, tmp_path):
    with connect(warehouse) as conn:
        conn.execute("CREATE SCHEMA scrub")
        conn.execute("CREATE TABLE scrub.anonymized_traces AS SELECT 't_1' AS trace_ref, '3' AS scrubber_version")
    path = sheet(tmp_path / "l.csv", [{"trace_ref": "t_1", "bucket": "not_a_bug"},
                                      {"trace_ref": "t_nowhere", "bucket": "not_a_bug"}])
    result = CliRunner().invoke(main, ["labels", "import", path])
    assert result.exit_code == 1 and "Nothing imported: 1 problem(s)" in result.stdout
    assert f"{path}: row 3, column trace_ref: no scrubbed trace has this trace_ref" in result.stderr
    assert "t_nowhere" not in result.output
    with connect(warehouse) as conn:
        assert label_count(conn) == 0
