"""What a second pair of independent testers found, writing files in every format from the published
specifications (OTel GenAI semconv and OTLP, OpenInference, the Langfuse API reference and blob export,
langsmith.schemas.Run, OpenAI chat and Batch files) without reading the code. Each test failed before
its fix."""

from __future__ import annotations

import decimal
import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from click.testing import CliRunner

from flywheel.core.common.db import connect
from flywheel.core.intake.ingest import ingest_paths
from flywheel.core.intake.sources import otel
from flywheel.core.intake.sources.assemble import Call, group_calls, merge
from flywheel_tests.test_sources import MAPPING, T0, _chat_span, _ingest, _otlp_doc, _roles


def _lines(path: Path, *docs) -> Path:
    path.write_text("".join(json.dumps(d) + "\n" for d in docs))
    return path


def _langfuse_trace(trace_id: str, question: str, **fields) -> dict:
    return {"id": trace_id, "timestamp": "2026-03-02T10:00:00Z", "userId": "u1", "input": question,
            "output": "answer", **fields}


# -- files: bytes, compression, emptiness ----------------------------------------------------------

def test_a_byte_that_is_not_utf8_quarantines_its_line_and_a_byte_order_mark_is_accepted(data_dir, tmp_path):
    path = tmp_path / "langfuse.jsonl"
    good = [json.dumps(_langfuse_trace(f"t{i}", f"question {i}")).encode() for i in range(3)]
    bad = good[1].replace(b"question", b"qu\xffestion")
    path.write_bytes(good[0] + b"\n" + bad + b"\n" + good[2] + b"\n")
    report, traces, quarantine = _ingest(data_dir, path)
    assert [t["trace_id"] for t in traces] == ["t0", "t2"]
    at = bad.index(b"\xff") + 1
    assert [(line, reason) for line, reason in quarantine] == [(2, f"line 2: not valid UTF-8 (byte {at})")]
    bom = tmp_path / "otel-bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps(_otlp_doc("ab" * 16, [_chat_span("cd" * 8, "hi", "hello")])).encode())
    report, traces, _ = _ingest(data_dir, bom)
    assert report.formats == {str(bom): "otel"} and report.errors == [] and "ab" * 16 in [t["trace_id"] for t in traces]


