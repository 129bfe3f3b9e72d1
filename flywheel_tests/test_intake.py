import csv
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flywheel.core.intake import ingest as intake
from flywheel.core.intake.ingest import ingest_paths
from flywheel.settings import IntakeSettings
from flywheel_tests.conftest import trace, write_jsonl

BAD_RECORDS = [
    ("not json", "{oops", "not valid JSON"),
    ("truncated json", '{"trace_id": "x", "timestamp": ', "not valid JSON"),
    ("json array", "[1, 2, 3]", "record is not a JSON object"),
    ("json string", '"just text"', "record is not a JSON object"),
    ("missing trace_id", json.dumps({k: v for k, v in trace().items() if k != "trace_id"}), 'missing required field "trace_id"'),
    ("null trace_id", json.dumps(trace(trace_id=None)), 'missing required field "trace_id"'),
    ("empty trace_id", json.dumps(trace(trace_id="")), 'field "trace_id" must not be empty'),
    ("object trace_id", json.dumps(trace(trace_id={"a": 1})), 'field "trace_id" must be a string'),
    ("missing timestamp", json.dumps({k: v for k, v in trace().items() if k != "timestamp"}), 'missing required field "timestamp"'),
    ("bad timestamp", json.dumps(trace(timestamp="last tuesday")), 'field "timestamp" must be an ISO 8601 timestamp'),
    ("numeric timestamp", json.dumps(trace(timestamp=1767225600)), 'field "timestamp" must be an ISO 8601 timestamp'),
    ("impossible date", json.dumps(trace(timestamp="2026-02-30T10:00:00Z")), 'field "timestamp" must be an ISO 8601 timestamp'),
    # DuckDB parses these, Python's datetime cannot hold them: stored, they failed `flywheel status`.
    ("year 10000", json.dumps(trace(timestamp="10000-01-01T00:00:00Z")), "a time outside the years 1 to 9999"),
    ("infinite time", json.dumps(trace(timestamp="infinity")), "a time outside the years 1 to 9999"),
    ("year before Christ", json.dumps(trace(timestamp="0044-03-15 (BC)")), "a time outside the years 1 to 9999"),
    ("missing messages", json.dumps({k: v for k, v in trace().items() if k != "messages"}), 'missing required field "messages"'),
    ("messages not a list", json.dumps(trace(messages="hello")), 'field "messages" must be a list'),
    ("empty messages", json.dumps(trace(messages=[])), 'field "messages" must not be empty'),
    ("unknown role", json.dumps(trace(messages=[{"role": "user", "content": "a"}, {"role": "bot", "content": "b"}])),
     "messages[1] has an unknown role"),
    ("missing role", json.dumps(trace(messages=[{"content": "a"}])), "messages[0] has no role"),
    ("message not an object", json.dumps(trace(messages=["hi"])), "messages[0] has no role"),
    ("content not a string", json.dumps(trace(messages=[{"role": "user", "content": 42}])), "messages[0].content must be a string"),
    ("judge score out of range", json.dumps(trace(judge_score=1.5)), 'field "judge_score" must be a number >= 0 and <= 1'),
    ("judge score text", json.dumps(trace(judge_score="high")), 'field "judge_score" must be a number'),
    ("turns fractional", json.dumps(trace(turns=2.5)), 'field "turns" must be an integer'),
    ("turns negative", json.dumps(trace(turns=-1)), 'field "turns" must be an integer >= 0'),
    ("turns in exponent form", json.dumps(trace(turns=1e3)), 'field "turns" must be an integer'),
    ("turns past BIGINT", json.dumps(trace(turns=2**63)), 'field "turns" must be an integer'),
    ("csat past DOUBLE", json.dumps(trace()).rstrip("}") + ', "csat": 1e400}', 'field "csat" must be a number'),
    ("flag not boolean", json.dumps(trace(guardrail_tripped="yes")), 'field "guardrail_tripped" must be true or false'),
    ("metadata not object", json.dumps(trace(metadata=[1])), 'field "metadata" must be a JSON object'),
    ("cohort not string", json.dumps(trace(cohort=["smb"])), 'field "cohort" must be a string'),
]


