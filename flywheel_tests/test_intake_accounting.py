"""Every record accounted for: intake checks, at the end of each file, that loaded + duplicates +
quarantined = the records the file holds, and each reader checks that it read the whole file. A
file that does not add up is an error for that file, never a silent success."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
from click.testing import CliRunner

from flywheel.cli import main
from flywheel.core.intake import csv_records
from flywheel.core.intake import ingest as intake
from flywheel.core.intake.ingest import ingest_paths
from flywheel_tests.conftest import trace, write_jsonl


def test_a_file_that_does_not_add_up_is_an_error_and_leaves_nothing(conn, tmp_path, monkeypatch):
    """The second reading (for the records the fast statement left) comes up short, as it would if
    the file changed in between or a bug dropped a record: the file is left out, the others load."""
    before = write_jsonl(tmp_path / "a.jsonl", [trace("a1")])
    short = write_jsonl(tmp_path / "b.jsonl", [trace("b1"), "not json", trace("b2")])
    after = write_jsonl(tmp_path / "c.jsonl", [trace("c1")])
    real_read = intake.read_jsonl
    readings = {}

    def second_reading_loses_a_line(path, settings):
        readings[path] = readings.get(path, 0) + 1
        for chunk in real_read(path, settings):
            if path == short and readings[path] == 2:
                chunk = intake.Chunk(chunk.table.filter(pa.compute.not_equal(chunk.table["line"], 2)), chunk.rejected)
            yield chunk

    monkeypatch.setattr(intake, "read_jsonl", second_reading_loses_a_line)
    report = ingest_paths(conn, [before, short, after])
    assert [(f.file, f.ingested, f.error is None) for f in report.files] == [
        (str(before), 1, True), (str(short), 0, False), (str(after), 1, True)]
    assert "3 records read" in report.errors[0]["error"]
    assert sorted(r[0] for r in conn.execute("SELECT trace_id FROM raw.traces").fetchall()) == ["a1", "c1"]
    assert conn.execute("SELECT count(*) FROM raw.quarantine").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM raw.ingested_files").fetchone()[0] == 2


def test_a_csv_reader_that_stops_before_the_end_is_an_error_not_a_short_file(conn, tmp_path, monkeypatch):
    """What lost 99 rows before: the reader gave up midway and the file counted as done."""
    path = tmp_path / "in.csv"
    rows = [f'r{i},2026-03-02T10:00:00Z,"[{{""role"": ""user"", ""content"": ""hi""}}]"' for i in range(10)]
    path.write_text("trace_id,timestamp,messages\n" + "\n".join(rows) + "\n")
    real_next = csv_records._PhysicalLines.__next__

    def gives_up_after_five_lines(self):
        if self.read == 5:
            raise StopIteration
        return real_next(self)

    monkeypatch.setattr(csv_records._PhysicalLines, "__next__", gives_up_after_five_lines)
    report = ingest_paths(conn, [path])
    assert report.ingested == 0 and "reading stopped at byte" in report.errors[0]["error"]


def test_a_parquet_file_short_of_its_row_count_is_an_error(conn, tmp_path, monkeypatch):
    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"trace_id": ["p1", "p2"], "timestamp": ["2026-03-02T10:00:00Z"] * 2,
                             "messages": [json.dumps(trace()["messages"])] * 2}), path)
    real_rows = intake._batch_rows
    monkeypatch.setattr(intake, "_batch_rows", lambda batch: list(real_rows(batch))[:1])
    report = ingest_paths(conn, [path])
    assert report.ingested == 0 and "read 1 rows of the 2" in report.errors[0]["error"]


def test_the_cli_exits_1_when_a_file_does_not_add_up(data_dir, tmp_path, monkeypatch):
    path = write_jsonl(tmp_path / "a.jsonl", [trace("a1"), "bad"])
    monkeypatch.setattr(intake, "_quarantine_rejected", lambda conn, rejected, result, *rest: None)  # loses them
    result = CliRunner().invoke(main, ["ingest", str(path)])
    assert result.exit_code == 1 and "records read" in result.stderr


def test_a_bom_at_the_start_of_a_jsonl_file_is_not_part_of_the_first_record(conn, tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + (json.dumps(trace("a")) + "\n" + json.dumps(trace("b")) + "\n").encode())
    report = ingest_paths(conn, [path])
    assert (report.ingested, report.quarantined) == (2, 0)
    assert conn.execute("SELECT source_line FROM raw.traces WHERE trace_id = 'a'").fetchone()[0] == 1


def test_a_bom_before_a_first_line_longer_than_a_read_block(conn, tmp_path, monkeypatch):
    monkeypatch.setattr(intake, "BLOCK_BYTES", 256)
    long = trace("long", messages=[{"role": "user", "content": "z" * 2000}])
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + (json.dumps(long) + "\n" + json.dumps(trace("b")) + "\n").encode())
    report = ingest_paths(conn, [path])
    assert (report.ingested, report.quarantined) == (2, 0)


def test_text_that_is_not_utf8_in_parquet_quarantines_only_its_row(conn, tmp_path):
    """Parquet does not check that its strings are UTF-8; reading one used to fail the whole file."""
    path = tmp_path / "in.parquet"
    messages = json.dumps(trace()["messages"])
    intent = pa.array([b"billing", b"caf\xe9", b"refund"], pa.binary()).view(pa.string())
    pq.write_table(pa.table({"trace_id": ["p1", "p2", "p3"], "timestamp": ["2026-03-02T10:00:00Z"] * 3,
                             "messages": [messages] * 3, "intent": intent}), path)
    report = ingest_paths(conn, [path])
    assert (report.ingested, report.quarantined, report.errors) == (2, 1, [])
    assert report.quarantine[0]["line"] == 2 and report.quarantine[0]["reason"] == 'column "intent" is not valid UTF-8'


def test_a_record_duckdb_cannot_load_is_an_error_that_does_not_quote_it(conn, tmp_path, monkeypatch):
    path = write_jsonl(tmp_path / "cursed.jsonl", [trace("SECRET-ID")])
    real = intake.acceptance_sql

    def fails(max_bytes, source="chunk", carry=()):
        typed = real(max_bytes, source, carry)
        return f"SELECT * REPLACE (CAST(trace_id AS INTEGER)::VARCHAR AS reason) FROM ({typed})"

    monkeypatch.setattr(intake, "acceptance_sql", fails)
    report = ingest_paths(conn, [path])
    [error] = report.errors
    assert "could not be loaded" in error["error"] and "SECRET" not in error["error"], error


def test_a_file_taken_while_a_failed_statement_winds_down_is_not_lost(conn, tmp_path, monkeypatch):
    """DuckDB can return from a failed statement while one of its threads is still inside the
    stream of records, taking the next file off the queue: that file used to vanish from both the
    warehouse and the report. A slow hash keeps the thread there."""
    import time

    monkeypatch.setattr(intake, "BLOCK_BYTES", 512)
    cursed = write_jsonl(tmp_path / "a.jsonl", [trace("c1")] + [trace(f"a{j}") for j in range(40)])
    others = [write_jsonl(tmp_path / f"b{i}.jsonl", [trace(f"b{i}-{j}") for j in range(40)]) for i in range(3)]
    real_hash = intake.file_sha256

    def slow_for_the_second_file(path):
        if path == others[0]:
            time.sleep(0.3)
        return real_hash(path)

    real = intake.acceptance_sql

    def fails_on_c1(max_bytes, source="chunk", carry=()):
        return (f"SELECT * REPLACE (CASE WHEN trace_id = 'c1' THEN CAST(trace_id AS INTEGER)::VARCHAR ELSE reason END"
                f" AS reason) FROM ({real(max_bytes, source, carry)})")

    monkeypatch.setattr(intake, "file_sha256", slow_for_the_second_file)
    monkeypatch.setattr(intake, "acceptance_sql", fails_on_c1)
    report = ingest_paths(conn, [cursed, *others])
    assert [(f.file, f.ingested, f.error is None) for f in report.files] == [
        (str(cursed), 0, False)] + [(str(path), 40, True) for path in others]