def test_a_gzip_cut_short_fails_only_its_own_file_and_empty_exports_are_no_error(data_dir, tmp_path):
    folder = tmp_path / "export"
    folder.mkdir()
    _lines(folder / "a.jsonl", {"messages": [{"role": "user", "content": "hi"}]})
    whole = gzip.compress(json.dumps(_langfuse_trace("t1", "q")).encode() * 50)
    (folder / "b.jsonl.gz").write_bytes(whole[: len(whole) // 2])
    (folder / "c.jsonl.gz").write_bytes(gzip.compress(b""))
    (folder / "d.json").write_text("[]")
    (folder / "e.json").write_text('{"data": [], "meta": {"page": 1, "totalItems": 0}}')
    report, traces, _ = _ingest(data_dir, folder, timestamp="2026-03-02T10:00:00Z")
    assert len(traces) == 1
    assert [e["error"] for e in report.errors] == [
        f"{folder / 'b.jsonl.gz'}: not a readable gzip file (cut short); copy or export it again"]


def test_parquet_binary_ids_that_are_not_text_decimals_and_whole_floats(data_dir, tmp_path):
    path = tmp_path / "traces.parquet"
    messages = [[{"role": "user", "content": f"q{i}"}] for i in range(3)]
    pq.write_table(pa.table({
        "trace_id": pa.array([b"\xff", b"\xfe", b"ok-3"], pa.binary()),
        "timestamp": ["2026-03-02T10:00:00Z"] * 3, "messages": messages,
        "judge_score": pa.array([decimal.Decimal("0.50")] * 3, pa.decimal128(5, 2)),
        "turns": pa.array([1.0, 1.0, 1.0], pa.float64())}), path)
    report, traces, quarantine = _ingest(data_dir, path, fmt="flywheel")
    # Decoded with replacement, the two ids became one and the second trace a "duplicate".
    assert [(t["trace_id"], t["judge_score"]) for t in traces] == [("ok-3", 0.5)]
    assert quarantine == [(1, 'column "trace_id" is not valid UTF-8'), (2, 'column "trace_id" is not valid UTF-8')]


def test_source_csv_rows_are_named_by_the_line_they_start_on(data_dir, tmp_path):
    path = tmp_path / "traces" / "export.csv"
    path.parent.mkdir()
    path.write_text('id,timestamp,user_id,input,output\nbc-5,2026-03-02T10:00:00Z,u1,"two\nlines",ok\n'
                    "bc-3,not a time,u1,question,ok\n")
    _, _, quarantine = _ingest(data_dir, path.parent)
    assert [line for line, _ in quarantine] == [4]


# -- Langfuse, LangSmith, chat logs ------------------------------------------------------------------

def test_langfuse_times_that_do_not_read_and_json_cut_short_quarantine_their_record(data_dir, tmp_path):
    path = _lines(tmp_path / "page.jsonl",
                  _langfuse_trace("t1", "first", sessionId="s", timestamp="2026-03-02T10:00:00Z"),
                  _langfuse_trace("t2", "second", sessionId="s", timestamp="garbage"),
                  _langfuse_trace("t3", '[{"role": "user", "content": "cut'),
                  _langfuse_trace("t4", "[urgent] my order"))
    _, traces, quarantine = _ingest(data_dir, path)
    # The call with no usable time was sorted first, and the session came out repeated.
    assert [(t["trace_id"], _roles(t)) for t in traces] == [
        ("s", [("user", "first"), ("assistant", "answer")]),
        ("t4", [("user", "[urgent] my order"), ("assistant", "answer")])]
    assert quarantine == [(2, "line 2: the start time is text that does not read as an ISO 8601 time"),
                          (3, "line 3: JSON that does not parse where messages belong (cut short?)")]


def test_langfuse_categorical_and_boolean_scores_feed_the_mapping(data_dir, tmp_path):
    scores = [{"name": "topic", "dataType": "CATEGORICAL", "value": 0, "stringValue": "billing"},
              {"name": "handed_off", "dataType": "BOOLEAN", "value": 1, "stringValue": "True"},
              {"name": "judge", "dataType": "NUMERIC", "value": 0.25}]
    path = _lines(tmp_path / "traces.jsonl", _langfuse_trace("t1", "q", scores=scores))
    mapping = type(MAPPING)({**MAPPING.sources, "intent": ("score:topic",), "handed_off": ("score:handed_off",)})
    with connect(data_dir / "flywheel.duckdb") as conn:
        ingest_paths(conn, [path], source_format="auto", mapping=mapping)
        row = conn.execute("SELECT intent, handed_off, judge_score FROM raw.traces").fetchone()
    assert row == ("billing", True, 0.25)


def test_a_mapped_value_of_the_wrong_kind_quarantines_naming_the_field(data_dir, tmp_path):
    path = _lines(tmp_path / "traces.jsonl", _langfuse_trace("t1", "q", metadata={"judge_score": "high"}),
                  _langfuse_trace("t2", "q2", metadata={"cohort": True}))
    _, traces, quarantine = _ingest(data_dir, path)
    assert quarantine == [(1, 'field "judge_score" must be a number >= 0 and <= 1, got a string')]
    assert [(t["trace_id"], t["cohort"]) for t in traces] == [("t2", "true")]


def test_openai_legacy_function_calls_and_langsmith_fields_of_the_wrong_kind(data_dir, tmp_path):
    chat = _lines(tmp_path / "chat.jsonl", {"messages": [
        {"role": "user", "content": "Where is order 7?"},
        {"role": "assistant", "content": None, "function_call": {"name": "lookup", "arguments": '{"id": 7}'}},
        {"role": "function", "name": "lookup", "content": "shipped"},
        {"role": "assistant", "content": "It shipped."}]})
    _, (trace,), _ = _ingest(data_dir, chat, timestamp="2026-03-02T10:00:00Z")
    assert _roles(trace) == [("user", "Where is order 7?"), ("assistant", '[tool call lookup({"id": 7})]'),
                             ("tool", "shipped"), ("assistant", "It shipped.")]
    run = {"id": "r1", "trace_id": "r1", "run_type": "llm", "start_time": "2026-03-02T10:00:00",
           "inputs": {"messages": [{"role": "user", "content": "q"}]}, "outputs": {"generations": "x"}}
    runs = _lines(tmp_path / "runs.jsonl", run, {**run, "id": "r2", "trace_id": "r2", "extra": "thread-1",
                                                 "outputs": {"generations": [[{"text": "a"}]]}})
    _, _, quarantine = _ingest(data_dir, runs)
    assert quarantine == [(1, 'line 1: "generations" is a JSON string, not a list'),
                          (2, 'line 2: "extra" is a JSON string, not an object')]


# -- OpenTelemetry and OpenInference ----------------------------------------------------------------

def _span(span_id: str, start_ns: int, inputs: list, reply: str, parent: str | None = None, **attrs) -> dict:
    span = _chat_span(span_id, "", reply, **attrs)
    for a in span["attributes"]:
        if a["key"] == "gen_ai.input.messages":
            a["value"]["stringValue"] = json.dumps(inputs)
    span.update(startTimeUnixNano=str(start_ns), endTimeUnixNano=str(start_ns + 10**9))
    return {**span, **({"parentSpanId": parent} if parent else {})}


def _user(text: str) -> dict:
    return {"role": "user", "parts": [{"type": "text", "content": text}]}


def _assistant(text: str) -> dict:
    return {"role": "assistant", "parts": [{"type": "text", "content": text}]}


def test_otlp_times_before_2000_and_attributes_of_the_wrong_kind_quarantine(data_dir, tmp_path):
    early = _chat_span("01" * 8, "q", "a")
    early.update(startTimeUnixNano="1000", endTimeUnixNano="2000")
    seconds = _chat_span("02" * 8, "q", "a")
    seconds.update(startTimeUnixNano=str(T0 // 10**9))  # seconds written where nanoseconds belong
    shapeless = {**_chat_span("03" * 8, "q", "a"), "attributes": {"gen_ai.operation.name": "chat"}}
    nothing = _chat_span("04" * 8, "q", "a")
    nothing["attributes"][1]["value"] = {"stringValue": None}  # gen_ai.input.messages
    path = _lines(tmp_path / "spans.jsonl", *(_otlp_doc(f"{i}a" * 16, [s]) for i, s in
                                              enumerate([early, seconds, shapeless, nothing], 1)))
    report, traces, quarantine = _ingest(data_dir, path)
    assert [(t["trace_id"], t["timestamp"].year) for t in traces] == [("2a" * 16, 2026)]
    assert [(line, reason.split(": ", 1)[1]) for line, reason in quarantine] == [
        (1, "a conversation of 1 LLM call(s) has no timestamp (none given, or none that reads as a time after 2000)"),
        (3, "span 0303030303030303: its attributes are not a list"),
        (4, 'span 0404040404040404: "gen_ai.input.messages" holds no value, not a list of messages')]
    assert not report.skipped_spans


def test_the_agent_span_lends_its_conversation_user_and_evaluation_to_the_calls_inside(data_dir, tmp_path):
    def agent(trace: str, span_id: str) -> dict:
        return {"traceId": trace, "spanId": span_id, "name": "invoke_agent", "startTimeUnixNano": str(T0),
                "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in {
                    "gen_ai.operation.name": "invoke_agent", "gen_ai.conversation.id": "conv-9",
                    "enduser.id": "cust-9"}.items()],
                "events": [{"name": "gen_ai.evaluation.result", "timeUnixNano": str(T0), "attributes": [
                    {"key": "gen_ai.evaluation.name", "value": {"stringValue": "judge"}},
                    {"key": "gen_ai.evaluation.score.value", "value": {"doubleValue": 0.4}}]}]}
    first = _otlp_doc("1b" * 16, [_span("11" * 8, T0, [_user("R1")], "r1", parent="aa" * 8)])
    second = _otlp_doc("2b" * 16, [_span("22" * 8, T0 + 60 * 10**9, [_user("R1"), _assistant("r1"), _user("R2")], "r2",
                                         parent="bb" * 8)])
    # An exporter sends the children first: the agent spans come in a later line.
    path = _lines(tmp_path / "agent.jsonl", first, second, {"resourceSpans": [{"scopeSpans": [{"spans": [
        agent("1b" * 16, "aa" * 8), agent("2b" * 16, "bb" * 8)]}]}]})
    _, (trace,), _ = _ingest(data_dir, path)
    assert (trace["trace_id"], trace["customer_id"], trace["judge_score"]) == ("conv-9", "cust-9", 0.4)
    assert _roles(trace) == [("user", "R1"), ("assistant", "r1"), ("user", "R2"), ("assistant", "r2")]


def test_merging_keeps_the_first_instructions_and_orders_calls_of_one_time_by_their_history():
    def call(start: float, inputs: list[dict], reply: str) -> Call:
        return Call(group="g", trace_id="t", start="", order=start, inputs=inputs,
                    outputs=[{"role": "assistant", "content": reply}])

    s1, a1 = {"role": "user", "content": "S1"}, {"role": "assistant", "content": "s1"}
    changed = [call(1, [{"role": "system", "content": "Prompt A"}, s1], "s1"),
               call(2, [{"role": "system", "content": "Prompt B"}, s1, a1, {"role": "user", "content": "S2"}], "s2")]
    assert [m["content"] for m in merge(changed)] == ["Prompt A", "S1", "s1", "S2", "s2"]
    same_time = [call(5, [s1, a1, {"role": "user", "content": "S2"}], "s2"), call(5, [s1], "s1")]  # turn 2 read first
    (group,) = group_calls(same_time).values()
    assert [m["content"] for m in merge(group)] == ["S1", "s1", "S2", "s2"]


def test_openinference_input_value_and_phoenix_rows_saved_without_their_index(data_dir, tmp_path):
    span = {"traceId": "5c" * 16, "spanId": "5d" * 8, "name": "llm", "startTimeUnixNano": str(T0),
            "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in {
                "openinference.span.kind": "LLM", "input.value": "plain question", "output.value": "plain answer"}.items()]}
    rows = [{"context.trace_id": "6e" * 16, "span_kind": "LLM", "start_time": "2026-03-02T11:00:00+00:00",
             "attributes.llm.input_messages": [{"message.role": "user", "message.content": "Is SSO included?"}],
             "attributes.llm.output_messages": [{"message.role": "assistant", "message.content": "Yes."}]}]
    _, traces, _ = _ingest(data_dir, _lines(tmp_path / "oi.jsonl", {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}),
                           _lines(tmp_path / "phoenix.jsonl", *rows))  # df.to_json(orient="records", lines=True)
    assert [(t["trace_id"], _roles(t)) for t in traces] == [
        ("5c" * 16, [("user", "plain question"), ("assistant", "plain answer")]),
        ("6e" * 16, [("user", "Is SSO included?"), ("assistant", "Yes.")])]
    assert "OPENINFERENCE_HIDE_INPUTS" in otel.NO_CONTENT