@pytest.mark.parametrize("label,line,reason", BAD_RECORDS, ids=[b[0] for b in BAD_RECORDS])
def test_each_kind_of_bad_record_is_quarantined_with_its_reason(conn, tmp_path, label, line, reason):
    path = write_jsonl(tmp_path / "in.jsonl", [trace("good-1"), line, trace("good-2")])
    report = ingest_paths(conn, [path])
    assert report.ingested == 2, "a bad line must not stop the rest of the file"
    assert report.quarantined == 1
    [q] = report.quarantine
    assert q["line"] == 2 and q["file"] == str(path)
    assert reason in q["reason"], q["reason"]
    stored = conn.execute("SELECT line, reason, record FROM raw.quarantine").fetchall()
    assert stored == [(2, q["reason"], line)]


SECRET_VALUES = [
    trace(trace_id={"SECRET": 1}), trace(timestamp="SECRET"), trace(timestamp=["SECRET"]), trace(judge_score="SECRET"),
    trace(turns="SECRET"), trace(cohort=["SECRET"]), trace(guardrail_tripped="SECRET"), trace(metadata="SECRET"),
    trace(messages="SECRET"), trace(messages=[{"role": "SECRET", "content": "a"}]),
    trace(messages=[{"role": "user", "content": {"SECRET": 1}}]),
    trace(messages=[{"role": "user", "content": ["SECRET"]}]),
]


def test_reasons_name_the_field_and_the_problem_never_the_value(conn, tmp_path):
    """Traces hold customer data: a reason (printed, logged, shown in the UI) never quotes it."""
    path = write_jsonl(tmp_path / "in.jsonl", SECRET_VALUES)
    report = ingest_paths(conn, [path])
    assert report.quarantined == len(SECRET_VALUES)
    for q in report.quarantine:
        assert "SECRET" not in q["reason"], q["reason"]
        assert "field" in q["reason"] or "messages[" in q["reason"], q["reason"]


def test_oversize_record_is_quarantined(conn, tmp_path):
    big = trace("big", messages=[{"role": "user", "content": "x" * 5000}])
    path = write_jsonl(tmp_path / "in.jsonl", [trace("a"), big, trace("b")])
    report = ingest_paths(conn, [path], IntakeSettings(max_line_bytes=1000))
    assert report.ingested == 2
    assert [q["line"] for q in report.quarantine] == [2]
    assert "over the limit of 1000 bytes" in report.quarantine[0]["reason"]


def test_oversize_line_longer_than_a_read_block_is_skipped_without_holding_it(conn, tmp_path, monkeypatch):
    monkeypatch.setattr(intake, "BLOCK_BYTES", 256)
    big = trace("big", messages=[{"role": "user", "content": "y" * 4000}])
    path = write_jsonl(tmp_path / "in.jsonl", [trace("a"), big, trace("b"), trace("c")])
    report = ingest_paths(conn, [path], IntakeSettings(max_line_bytes=1000))
    assert report.ingested == 3
    assert [(q["line"], "over the limit" in q["reason"]) for q in report.quarantine] == [(2, True)]
    lines = conn.execute("SELECT trace_id, source_line FROM raw.traces ORDER BY source_line").fetchall()
    assert lines == [("a", 1), ("b", 3), ("c", 4)]


