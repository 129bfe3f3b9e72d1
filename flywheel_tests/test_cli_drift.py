"""`flywheel drift score` on files with bad lines: the bad ones are skipped and reported, the rest is
scored; a file with nothing usable is a one-line error. On the hashing fake embedder (the real model
runs the same command in test_drift.py::test_drift_score_cli_json)."""

import json

import pytest
from click.testing import CliRunner

from flywheel.cli import main
from flywheel_tests.conftest import write_jsonl

SECRET = "Sarah Connor 4111 1111 1111 1111"  # stands for customer data: must never be echoed


def msgs(text):
    return [{"role": "user", "content": text}, {"role": "assistant", "content": "ok"}]


def trace(i, text):
    return {"trace_id": f"t{i}", "timestamp": "2026-03-02T10:00:00Z", "messages": msgs(text)}


@pytest.fixture
def fake_embedder(monkeypatch):
    from flywheel.resources import embedder

    monkeypatch.setattr(embedder, "load_embedder", lambda *a: embedder.HashingEmbedder())


@pytest.fixture
def no_embedder(monkeypatch):
    """A file that cannot be scored must fail before the model loads."""
    from flywheel.resources import embedder

    def refuse(*a):
        raise AssertionError("the embedder was loaded for a file that cannot be scored")

    monkeypatch.setattr(embedder, "load_embedder", refuse)


def score(*args):
    return CliRunner().invoke(main, ["drift", "score", *map(str, args)])


@pytest.fixture
def eval_csv(tmp_path):
    path = tmp_path / "eval.csv"
    path.write_text("input,expected\nHow do I get a refund?,policy\nWhere is my card?,tracking\n"
                    "How do I reset my password?,reset link\n")
    return path