# -- the command line ------------------------------------------------------------------------------

def test_the_command_line_for_a_live_setup_and_an_inbox_read_by_hand(data_dir, tmp_path, monkeypatch):
    from flywheel.cli import main
    from flywheel.core.intake import otlp_inbox
    from flywheel.paths import Paths

    fresh = tmp_path / "fresh"
    result = CliRunner().invoke(main, ["users", "add", "otel-exporter", "--data-dir", str(fresh)])
    assert result.exit_code == 0 and "Started a new data directory" in result.output  # before any trace arrived
    monkeypatch.setenv("FLYWHEEL_NOW", "2026-03-02T10:30:00Z")
    inbox = Paths(data_dir).inbox_traces
    hour = otlp_inbox.append(inbox, _otlp_doc("7f" * 16, [_chat_span("7e" * 8, "hi", "hello")]),
                             __import__("datetime").datetime(2026, 3, 2, 10, 5))
    result = CliRunner().invoke(main, ["ingest", str(inbox)])
    assert result.exit_code == 0 and f"Left for later: {hour}" in result.output and "Ingested 0 traces" in result.output
    monkeypatch.setenv("FLYWHEEL_NOW", "2026-03-02T11:06:00Z")
    result = CliRunner().invoke(main, ["ingest", str(inbox)])
    assert "Ingested 1 traces" in result.output, result.output
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(gzip.compress(b'{"messages": []}\n' * 100)[:30])
    result = CliRunner().invoke(main, ["ingest", "--dry-run", str(cut)])
    assert result.exit_code == 1 and "cannot be read" in result.output  # as the ingest itself exits
    bad = _lines(tmp_path / "bad.jsonl", _langfuse_trace("t9", "q", userId=["x"]))
    CliRunner().invoke(main, ["ingest", str(bad)])
    status = CliRunner().invoke(main, ["status"])
    assert f"1 record(s) in quarantine, the latest:\n  {bad}:1: the user id is a JSON list" in status.output


