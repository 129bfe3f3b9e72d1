"""Bad files, clean errors: every import verb and the incident inbox, over the files people actually
hand them (not UTF-8, a byte order mark, semicolons, a 50 MB cell, a JSON list, an empty file, ...).

Each case ends in a success or in one-line errors naming the file and the line (and byte or column where
there is one): never a traceback, never flywheel's "unexpected ... this is a bug" line, never a value
from the file."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from flywheel.cli import main
from flywheel.core.common.db import connect

CANARY = "Kwame Mensah"  # customer data in a bad file: it must never be echoed back
BIG_CELL = "x" * (50 * 1024 * 1024)
STARTER = b"input,expected\nWhat is the refund window?,30 days\n"


def _result(**overrides) -> bytes:
    record = {"row_id": "{row}", "eval_version": 1, "model_version": "m1", "passed": True,
              "run_at": "2026-03-02T10:00:00Z", **overrides}
    return json.dumps(record).encode()


def _incident(**overrides) -> bytes:
    record = {"incident_id": "inc-sso", "start": "2026-03-03T00:00:00Z", "end": "2026-03-04T00:00:00Z",
              "note": "SSO outage", **overrides}
    return json.dumps(record).encode()


OK, ERROR = "ok", "error"

# (verb, file name, content, expected outcome, fragments the output must contain)
CASES = [
    # not UTF-8: the line and the byte
    ("evalset", "s.csv", b"input,expected\ncaf\xe9 " + CANARY.encode() + b",oui\n", ERROR, ["line 2, byte 4", "not UTF-8"]),
    ("evalset", "s.jsonl", b'{"input": "caf\xe9", "expected": "x"}\n', ERROR, ["line 1, byte 15", "not UTF-8"]),
    ("labels", "l.csv", b"trace_ref,bucket\nt_1,not_a_bug\nt_\xe92,\n", ERROR, ["line 3, byte 3", "not UTF-8"]),
    ("results", "r.jsonl", _result() + b"\n" + _result().replace(b'"m1"', b'"m\xe9"') + b"\n", ERROR,
     ["line 2, byte 74", "not UTF-8"]),
    ("results", "r.csv", b"row_id,eval_version,model_version,passed\n{row},1,m\xff,true\n", ERROR, ["line 2, byte 25"]),
    ("incident", "inc.json", b'{"incident_id": "x", "note": "caf\xe9"}', ERROR, ["line 1, byte 34", "not UTF-8"]),
    ("labels", "l.csv", b"\xef\xbb\xbftrace_ref,bucket\nt_\xe9,\n", ERROR, ["line 2, byte 3", "not UTF-8"]),
    # a UTF-8 byte order mark is accepted; so are old Mac line ends
    ("evalset", "s.csv", b"input,expected\rWhat is the refund window?,30 days\r", OK, ["Imported 1 rows"]),
    ("evalset", "s.csv", b"\xef\xbb\xbf" + STARTER, OK, ["Imported 1 rows as version 1"]),
    ("evalset", "s.jsonl", b'\xef\xbb\xbf{"input": "Hi", "expected": "Hello"}\n', OK, ["Imported 1 rows"]),
    ("labels", "l.csv", b"\xef\xbb\xbftrace_ref,bucket,reviewer\nt_1,not_a_bug,ana\n", OK, ["Imported 1 labels"]),
    ("results", "r.csv", b"\xef\xbb\xbfrow_id,eval_version,model_version,passed\n{row},1,m1,true\n", OK, ["Loaded 1 results"]),
    ("results", "r.jsonl", b"\xef\xbb\xbf" + _result() + b"\n", OK, ["Loaded 1 results"]),
    ("incident", "inc.json", b"\xef\xbb\xbf" + _incident(), OK, ["inc-sso  2026-03-03 00:00 -> 2026-03-04 00:00"]),
    # semicolons (and tabs), as spreadsheets write CSV in many locales: recognised from the header
    ("evalset", "s.csv", b"input;expected;criterion\nWhat is the refund window?;30 days;contains:30\n", OK, ["Imported 1 rows"]),
    ("evalset", "s.csv", b"input\texpected\nWhat is the refund window?\t30 days\n", OK, ["Imported 1 rows"]),
    ("labels", "l.csv", b"trace_ref;bucket;reviewer\nt_1;not_a_bug;ana\n", OK, ["Imported 1 labels"]),
    ("results", "r.csv", b"row_id;eval_version;model_version;passed;score\n{row};1;m1;true;0.5\n", OK, ["Loaded 1 results"]),
    ("results", "r.csv", b"row_id;eval_version;model_version;passed;score\n{row};1;m1;true;0,5\n", ERROR,
     ["r.csv:2: score: not a number (a decimal comma?"]),
    # a 50 MB cell: refused with the row, never "field larger than field limit"
    ("evalset", "s.csv", b'input,expected\nok,fine\n"' + BIG_CELL.encode() + b'",x\n', ERROR,
     ["row 3 (line 3)", "larger than 16 MB"]),
    ("labels", "l.csv", b'trace_ref,bucket,pii_note\nt_1,not_a_bug,"' + BIG_CELL.encode() + b'"\n', ERROR,
     ["row 2 (line 2)", "larger than 16 MB"]),
    ("results", "r.csv", b'row_id,eval_version,model_version,passed\n{row},1,"' + BIG_CELL.encode() + b'",true\n', ERROR,
     ["row 2 (line 2)", "larger than 16 MB"]),
    ("results", "r.csv", b'"' + BIG_CELL.encode() + b'",eval_version\n', ERROR, ["row 1 (line 1)", "larger than 16 MB"]),
    # a JSON list or scalar where an object belongs
    ("evalset", "s.jsonl", b'[{"input": "Hi", "expected": "Hello"}]\n', ERROR, ["line 1: a JSON list where a JSON object belongs"]),
    ("evalset", "s.jsonl", b'[\n  {"input": "Hi", "expected": "Hello"}\n]\n', ERROR, ["line 1: a JSON list; write JSON Lines"]),
    ("evalset", "s.jsonl", b'{"input": "Hi", "expected": "Hello"}\n"' + CANARY.encode() + b'"\n', ERROR,
     ["line 2: a JSON string where a JSON object belongs"]),
    ("evalset", "s.jsonl", b'{"input": "Hi", "expected": ["' + CANARY.encode() + b'"]}\n', ERROR,
     ["line 1, column expected: not text"]),
    ("results", "r.jsonl", _result() + b"\n[1, 2]\n", ERROR, ["r.jsonl:2: a JSON list where a JSON object belongs"]),
    ("results", "r.jsonl", b"42\n", ERROR, ["r.jsonl:1: a JSON number where a JSON object belongs"]),
    ("incident", "inc.json", b'[{"incident_id": "x"}]', ERROR, ["a JSON list where a JSON object belongs"]),
    ("incident", "inc.json", b"42", ERROR, ["a JSON number where a JSON object belongs"]),
    ("labels", "l.json", b'[{"trace_ref": "t_1", "bucket": "not_a_bug"}]\n', ERROR, ["not a labels spreadsheet"]),
    # empty files
    ("evalset", "s.csv", b"", ERROR, ["the file is empty"]),
    ("evalset", "s.jsonl", b"\n\n  \n", ERROR, ["the file is empty"]),
    ("labels", "l.csv", b"", ERROR, ["the file is empty"]),
    ("results", "r.jsonl", b"", ERROR, ["the file is empty"]),
    ("results", "r.csv", b"row_id,eval_version,model_version,passed\n", ERROR, ["no results"]),
    ("incident", "inc.json", b"", ERROR, ["the file is empty"]),
    # more of the same family
    ("evalset", "s.csv", b'input,expected\n"' + CANARY.encode() + b',oui\n', ERROR, ["row 2 (line 2)", "a quoted cell is never closed"]),
    ("results", "r.csv", b"row_id,eval_version,model_version,passed\n{row},1,m1,true," + CANARY.encode() + b"\n", ERROR,
     ["r.csv:2: 5 cells, but the header has 4 columns"]),
    ("results", "r.csv", b"row_id,row_id,model_version,passed\n{row},1,m1,true\n", ERROR, ["row 1: column row_id appears twice"]),
    ("results", "r.jsonl", b'{"row_id": "\\ud800", "eval_version": 1, "model_version": "m", "passed": true}\n', ERROR,
     ["r.jsonl:1: a \\u escape"]),
    ("results", "r.jsonl", b"[" * 100_000 + b"\n", ERROR, ["r.jsonl:1: not valid JSON (nested too deeply)"]),
    ("results", "r.jsonl", b'{"row_id": "' + CANARY.encode() + b'", "eval_version": 1,\n', ERROR, ["r.jsonl:1: column", "not valid JSON"]),
    ("incident", "inc.json", b'{"incident_id": "x", "start": ', ERROR, ["line 1, column 31: not valid JSON"]),
    ("incident", "inc.json", _incident(start="9999-12-27T00:00:00", end="9999-12-31T00:00:00"), ERROR,
     ['"start" is outside 2000-01-01 to 2099-12-31']),
    ("incident", "inc.json", _incident(end="0001-01-01T00:00:00+05:00"), ERROR, ['"end" is outside 2000-01-01']),
    ("incident", "inc.json", _incident(end=None), ERROR, ['missing "end"']),
    ("incident", "inc.json", _incident(cohort=[CANARY]), ERROR, ['"cohort" must be text']),
]


def _prepare(verb: str, data_dir, tmp_path) -> dict[str, str]:
    """The state a verb needs before a valid file can succeed: an eval set for results, a scrubbed
    trace for labels."""
    if verb == "results":
        starter = tmp_path / "starter.csv"
        starter.write_bytes(STARTER)
        assert CliRunner().invoke(main, ["evalset", "import", str(starter)]).exit_code == 0
        with connect(data_dir / "flywheel.duckdb") as conn:
            return {"row": conn.execute("SELECT row_id FROM eval.eval_rows").fetchone()[0]}
    if verb == "labels":
        with connect(data_dir / "flywheel.duckdb") as conn:
            conn.execute("CREATE SCHEMA IF NOT EXISTS scrub")
            conn.execute("CREATE TABLE scrub.anonymized_traces AS SELECT 't_1' AS trace_ref, '3' AS scrubber_version")
    return {}


def _invoke(verb: str, path, data_dir):
    if verb == "incident":
        return CliRunner().invoke(main, ["incident", "list"])
    args = {"evalset": ["evalset", "import"], "labels": ["labels", "import"], "results": ["results", "import"]}[verb]
    return CliRunner().invoke(main, [*args, str(path)])


@pytest.mark.parametrize("verb,name,content,outcome,fragments", CASES,
                         ids=[f"{c[0]}-{i}-{c[1]}-{c[3]}" for i, c in enumerate(CASES)])
def test_a_bad_file_is_a_clean_error_never_a_traceback(warehouse, data_dir, tmp_path, verb, name, content, outcome,
                                                       fragments):
    values = _prepare(verb, data_dir, tmp_path)
    folder = data_dir / "inbox" / "incidents" if verb == "incident" else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    for key, value in values.items():
        content = content.replace(b"{" + key.encode() + b"}", value.encode())
    path.write_bytes(content)
    result = _invoke(verb, path, data_dir)
    output = result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in output and "this is a bug" not in output and "unexpected" not in output, output
    assert CANARY not in output, "an error quoted the file's content"
    for fragment in fragments:
        assert fragment in output, output
    if verb == "incident":  # listing never fails: a bad file is shown as invalid, with its reason
        assert result.exit_code == 0, output
        if outcome == ERROR:
            assert f"invalid (skipped): {path}: " in output, output
        return
    if outcome == OK:
        assert result.exit_code == 0, output
        return
    assert result.exit_code == 1, output
    problem_lines = [line for line in output.splitlines() if str(path) in line]
    assert problem_lines, f"no line names the file: {output}"
    assert all(len(line) < 400 for line in output.splitlines()), "one line per problem, not a dump"


def test_the_table_covers_every_verb_and_kind_of_bad_file():
    verbs = {c[0] for c in CASES}
    assert verbs == {"evalset", "labels", "results", "incident"}
    text = " ".join(" ".join(c[4]) for c in CASES)
    for kind in ("not UTF-8", "larger than 16 MB", "a JSON list", "the file is empty", "a JSON number"):
        assert kind in text
    assert sum(c[3] == OK for c in CASES) >= 8, "BOM and semicolon files are accepted, not refused"
