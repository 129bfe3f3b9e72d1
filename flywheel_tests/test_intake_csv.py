"""CSV intake: every row is loaded, counted as a duplicate or quarantined, and a quarantined row is
named by the physical line its record starts on (the header is line 1).

The first two tests reproduce what `flywheel ingest` did before: a 200 KB cell in row 301 of 400, or
one byte that is not UTF-8 in row 302, lost every row after it without a word."""

import csv
import io
import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from flywheel.cli import main
from flywheel.core.intake import csv_records
from flywheel.core.intake.ingest import ingest_paths
from flywheel.settings import IntakeSettings
from flywheel_tests.conftest import trace

HEADER = ["trace_id", "timestamp", "messages", "intent"]


def _row(i: int, content: str = "hello", intent: str = "billing") -> list[str]:
    return [f"r{i}", "2026-03-02T10:00:00Z", json.dumps([{"role": "user", "content": content}]), intent]


def write_csv(path: Path, rows: list[list[str]], delimiter: str = ",", encoding: str = "utf-8") -> Path:
    with open(path, "w", newline="", encoding=encoding) as fh:
        writer = csv.writer(fh, delimiter=delimiter)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


def _ingest_cli(path: Path, *args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(main, ["ingest", str(path), "--json", *args])
    return result.exit_code, json.loads(result.stdout) if result.stdout.strip() else {}


def test_a_200kb_cell_in_row_301_of_400_loads_with_every_other_row(data_dir, tmp_path):
    """200 KB is within the 1 MiB record limit: the row is valid (the csv module's own 128 KiB
    field limit used to reject it, and end the file there)."""
    rows = [_row(i) for i in range(1, 401)]
    rows[300] = _row(301, "x" * 200_000)
    path = write_csv(tmp_path / "big-cell.csv", rows)
    code, out = _ingest_cli(path)
    assert code == 0
    assert (out["ingested"], out["duplicates"], out["quarantined"]) == (400, 0, 0)


def test_a_200kb_cell_in_row_301_of_400_over_a_smaller_limit_quarantines_that_row_only(data_dir, tmp_path):
    rows = [_row(i) for i in range(1, 401)]
    rows[300] = _row(301, "x" * 200_000)
    path = write_csv(tmp_path / "big-cell.csv", rows)
    code, out = _ingest_cli(path, "--max-line-bytes", "100000")
    assert code == 0
    assert (out["ingested"], out["duplicates"], out["quarantined"]) == (399, 0, 1)
    [q] = out["quarantine"]
    assert q["line"] == 302, "row 301 is on line 302: the header is line 1"
    assert "over the limit of 100000 bytes" in q["reason"]


def test_a_byte_that_is_not_utf8_in_row_302_quarantines_that_row_only(data_dir, tmp_path):
    path = write_csv(tmp_path / "latin1.csv", [_row(i) for i in range(1, 401)])
    lines = path.read_bytes().split(b"\n")
    lines[302] = lines[302].replace(b"hello", b"h\xe9llo")  # row 302, line 303
    path.write_bytes(b"\n".join(lines))
    code, out = _ingest_cli(path)
    assert code == 0
    assert (out["ingested"], out["duplicates"], out["quarantined"]) == (399, 0, 1)
    [q] = out["quarantine"]
    assert q["line"] == 303
    assert "UTF-8" in q["reason"] and "\xe9" not in q["reason"]


def test_a_50mb_cell_is_quarantined_with_a_reason_not_a_crash(conn, tmp_path):
    rows = [_row(1), _row(2, "y" * 50_000_000), _row(3)]
    path = write_csv(tmp_path / "huge.csv", rows)
    report = ingest_paths(conn, [path])
    assert report.errors == []
    assert (report.ingested, report.quarantined) == (2, 1)
    assert report.quarantine[0]["line"] == 3 and "over the limit of 1048576 bytes" in report.quarantine[0]["reason"]
    stored = conn.execute("SELECT length(record) FROM raw.quarantine").fetchone()[0]
    assert stored <= 4096, "only an excerpt of an oversized record is kept"


def test_an_oversized_multiline_record_ends_where_its_quotes_close(conn, tmp_path):
    """A quoted cell over the limit that spans lines: the next record still starts on the right line."""
    rows = [_row(1), _row(2, intent=("z" * 300 + "\n") * 20 + 'a "quoted" word, and more'), _row(3),
            _row(4, intent="a\nb")]
    path = write_csv(tmp_path / "multi.csv", rows)
    report = ingest_paths(conn, [path], IntakeSettings(max_line_bytes=2000))
    assert (report.ingested, report.quarantined) == (3, 1)
    assert [q["line"] for q in report.quarantine] == [3]
    lines = dict(conn.execute("SELECT trace_id, source_line FROM raw.traces").fetchall())
    assert lines == {"r1": 2, "r3": 24, "r4": 25}, "source_line is the line a record starts on"
    assert conn.execute("SELECT intent FROM raw.traces WHERE trace_id = 'r4'").fetchone()[0] == "a\nb"


def test_a_bom_at_the_start_of_a_csv_file_is_not_part_of_the_first_column(conn, tmp_path):
    path = write_csv(tmp_path / "bom.csv", [_row(1), _row(2)], encoding="utf-8-sig")
    report = ingest_paths(conn, [path])
    assert (report.ingested, report.quarantined, report.errors) == (2, 0, [])


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_a_semicolon_tab_or_pipe_delimited_csv_is_recognised(conn, tmp_path, delimiter):
    path = write_csv(tmp_path / "other.csv", [_row(1, "a, b; c\td|e"), _row(2)], delimiter=delimiter)
    report = ingest_paths(conn, [path])
    assert (report.ingested, report.quarantined, report.errors) == (2, 0, [])
    contents = conn.execute("SELECT messages[1].content FROM raw.traces ORDER BY trace_id").fetchall()
    assert contents == [("a, b; c\td|e",), ("hello",)]


def test_a_row_with_a_stray_carriage_return_is_quarantined_and_the_next_row_loads(conn, tmp_path):
    path = write_csv(tmp_path / "cr.csv", [_row(1), _row(2), _row(3)])
    data = path.read_bytes().replace(b"r2,", b"r2\rx,", 1)
    path.write_bytes(data)
    report = ingest_paths(conn, [path])
    assert (report.ingested, report.quarantined) == (2, 1)
    assert report.quarantine[0]["line"] == 3


def test_row_with_the_wrong_number_of_cells_names_its_line_and_not_its_values(conn, tmp_path):
    rows = [_row(1), ["r2", "secret-value"], _row(3)]
    report = ingest_paths(conn, [write_csv(tmp_path / "cells.csv", rows)])
    assert (report.ingested, report.quarantined) == (2, 1)
    [q] = report.quarantine
    assert q["line"] == 3 and "2 cells" in q["reason"] and "secret" not in q["reason"]


def test_csv_reasons_name_the_field_and_never_quote_the_value(conn, tmp_path):
    messages = json.dumps(trace()["messages"])
    rows = [_row(1), ["r2", "secret-time", messages, "x"], ["r3", "2026-03-02T10:00:00Z", "{secret", "x"]]
    report = ingest_paths(conn, [write_csv(tmp_path / "values.csv", rows)])
    reasons = [q["reason"] for q in report.quarantine]
    assert len(reasons) == 2 and all("secret" not in r for r in reasons), reasons
    assert 'field "timestamp"' in reasons[0] and 'column "messages"' in reasons[1]


def test_blank_lines_and_a_missing_final_newline_are_fine(conn, tmp_path):
    path = write_csv(tmp_path / "blank.csv", [_row(1), _row(2)])
    path.write_bytes(path.read_bytes().replace(b"\r\n", b"\n").replace(b"\nr2", b"\n\n  \nr2").rstrip(b"\n"))
    report = ingest_paths(conn, [path])
    assert (report.ingested, report.quarantined) == (2, 0)
    assert conn.execute("SELECT source_line FROM raw.traces WHERE trace_id = 'r2'").fetchone()[0] == 5


def test_an_empty_csv_or_one_with_only_a_header_loads_nothing_and_is_no_error(conn, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    header_only = write_csv(tmp_path / "header.csv", [])
    report = ingest_paths(conn, [empty, header_only])
    assert (report.ingested, report.quarantined, report.errors) == (0, 0, [])


@pytest.mark.parametrize("content", [b"trace_id,time\xffstamp,messages\n", b"\n", b"trace_id,timestamp\rr1,x\r"],
                         ids=["not UTF-8", "blank", "old Mac line endings"])
def test_a_header_that_cannot_be_read_is_an_error_for_the_file(conn, tmp_path, content):
    path = tmp_path / "bad-header.csv"
    path.write_bytes(content + b"r1,2026-03-02T10:00:00Z,[]\n")
    report = ingest_paths(conn, [path])
    assert len(report.errors) == 1 and "header" in report.errors[0]["error"], report.errors


def test_max_line_bytes_must_be_positive(data_dir, tmp_path):
    path = write_csv(tmp_path / "a.csv", [_row(1)])
    for bad in ("0", "-5"):
        result = CliRunner().invoke(main, ["ingest", str(path), "--max-line-bytes", bad])
        assert result.exit_code == 2 and "max-line-bytes" in result.output, result.output


def _record_starts(data: bytes, limit: int, delimiter: str) -> list[int]:
    """The line each record csv.reader finds starts on, fed by the intake's line reader."""
    lines = csv_records._PhysicalLines(io.BytesIO(data), limit, delimiter)
    reader = csv.reader(lines, delimiter=delimiter, strict=False)
    starts = []
    while True:
        lines.new_record()
        try:
            next(reader)
        except StopIteration:
            return starts
        except csv.Error:
            pass
        starts.append(lines.first)


@pytest.mark.parametrize("delimiter", [",", ";"])
def test_a_skipped_oversized_record_ends_where_the_parser_would_have_ended_it(monkeypatch, delimiter):
    """A record over the limit is not parsed: where it ends is found by _RecordEnd over collapsed
    text. With a limit of 0 every record is skipped so: the records must start on the same lines as
    when the parser reads them all."""
    monkeypatch.setattr(csv_records, "PIECE_BYTES", 7)  # lines read in pieces, runs cut across them
    rng = random.Random(7)
    alphabet = ["a", "bb", "é", " ", delimiter, delimiter * 3, '"', '""', '"""', "\n", "\r\n", "\r", "\xff"]
    for _ in range(400):
        data = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60))).encode("utf-8", "surrogateescape")
        data = data.replace(b"\xc3\xbf", b"\xff")  # a byte that is not UTF-8
        full = _record_starts(data, 10**9, delimiter)
        assert _record_starts(data, 0, delimiter) == full, data