# -- a third tester: a privacy officer's and an operator's path -------------------------------------

def test_a_langfuse_api_page_saved_on_one_line_is_read(data_dir, tmp_path):
    page = tmp_path / "page.json"  # curl .../api/public/traces > page.json: compact, one line
    page.write_text(json.dumps({"data": [_langfuse_trace("t1", "first"), _langfuse_trace("t2", "second"), 5],
                                "meta": {"page": 1, "totalItems": 3}}))
    report, traces, quarantine = _ingest(data_dir, page)
    assert report.formats == {str(page): "langfuse"}
    assert [t["trace_id"] for t in traces] == ["t1", "t2"]
    assert [line for line, _ in quarantine] == [3]  # numbered by element, as the same page pretty-printed is


def test_the_weekly_run_names_the_inbox_files_it_could_not_read(data_dir, capsys):
    import dagster as dg

    from flywheel.cli.loop import _say_what_the_inbox_gave
    from flywheel.defs.intake import raw_traces
    from flywheel.paths import Paths
    from flywheel_tests.conftest import fake_resources

    paths = Paths(data_dir)
    paths.inbox_traces.mkdir(parents=True)
    cut = paths.inbox_traces / "cut.jsonl.gz"
    cut.write_bytes(gzip.compress(json.dumps(_langfuse_trace("t1", "q")).encode() * 50)[:40])
    _lines(paths.inbox_traces / "good.jsonl", _langfuse_trace("t2", "q"))
    _say_what_the_inbox_gave(dg.materialize([raw_traces], resources=fake_resources(paths)))
    assert capsys.readouterr().out.splitlines() == [
        "Inbox: 1 new traces from 1 file(s), 0 duplicates, 0 quarantined; 1 file(s) could not be read:",
        f"  {cut}: not a readable gzip file (cut short); copy or export it again"]