def test_invalid_utf8_line_is_quarantined_and_the_rest_loaded(conn, tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(
        (json.dumps(trace("a")) + "\n").encode() + b'{"trace_id": "\xff\xfe"}\n' + (json.dumps(trace("b")) + "\n").encode()
    )
    report = ingest_paths(conn, [path])
    assert report.ingested == 2
    assert report.quarantine[0]["line"] == 2 and "UTF-8" in report.quarantine[0]["reason"]


def test_valid_record_is_typed_and_unknown_fields_kept_in_metadata(conn, tmp_path):
    rec = trace("t9", timestamp="2026-03-02T12:00:00+02:00", judge_score=0.55, customer_id=1234,
                metadata={"channel": "chat"}, region="eu", tags=["vip"])
    ingest_paths(conn, [write_jsonl(tmp_path / "in.jsonl", [rec])])
    row = conn.execute(
        "SELECT trace_id, timestamp::VARCHAR, judge_score, customer_id, turns, metadata, messages FROM raw.traces"
    ).fetchone()
    assert row[0] == "t9"
    assert row[1] == "2026-03-02 10:00:00", "timestamps are stored in UTC"
    assert row[2] == 0.55
    assert row[3] == "1234"
    assert row[4] == 1, "turns are counted from user messages when absent"
    assert json.loads(row[5]) == {"channel": "chat", "region": "eu", "tags": ["vip"]}
    assert row[6][0] == {"role": "user", "content": "My invoice is wrong"}


def test_blank_lines_are_not_records(conn, tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [trace("a"), "", "   ", trace("b")])
    report = ingest_paths(conn, [path])
    assert (report.ingested, report.quarantined) == (2, 0)


def test_reingesting_a_file_adds_nothing_and_quarantines_nothing_twice(conn, tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [trace("a"), "garbage", trace("b")])
    first = ingest_paths(conn, [path])
    second = ingest_paths(conn, [path])
    assert (first.ingested, first.duplicates, first.quarantined) == (2, 0, 1)
    assert (second.ingested, second.duplicates) == (0, 2)
    assert conn.execute("SELECT count(*) FROM raw.traces").fetchone()[0] == 2
    assert conn.execute("SELECT count(*) FROM raw.quarantine").fetchone()[0] == 1


def test_same_trace_id_within_and_across_files_is_counted_as_duplicate(conn, tmp_path):
    one = write_jsonl(tmp_path / "one.jsonl", [trace("a"), trace("a", messages=[{"role": "user", "content": "again"}])])
    two = write_jsonl(tmp_path / "two.jsonl", [trace("a"), trace("b")])
    report = ingest_paths(conn, [one, two])
    assert (report.ingested, report.duplicates) == (2, 2)
    kept = conn.execute("SELECT messages[1].content FROM raw.traces WHERE trace_id = 'a'").fetchall()
    assert kept == [("My invoice is wrong",)], "the first occurrence wins"


def test_skip_known_files_uses_the_manifest(conn, tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [trace("a")])
    ingest_paths(conn, [path], skip_known=True)
    again = ingest_paths(conn, [path], skip_known=True)
    assert again.skipped_files == 1 and again.files == []
    write_jsonl(path, [trace("a"), trace("b")])  # changed content: a new manifest entry
    changed = ingest_paths(conn, [path], skip_known=True)
    assert (changed.ingested, changed.duplicates) == (1, 1)


def test_folder_is_expanded_to_trace_files(conn, tmp_path):
    folder = tmp_path / "inbox"
    (folder / "sub").mkdir(parents=True)
    write_jsonl(folder / "a.jsonl", [trace("a")])
    write_jsonl(folder / "sub" / "b.jsonl", [trace("b")])
    (folder / "notes.txt").write_text("not a trace file")
    assert ingest_paths(conn, [folder]).ingested == 2


def test_unreadable_files_are_reported_not_raised(conn, tmp_path):
    (tmp_path / "bad.parquet").write_text("this is not parquet")
    report = ingest_paths(conn, [tmp_path / "missing.jsonl", tmp_path / "bad.parquet"])
    assert len(report.errors) == 2
    assert "missing.jsonl" in report.errors[0]["error"] and "Parquet" in report.errors[1]["error"]


def test_csv_input_with_bad_rows(conn, tmp_path):
    path = tmp_path / "in.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["trace_id", "timestamp", "messages", "judge_score", "guardrail_tripped", "team"])
        w.writerow(["c1", "2026-03-02T10:00:00Z", json.dumps(trace()["messages"]), "0.5", "true", "ops"])
        w.writerow(["c2", "2026-03-02T10:00:00Z", "{not json", "0.5", "false", "ops"])
        w.writerow(["c3", "2026-03-02T10:00:00Z", json.dumps(trace()["messages"]), "very", "no", "ops"])
        w.writerow(["c4", "2026-03-02T10:00:00Z", json.dumps(trace()["messages"]), "", "", ""])
    report = ingest_paths(conn, [path])
    assert report.ingested == 2
    assert [(q["line"], q["reason"].split(":")[0]) for q in report.quarantine] == [
        (3, 'column "messages" is not valid JSON'),
        (4, 'field "judge_score" must be a number >= 0 and <= 1, got a string'),
    ]
    row = conn.execute("SELECT judge_score, guardrail_tripped, metadata FROM raw.traces WHERE trace_id = 'c1'").fetchone()
    assert row[0] == 0.5 and row[1] is True and json.loads(row[2]) == {"team": "ops"}


def test_parquet_input(conn, tmp_path):
    path = tmp_path / "in.parquet"
    good = trace("p1")
    table = pa.table({
        "trace_id": ["p1", "p2"],
        "timestamp": ["2026-03-02T10:00:00Z", "not a time"],
        "messages": [good["messages"], good["messages"]],
        "judge_score": [0.7, None],
    })
    pq.write_table(table, path)
    report = ingest_paths(conn, [path])
    assert report.ingested == 1
    assert report.quarantine[0]["line"] == 2 and "timestamp" in report.quarantine[0]["reason"]
    assert conn.execute("SELECT judge_score FROM raw.traces").fetchone()[0] == 0.7


def test_report_json_contract(conn, tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [trace("a"), "nope"])
    out = ingest_paths(conn, [path]).to_json()
    assert set(out) >= {"ingested", "duplicates", "quarantined", "quarantine"}
    assert out["quarantine"] == [{"file": str(path), "line": 2, "reason": out["quarantine"][0]["reason"]}]


@pytest.mark.parametrize("field,value,stored", [
    ("judge_score", 1, 1.0), ("judge_score", 0, 0.0), ("judge_score", 2.5e-1, 0.25), ("csat", -2, -2.0),
    ("turns", 0, 0), ("cohort", "", ""), ("guardrail_tripped", False, False),
])
def test_edge_values_that_are_valid(conn, tmp_path, field, value, stored):
    report = ingest_paths(conn, [write_jsonl(tmp_path / "in.jsonl", [trace("e", **{field: value})])])
    assert report.quarantined == 0, report.quarantine
    assert conn.execute(f"SELECT {field} FROM raw.traces").fetchone()[0] == stored


@pytest.mark.parametrize("content,expected", [
    (b"", []),
    (json.dumps(trace("a")).encode(), ["a"]),  # no newline at the end
    ((json.dumps(trace("a")) + "\n\n" + json.dumps(trace("b")) + "\r\n").encode(), ["a", "b"]),
])
def test_file_edges(conn, tmp_path, content, expected):
    path = tmp_path / "in.jsonl"
    path.write_bytes(content)
    report = ingest_paths(conn, [path])
    assert report.quarantined == 0, report.quarantine
    assert [r[0] for r in conn.execute("SELECT trace_id FROM raw.traces ORDER BY trace_id").fetchall()] == expected


def test_a_line_longer_than_a_read_block_but_within_the_limit_is_loaded(conn, tmp_path, monkeypatch):
    monkeypatch.setattr(intake, "BLOCK_BYTES", 256)
    long = trace("long", messages=[{"role": "user", "content": "z" * 2000}])
    path = write_jsonl(tmp_path / "in.jsonl", [trace("a"), long, trace("b")])
    report = ingest_paths(conn, [path])
    assert (report.ingested, report.quarantined) == (3, 0)
    assert conn.execute("SELECT source_line FROM raw.traces WHERE trace_id = 'b'").fetchone()[0] == 3


def test_many_small_files_share_a_transaction_and_each_is_counted(conn, tmp_path):
    paths = [write_jsonl(tmp_path / f"f{i}.jsonl", [trace(f"t{i}-{j}") for j in range(3)] + ["bad"]) for i in range(5)]
    report = ingest_paths(conn, paths, IntakeSettings(transaction_records=8))
    assert [(f.ingested, f.quarantined) for f in report.files] == [(3, 1)] * 5
    assert conn.execute("SELECT count(*) FROM raw.ingested_files").fetchone()[0] == 5
    assert conn.execute("SELECT count(*) FROM raw.traces").fetchone()[0] == 15


def test_a_file_that_breaks_midway_leaves_nothing_and_its_batch_is_reloaded(conn, tmp_path, monkeypatch):
    monkeypatch.setattr(intake, "BLOCK_BYTES", 512)
    first = write_jsonl(tmp_path / "a.jsonl", [trace(f"a{j}") for j in range(4)] + ["bad"])
    broken = write_jsonl(tmp_path / "b.jsonl", [trace(f"b{j}") for j in range(20)])
    last = write_jsonl(tmp_path / "c.jsonl", [trace("c0")])
    real_read = intake.read_jsonl

    def read_then_fail(path, settings):
        for n, chunk in enumerate(real_read(path, settings)):
            if path == broken and n == 2:
                raise OSError(5, "Input/output error")
            yield chunk

    monkeypatch.setattr(intake, "read_jsonl", read_then_fail)
    missing = tmp_path / "missing.jsonl"
    report = ingest_paths(conn, [first, missing, broken, last])
    ids = {r[0][0] for r in conn.execute("SELECT trace_id FROM raw.traces").fetchall()}
    assert ids == {"a", "c"}, "nothing of the broken file, all of the others"
    assert [(f.file, f.ingested, f.quarantined, f.error is not None) for f in report.files] == [
        (str(first), 4, 1, False), (str(missing), 0, 0, True), (str(broken), 0, 0, True), (str(last), 1, 0, False)]
    assert [q["file"] for q in report.quarantine] == [str(first)]
    assert "Input/output error" in report.errors[1]["error"]
    assert conn.execute("SELECT count(*) FROM raw.quarantine").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM raw.ingested_files").fetchone()[0] == 2


def test_repeats_inside_one_chunk_keep_the_first_line(conn, tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [trace("x", intent="first"), trace("y"), trace("x", intent="second"),
                                               trace("x", intent="third")])
    report = ingest_paths(conn, [path])
    assert (report.ingested, report.duplicates) == (2, 2)
    assert conn.execute("SELECT intent, source_line FROM raw.traces WHERE trace_id = 'x'").fetchall() == [("first", 1)]


def test_chunks_already_loaded_are_not_held_until_the_batch_commits(conn, tmp_path, monkeypatch):
    """A batch of files is one statement and one transaction; the text of chunks already read must be
    freed as it goes (a table registered inside a transaction stays alive until commit)."""
    import gc
    import weakref

    paths = [write_jsonl(tmp_path / f"f{i}.jsonl", [trace(f"t{i}-{j}") for j in range(3)] + ["bad"]) for i in range(4)]
    seen, alive_at_each_read = [], []
    real_read = intake.read_jsonl

    def read_and_count(path, settings):
        for chunk in real_read(path, settings):
            gc.collect()
            alive_at_each_read.append(sum(ref() is not None for ref in seen))
            seen.append(weakref.ref(chunk.table))
            yield chunk

    monkeypatch.setattr(intake, "read_jsonl", read_and_count)
    report = ingest_paths(conn, paths)
    assert report.ingested == 12 and len(report.files) == 4 and report.quarantined == 4
    # Each file is read twice: by the fast statement, then for its bad line.
    assert alive_at_each_read == [0] * 8


def test_a_valid_record_the_fast_path_declined_still_comes_first(conn, tmp_path, monkeypatch):
    """The fast path may decline a valid record (never accept a bad one); the record is loaded by
    the reference path, ahead of a later line with the same id."""
    real = intake.acceptance_sql

    def declines_even_lines(max_bytes, source="chunk", carry=()):
        return f"SELECT * REPLACE (CASE WHEN line % 2 = 0 THEN 'declined' ELSE reason END AS reason) FROM ({real(max_bytes, source, carry)})"

    monkeypatch.setattr(intake, "acceptance_sql", declines_even_lines)
    path = write_jsonl(tmp_path / "in.jsonl", [trace("x"), trace("z", intent="first"), trace("z", intent="second"),
                                               trace("y"), "bad"])
    report = ingest_paths(conn, [path])
    assert (report.ingested, report.duplicates, report.quarantined) == (3, 1, 1)
    assert conn.execute("SELECT intent, source_line FROM raw.traces WHERE trace_id = 'z'").fetchall() == [("first", 2)]


def test_a_file_that_breaks_again_on_reload_is_left_out_too(conn, tmp_path, monkeypatch):
    monkeypatch.setattr(intake, "BLOCK_BYTES", 512)
    first = write_jsonl(tmp_path / "a.jsonl", [trace(f"a{j}") for j in range(20)])
    second = write_jsonl(tmp_path / "b.jsonl", [trace(f"b{j}") for j in range(20)])
    third = write_jsonl(tmp_path / "c.jsonl", [trace(f"c{j}") for j in range(3)])
    reads = {first: 0, second: 0, third: 0}
    real_read = intake.read_jsonl

    def flaky(path, settings):
        reads[path] += 1
        for n, chunk in enumerate(real_read(path, settings)):
            # b breaks on its first reading, a on its second (the reload after b broke).
            if n == 2 and ((path == second and reads[path] == 1) or (path == first and reads[path] == 2)):
                raise OSError(5, "Input/output error")
            yield chunk

    monkeypatch.setattr(intake, "read_jsonl", flaky)
    report = ingest_paths(conn, [first, second, third])
    assert {f.file: (f.ingested, f.error is not None) for f in report.files} == {
        str(first): (0, True), str(second): (0, True), str(third): (3, False)}
    assert conn.execute("SELECT count(*) FROM raw.traces").fetchone()[0] == 3
    assert all(f.sha256 for f in report.files)


def test_a_record_duckdb_cannot_load_fails_its_file_not_the_run(conn, tmp_path, monkeypatch):
    good = write_jsonl(tmp_path / "good.jsonl", [trace("g1"), trace("g2")])
    cursed = write_jsonl(tmp_path / "cursed.jsonl", [trace("c0"), trace("c1")])
    after = write_jsonl(tmp_path / "after.jsonl", [trace("h1")])
    real = intake.acceptance_sql

    def fails_on_c1(max_bytes, source="chunk", carry=()):
        # A conversion error on one record aborts the statement and its transaction, as a real one would.
        return (f"SELECT * REPLACE (CASE WHEN trace_id = 'c1' THEN CAST(trace_id AS INTEGER)::VARCHAR ELSE reason END"
                f" AS reason) FROM ({real(max_bytes, source, carry)})")

    monkeypatch.setattr(intake, "acceptance_sql", fails_on_c1)
    report = ingest_paths(conn, [good, cursed, after])
    assert [(f.file, f.ingested, f.error is None) for f in report.files] == [
        (str(good), 2, True), (str(cursed), 0, False), (str(after), 1, True)]
    assert "could not be loaded" in report.errors[0]["error"]
    assert sorted(r[0] for r in conn.execute("SELECT trace_id FROM raw.traces").fetchall()) == ["g1", "g2", "h1"]
    assert conn.execute("SELECT count(*) FROM raw.ingested_files").fetchone()[0] == 2


def test_ingest_puts_the_connection_settings_it_changes_back(conn, tmp_path):
    conn.execute("SET disabled_optimizers = 'join_order'")
    before = conn.execute("SELECT current_setting('disabled_optimizers'), current_setting('checkpoint_threshold')").fetchone()
    report = ingest_paths(conn, [write_jsonl(tmp_path / "a.jsonl", [trace("s1"), "not json"])])
    assert (report.ingested, report.quarantined) == (1, 1)
    after = conn.execute("SELECT current_setting('disabled_optimizers'), current_setting('checkpoint_threshold')").fetchone()
    assert after == before


def test_an_id_repeated_across_files_of_one_batch_keeps_the_first_file_not_the_lowest_line(conn, tmp_path):
    first = write_jsonl(tmp_path / "b-first.jsonl", [trace("y"), trace("x", intent="first")])
    second = write_jsonl(tmp_path / "a-second.jsonl", [trace("x", intent="second")])
    report = ingest_paths(conn, [first, second])
    assert [(f.ingested, f.duplicates) for f in report.files] == [(2, 0), (0, 1)]
    assert conn.execute("SELECT intent, source_file, source_line FROM raw.traces WHERE trace_id = 'x'").fetchall() == [
        ("first", str(first), 2)]


def test_a_changed_file_loaded_again_at_the_same_pinned_moment_is_told_apart_from_its_first_load(conn, tmp_path, monkeypatch):
    """The rows a batch loaded are found by their ingested_at; with FLYWHEEL_NOW two loads share a
    clock reading, and the second must not take the first one's rows for its own."""
    monkeypatch.setenv("FLYWHEEL_NOW", "2026-05-04T06:00:00")
    path = write_jsonl(tmp_path / "in.jsonl", [trace("a1"), trace("a2")])
    ingest_paths(conn, [path])
    write_jsonl(path, [trace("a1"), trace("a3"), "bad"])
    report = ingest_paths(conn, [path])
    assert (report.ingested, report.duplicates, report.quarantined) == (1, 1, 1)
    assert conn.execute("SELECT trace_id, source_line FROM raw.traces ORDER BY trace_id").fetchall() == [
        ("a1", 1), ("a2", 2), ("a3", 2)]
    moments = conn.execute("SELECT DISTINCT ingested_at FROM raw.traces ORDER BY 1").fetchall()
    assert [str(m[0]) for m in moments] == ["2026-05-04 06:00:00", "2026-05-04 06:00:00.000001"]


def test_the_same_file_given_twice_is_loaded_once_and_counted_as_duplicates_the_second_time(conn, tmp_path):
    path = write_jsonl(tmp_path / "in.jsonl", [trace("a"), trace("b")])
    report = ingest_paths(conn, [path, path])
    assert [(f.ingested, f.duplicates) for f in report.files] == [(2, 0), (0, 2)]
    assert conn.execute("SELECT count(*) FROM raw.traces").fetchone()[0] == 2


def test_a_bug_while_reading_is_raised_as_itself_not_taken_for_a_bad_record(conn, tmp_path, monkeypatch):
    path = write_jsonl(tmp_path / "in.jsonl", [trace("a"), trace("b")])
    real_read = intake.read_jsonl

    def buggy(path, settings):
        yield from real_read(path, settings)
        raise RuntimeError("a bug in a reader")

    monkeypatch.setattr(intake, "read_jsonl", buggy)
    with pytest.raises(RuntimeError, match="a bug in a reader"):
        ingest_paths(conn, [path])
    assert conn.execute("SELECT count(*) FROM raw.traces").fetchone()[0] == 0


def test_a_record_that_fails_the_statement_early_leaves_the_unread_files_for_the_next_batch(conn, tmp_path, monkeypatch):
    """DuckDB stops reading the stream at the error: the files not read yet are loaded all the same."""
    monkeypatch.setattr(intake, "BLOCK_BYTES", 512)
    cursed = write_jsonl(tmp_path / "a.jsonl", [trace("c1")] + [trace(f"a{j}") for j in range(40)])
    others = [write_jsonl(tmp_path / f"b{i}.jsonl", [trace(f"b{i}-{j}") for j in range(40)]) for i in range(5)]
    real = intake.acceptance_sql

    def fails_on_c1(max_bytes, source="chunk", carry=()):
        return (f"SELECT * REPLACE (CASE WHEN trace_id = 'c1' THEN CAST(trace_id AS INTEGER)::VARCHAR ELSE reason END"
                f" AS reason) FROM ({real(max_bytes, source, carry)})")

    monkeypatch.setattr(intake, "acceptance_sql", fails_on_c1)
    report = ingest_paths(conn, [cursed, *others])
    assert [(f.ingested, f.error is None) for f in report.files] == [(0, False)] + [(40, True)] * 5
    assert conn.execute("SELECT count(*) FROM raw.traces").fetchone()[0] == 200