def test_bad_lines_are_skipped_reported_and_counted_and_the_rest_is_scored(tmp_path, fake_embedder):
    eval_csv = tmp_path / "eval.csv"
    eval_csv.write_bytes(b"input,expected\nHow do I get a refund?,policy\n,blank input\n"
                         b"Where is my card?,tracking,extra cell\n\n"
                         b"Caf\xe9 card lost,latin-1\nHow do I reset my password?,reset\n")
    current = write_jsonl(tmp_path / "current.jsonl", [
        trace(1, "I want my money back"),
        '{"trace_id": "t2", "messages": [' + json.dumps(SECRET),                     # 2: cut short
        json.dumps([SECRET]),                                                          # 3: not an object
        {"trace_id": "t4", "content": SECRET},                                         # 4: no messages
        {"trace_id": "t5", "messages": SECRET},                                        # 5: not a list
        {"trace_id": "t6", "messages": [{"role": "user", "content": {"text": SECRET}}]},  # 6: content not a string
        {"trace_id": "t7", "messages": [{"role": "assistant", "content": SECRET}]},    # 7: no user turn
        "",                                                                            # 8: blank: not a record
        trace(9, "card has not arrived"),
    ])
    with open(current, "ab") as fh:
        fh.write(json.dumps(trace(10, "x")).encode().replace(b'"x"', b'"Jos\xe9"') + b"\n")  # 10: latin-1 bytes
    baseline = write_jsonl(tmp_path / "baseline.jsonl", [trace(1, "refund please"), "not json at all",
                                                          trace(3, "forgot my password")])
    latin1_at = current.read_bytes().splitlines()[9].index(b"\xe9")
    result = score("--eval", eval_csv, "--current", current, "--baseline", baseline, "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["n_eval"], out["n_current"]) == (2, 2)
    assert out["skipped_lines"] == {"eval": 3, "current": 7, "baseline": 1}
    assert out["p_value"] is not None
    assert result.stderr.splitlines() == [
        f"{eval_csv}:3: field \"input\" must not be empty",
        f"{eval_csv}:4: row has 3 cells, header has 2",
        f"{eval_csv}:6: field \"input\" is not valid UTF-8",
        f"{current}:2: not valid JSON: Expecting ',' delimiter at column {len(current.read_text(errors='replace').splitlines()[1]) + 1}",
        f"{current}:3: record is not a JSON object",
        f"{current}:4: missing required field \"messages\"",
        f"{current}:5: field \"messages\" must be a list of {{role, content}}",
        f"{current}:6: messages[0].content must be a string",
        f"{current}:7: field \"messages\" has no user turn to embed",
        f"{current}:10: not valid UTF-8 (byte {latin1_at})",
        f"{baseline}:2: not valid JSON: Expecting value at column 1",
        f"{eval_csv}: 3 bad line(s) skipped, 2 eval row(s) scored",
        f"{current}: 7 bad line(s) skipped, 2 trace(s) scored",
        f"{baseline}: 1 bad line(s) skipped, 2 trace(s) scored",
    ]
    assert "Sarah" not in result.stderr and "4111" not in result.stderr and "Caf" not in result.stderr


def test_clean_files_report_zero_skipped_and_no_baseline_is_null(tmp_path, eval_csv, fake_embedder):
    current = write_jsonl(tmp_path / "current.jsonl", [trace(1, "I want my money back"), trace(2, "card lost")])
    result = score("--eval", eval_csv, "--current", current, "--json")
    assert result.exit_code == 0 and result.stderr == "", result.output
    out = json.loads(result.stdout)
    assert out["skipped_lines"] == {"eval": 0, "current": 0, "baseline": None} and out["n_current"] == 2


def test_eval_rows_as_jsonl_with_messages_or_text_and_the_human_summary(tmp_path, fake_embedder):
    rows = write_jsonl(tmp_path / "eval.jsonl", [
        {"row_id": "r1", "input": msgs("How do I get a refund?")},
        {"row_id": "r2", "input": "Where is my card?"},
        {"row_id": "r3", "input": []},
        {"row_id": "r4", "input": 42},
        {"row_id": "r5", "messages": msgs(SECRET)},
    ])
    current = write_jsonl(tmp_path / "current.jsonl", [trace(1, "refund please"), {"trace_id": "t2", "input": "x"}])
    result = score("--eval", rows, "--current", current)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("drift score ") and "over 1 traces against 2 eval rows" in result.stdout
    assert result.stderr.splitlines() == [
        f"{rows}:3: field \"input\" must not be empty",
        f"{rows}:4: field \"input\" must be a list of {{role, content}} or a string",
        f"{rows}:5: missing required field \"input\" (this looks like a trace, not an eval row)",
        f"{current}:2: missing required field \"messages\" (this looks like an eval row, not a trace)",
        f"{rows}: 3 bad line(s) skipped, 2 eval row(s) scored",
        f"{current}: 1 bad line(s) skipped, 1 trace(s) scored",
    ]


UNUSABLE = {
    "missing file": (lambda d: d / "nope.jsonl", "does not exist"),
    "a folder": (lambda d: d, "is a directory"),
    "empty file": (lambda d: _write(d / "t.jsonl", b""), "empty: no traces in it"),
    "blank lines only": (lambda d: _write(d / "t.jsonl", b"\n  \n\n"), "empty: no traces in it"),
    "not UTF-8": (lambda d: _write(d / "t.jsonl", json.dumps(trace(1, "caf")).encode("utf-16") + b"\n"),
                  "no usable trace: its one line is bad (line 1: not valid UTF-8 (byte 0))"),
    "no line usable": (lambda d: _write(d / "t.jsonl", b'{"a": 1}\n[1]\n{oops\n'),
                       'no usable trace: all 3 lines are bad (line 1: missing required field "messages")'),
    "CSV traces": (lambda d: _write(d / "t.csv", b"trace_id,messages\nt1,[]\n"), "traces must be JSON Lines"),
    "Parquet traces": (lambda d: _write(d / "t.parquet", b"PAR1\x00\x00PAR1"), "traces must be JSON Lines"),
}


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", list(UNUSABLE))
def test_a_current_file_with_nothing_usable_is_a_one_line_error(tmp_path, eval_csv, no_embedder, case):
    make, said = UNUSABLE[case]
    (tmp_path / "files").mkdir()
    result = score("--eval", eval_csv, "--current", make(tmp_path / "files"))
    _one_line_error(result, said)


EVAL_UNUSABLE = {
    "CSV without an input column": (b"question,expected\nHow?,So.\n", "eval.csv", "eval.csv:1: no `input` column"),
    "CSV with a header only": (b"input,expected\n", "eval.csv", "empty: no eval rows in it"),
    "CSV not in UTF-8": ("input\nCafé?\nGrüße\n".encode("latin-1"), "eval.csv",
                         'no usable eval row: all 2 lines are bad (line 2: field "input" is not valid UTF-8)'),
    "traces given as eval rows": (json.dumps(trace(1, SECRET)).encode() + b"\n", "eval.jsonl",
                                  "no usable eval row: its one line is bad (line 1: missing required field \"input\" "
                                  "(this looks like a trace, not an eval row))"),
    "Parquet": (b"PAR1", "eval.parquet", "eval rows must be JSON Lines, one per line (or a CSV with an `input` column)"),
}


@pytest.mark.parametrize("case", list(EVAL_UNUSABLE))
def test_an_eval_file_in_the_wrong_format_is_a_one_line_error(tmp_path, no_embedder, case):
    data, name, said = EVAL_UNUSABLE[case]
    current = write_jsonl(tmp_path / "current.jsonl", [trace(1, "refund please")])
    result = score("--eval", _write(tmp_path / name, data), "--current", current)
    _one_line_error(result, said)


def _one_line_error(result, said):
    assert result.exit_code in (1, 2), result.output
    assert isinstance(result.exception, SystemExit), f"not a clean error: {result.exception!r}"
    assert "Traceback" not in result.output and SECRET not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and said in errors[0], result.stderr
    assert result.stdout == ""
