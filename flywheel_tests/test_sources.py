"""Traces from other sources, with fixtures made by the real libraries where they ship them:

- OpenTelemetry: spans built with opentelemetry-sdk and sent by opentelemetry-exporter-otlp-proto-http
  (protobuf, gzip) to the live endpoint of `flywheel serve`; files written as the Collector's file
  exporter does, from the SDK's own OTLP encoder (opentelemetry.exporter.otlp.proto.common).
- OpenInference: attribute names from openinference-semantic-conventions (SpanAttributes, ...).
- LangSmith: langsmith.schemas.Run objects, dumped as the API returns them and as the bulk export's
  Parquet rows (JSON columns as strings, docs.langchain.com "Data export").
- Langfuse: the SDK's v5 no longer ships the trace types, so from the documented shapes: the public
  API's TraceWithFullDetails (camelCase, observations and scores) and the blob storage export's
  snake_case rows with input and output as JSON strings (langfuse-docs,
  content/docs/api-and-data-platform/features/blob-storage-export-fields.mdx).
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import threading
import time
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from flywheel.core.common.db import connect
from flywheel.core.intake import otlp_inbox
from flywheel.core.intake import ingest as ingest_module
from flywheel.core.intake.ingest import ingest_paths
from flywheel.core.intake.sources import files as source_files
from flywheel.core.intake.sources.mapping import Mapping, MappingError
from flywheel.paths import REPO_REFERENCE, Paths
from flywheel_tests.test_ui import _free_port

MAPPING = Mapping.load(REPO_REFERENCE / "trace_mapping.yaml")
T0 = 1_772_445_600_000_000_000  # 2026-03-02T10:00:00Z in ns


def _ingest(data_dir: Path, *paths, fmt="auto", mapping=MAPPING, timestamp=None):
    with connect(data_dir / "flywheel.duckdb") as conn:
        report = ingest_paths(conn, paths, source_format=fmt, mapping=mapping, timestamp=timestamp)
        rows = conn.execute("SELECT trace_id, timestamp, messages, customer_id, cohort, intent, judge_score, "
                            "guardrail_tripped, model_version, metadata FROM raw.traces ORDER BY timestamp, trace_id"
                            ).fetchall()
        quarantine = conn.execute("SELECT line, reason FROM raw.quarantine ORDER BY source_file, line").fetchall()
    cols = ["trace_id", "timestamp", "messages", "customer_id", "cohort", "intent", "judge_score", "guardrail_tripped",
            "model_version", "metadata"]
    return report, [dict(zip(cols, r)) for r in rows], quarantine


def _roles(trace: dict) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in trace["messages"]]


# ---------------------------------------------------------------------------------------------
# OpenTelemetry GenAI through the live endpoint, sent by the SDK's own exporter
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def endpoint(data_dir):
    """`flywheel serve`'s app on a loopback port (uvicorn in a thread), with a reviewer's token."""
    import uvicorn

    from flywheel.core.labeling import review_store, reviewers
    from flywheel.resources.embedder import HashingEmbedder
    from flywheel.settings import ReviewSettings
    from flywheel.web.app import create_app

    with connect(data_dir / "flywheel.duckdb"):
        pass
    with review_store.opened(review_store.path_for(data_dir)) as store:
        token = reviewers.add(store, "otel-exporter").token
    port = _free_port()
    app = create_app(Paths(data_dir), ReviewSettings(), embedder_factory=HashingEmbedder, otlp_max_body=256 * 1024)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", token
    server.should_exit = True
    thread.join(timeout=10)


def _provider(endpoint_url: str, token: str):
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    exporter = OTLPSpanExporter(endpoint=f"{endpoint_url}/v1/traces", headers={"Authorization": f"Bearer {token}"},
                                compression=Compression.Gzip)
    provider = TracerProvider(resource=Resource.create({"service.name": "helpdesk-bot"}))
    provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=4))
    return provider


def _genai_conversation(tracer) -> None:
    """Two turns of one conversation (two traces, one gen_ai.conversation.id), each an agent span
    around a chat span and a tool span; the second turn's input repeats the first."""
    turn1 = [{"role": "user", "parts": [{"type": "text", "content": "Where is my refund?"}]}]
    reply1 = [{"role": "assistant", "parts": [{"type": "tool_call", "id": "c1", "name": "lookup_order",
                                               "arguments": {"order": "[ORDER]"}}], "finish_reason": "tool_call"}]
    turn2 = turn1 + reply1 + [{"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1",
                                                           "response": "refunded on Monday"}]}]
    reply2 = [{"role": "assistant", "parts": [{"type": "text", "content": "It was refunded on Monday."}],
               "finish_reason": "stop"}]
    for inputs, outputs, structured in ((turn1, reply1, False), (turn2, reply2, True)):
        with tracer.start_as_current_span("invoke_agent helpdesk", attributes={"gen_ai.operation.name": "invoke_agent"}):
            with tracer.start_as_current_span("chat gpt-4o") as span:
                span.set_attribute("gen_ai.operation.name", "chat")
                span.set_attribute("gen_ai.provider.name", "openai")
                span.set_attribute("gen_ai.response.model", "gpt-4o-2024-08-06")
                span.set_attribute("gen_ai.conversation.id", "conv-42")
                span.set_attribute("enduser.id", "cust-7")
                span.set_attribute("app.cohort", "enterprise")
                span.set_attribute("gen_ai.system_instructions", json.dumps([{"type": "text", "content": "Be brief."}]))
                # The conventions allow a JSON string or a structured value; the SDK sends both.
                span.set_attribute("gen_ai.input.messages", inputs if structured else json.dumps(inputs))
                span.set_attribute("gen_ai.output.messages", outputs if structured else json.dumps(outputs))
                if structured:
                    span.add_event("gen_ai.evaluation.result", {"gen_ai.evaluation.name": "judge",
                                                                "gen_ai.evaluation.score.value": 0.35})
            with tracer.start_as_current_span("execute_tool lookup_order", attributes={"gen_ai.operation.name": "execute_tool"}):
                pass


def _older_shapes(tracer) -> None:
    """The shapes before v1.37: per-message events (v1.28-v1.36) and OpenLLMetry's indexed attributes."""
    with tracer.start_as_current_span("chat gpt-3.5") as span:
        span.set_attribute("gen_ai.operation.name", "chat")
        span.set_attribute("gen_ai.system", "openai")
        span.set_attribute("user.id", "cust-8")
        span.add_event("gen_ai.system.message", {"content": "You are a help desk."})
        span.add_event("gen_ai.user.message", {"content": "Cancel my plan"})
        span.add_event("gen_ai.choice", {"index": 0, "finish_reason": "stop",
                                         "message": json.dumps({"role": "assistant", "content": "Done."})})
    with tracer.start_as_current_span("openai.chat") as span:
        span.set_attribute("llm.request.type", "chat")
        span.set_attribute("gen_ai.prompt.0.role", "user")
        span.set_attribute("gen_ai.prompt.0.content", "What does the Pro plan cost?")
        span.set_attribute("gen_ai.completion.0.role", "assistant")
        span.set_attribute("gen_ai.completion.0.content", "40 euros a month.")
        span.set_attribute("gen_ai.response.model", "gpt-4o-mini")


def test_spans_sent_by_the_opentelemetry_sdk_arrive_once(endpoint, data_dir):
    url, token = endpoint
    provider = _provider(url, token)
    tracer = provider.get_tracer("helpdesk")
    _genai_conversation(tracer)
    _older_shapes(tracer)
    assert provider.force_flush(10_000)
    provider.shutdown()
    written = sorted(otlp_inbox.folder(Paths(data_dir).inbox_traces).glob("otlp-*.jsonl"))
    assert written and all(source_files.detect(p) == "otel" for p in written)
    spans = sum(len(s.get("spans", [])) for p in written for line in p.read_text().splitlines()
                for rs in json.loads(line)["resourceSpans"] for s in rs["scopeSpans"])
    assert spans == 8  # 2 x (agent, chat, tool) + 2 older-shape chats, in several batches of up to 4
    report, traces, quarantine = _ingest(data_dir, *written)
    assert quarantine == [] and report.errors == []
    assert report.ingested == 3 and report.quarantined == 0
    assert report.skipped_spans == {"gen_ai.operation.name invoke_agent (not an LLM call)": 2,
                                    "gen_ai.operation.name execute_tool (not an LLM call)": 2}
    by_id = {t["trace_id"]: t for t in traces}
    conv = by_id["conv-42"]
    assert _roles(conv) == [("system", "Be brief."), ("user", "Where is my refund?"),
                            ("assistant", '[tool call lookup_order({"order": "[ORDER]"})]'),
                            ("tool", "refunded on Monday"), ("assistant", "It was refunded on Monday.")]
    assert (conv["customer_id"], conv["cohort"], conv["judge_score"], conv["model_version"]) == (
        "cust-7", "enterprise", 0.35, "gpt-4o-2024-08-06")
    assert json.loads(conv["metadata"])["llm_calls"] == 2
    events, indexed = sorted((t for t in traces if t["trace_id"] != "conv-42"), key=lambda t: t["customer_id"] or "z")
    assert _roles(events) == [("system", "You are a help desk."), ("user", "Cancel my plan"), ("assistant", "Done.")]
    assert events["customer_id"] == "cust-8"
    assert _roles(indexed) == [("user", "What does the Pro plan cost?"), ("assistant", "40 euros a month.")]
    again, _, _ = _ingest(data_dir, *written)
    assert again.ingested == 0 and again.duplicates == 3  # once, however often the files are read


def test_the_endpoint_refuses_what_it_cannot_take(endpoint, data_dir):
    import httpx

    url, token = endpoint
    doc = _otlp_doc("ab" * 16, [_chat_span("cd" * 8, "hello", "hi")])
    good = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    assert httpx.post(f"{url}/v1/traces", json=doc).status_code == 401
    assert httpx.post(f"{url}/v1/traces", json=doc, headers={"Authorization": "Bearer fw_nope"}).status_code == 401
    assert httpx.post(f"{url}/v1/traces", content=b"x", headers={**good, "Content-Type": "text/plain"}).status_code == 415
    assert httpx.post(f"{url}/v1/traces", content=b"{not json", headers=good).status_code == 400
    not_utf8 = httpx.post(f"{url}/v1/traces", content=b"\x00\xff{\x004", headers=good)  # no codec guessed, no byte quoted
    assert not_utf8.status_code == 400 and not_utf8.json()["message"] == "not OTLP trace data: the body is not UTF-8 JSON"
    protobuf = {**good, "Content-Type": "application/x-protobuf"}
    assert httpx.post(f"{url}/v1/traces", content=b"\xff\xff\xff", headers=protobuf).status_code == 400
    huge = json.dumps(_otlp_doc("ab" * 16, [_chat_span("cd" * 8, "x" * 300_000, "y")])).encode()
    assert httpx.post(f"{url}/v1/traces", content=huge, headers=good).status_code == 413
    # Small on the wire, large once inflated: refused too (a gzip bomb must not fill the inbox).
    bomb = gzip.compress(b'{"resourceSpans": [' + b" " * 2_000_000 + b"]}")
    assert httpx.post(f"{url}/v1/traces", content=bomb, headers={**good, "Content-Encoding": "gzip"}).status_code == 413
    deep = b'{"resourceSpans": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert httpx.post(f"{url}/v1/traces", content=deep, headers=good).status_code == 400
    # A container of the wrong kind is a bad request (400, which an exporter logs and does not retry),
    # neither a server error nor an acknowledgement of spans no one could read.
    for odd in ({"resourceSpans": "x"}, {"resourceSpans": [5]}, {"resourceSpans": [{"scopeSpans": 5}]},
                {"resourceSpans": [{"scopeSpans": [{"spans": 7}]}]}):
        refused = httpx.post(f"{url}/v1/traces", json=odd, headers=good)
        assert refused.status_code == 400 and "not OTLP trace data" in refused.text, refused.text
    assert not otlp_inbox.folder(Paths(data_dir).inbox_traces).exists()  # nothing refused was written
    ok = httpx.post(f"{url}/v1/traces", content=gzip.compress(json.dumps(doc).encode()),
                    headers={**good, "Content-Encoding": "gzip"})
    assert ok.status_code == 200 and ok.json() == {} and ok.headers["content-type"].startswith("application/json")
    assert len(list(otlp_inbox.folder(Paths(data_dir).inbox_traces).glob("*.jsonl"))) == 1
    # snake_case keys, as some exporters write them, are kept too (the intake reads them).
    snake = {"resource_spans": [{"scope_spans": [{"spans": doc["resourceSpans"][0]["scopeSpans"][0]["spans"]}]}]}
    assert httpx.post(f"{url}/v1/traces", json=snake, headers=good).status_code == 200
    (hour,) = otlp_inbox.folder(Paths(data_dir).inbox_traces).glob("*.jsonl")
    assert len(hour.read_text().splitlines()) == 2


def test_an_open_hour_of_the_endpoint_waits_for_the_next_run(tmp_path):
    inbox = tmp_path / "inbox" / "traces"
    moment = dt.datetime(2026, 3, 2, 10, 30)
    path = otlp_inbox.append(inbox, {"resourceSpans": []}, moment)
    assert path.name == "otlp-20260302T10.jsonl"
    assert otlp_inbox.is_open(path, moment)
    assert otlp_inbox.is_open(path, dt.datetime(2026, 3, 2, 11, 3))  # the grace period
    assert not otlp_inbox.is_open(path, dt.datetime(2026, 3, 2, 11, 6))
    assert not otlp_inbox.is_open(tmp_path / "otlp-20260302T10.jsonl", moment)  # a user's own file


# ---------------------------------------------------------------------------------------------
# OTLP JSON files, as the Collector's file exporter writes them
# ---------------------------------------------------------------------------------------------

def _chat_span(span_id: str, user: str, reply: str, **attrs) -> dict:
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.input.messages": json.dumps(
        [{"role": "user", "parts": [{"type": "text", "content": user}]}]),
        "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": reply}]}]),
        **attrs}
    return {"spanId": span_id, "name": "chat", "kind": 3, "startTimeUnixNano": str(T0), "endTimeUnixNano": str(T0 + 10**9),
            "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in attributes.items()]}


def _otlp_doc(trace_id: str, spans: list[dict]) -> dict:
    return {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [
        {"scope": {"name": "t"}, "spans": [{**s, "traceId": trace_id} for s in spans]}]}]}


def test_collector_files_with_bad_lines_and_bad_spans_quarantine_by_line(data_dir, tmp_path):
    path = tmp_path / "traces.json"
    lines = [
        json.dumps(_otlp_doc("0a" * 16, [_chat_span("01" * 8, "hello", "hi", **{"app.intent": "greeting"})])),
        '{"resourceSpans": [',  # cut short
        json.dumps(_otlp_doc("0b" * 16, [_chat_span("02" * 8, "a", "b"), {"spanId": "not an id", "name": "x"}])),
        json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "0c" * 16, "spanId": "03" * 8,
                                                                  "name": "db.query", "kind": 3}]}]}]}),
    ]
    path.write_text("\n".join(lines) + "\n")
    report, traces, quarantine = _ingest(data_dir, path)
    assert [t["trace_id"] for t in traces] == ["0a" * 16, "0b" * 16]
    assert traces[0]["intent"] == "greeting"
    reasons = [r for _, r in quarantine]
    assert reasons[0].startswith("line 2:") and "JSON" in reasons[0]
    assert "column 20" in reasons[0]  # just after where the line ends, not column 1 of the line after it
    assert reasons[1].startswith("line 3:") and "spanId" in reasons[1] and "not an id" not in reasons[1]
    assert report.skipped_spans == {"no GenAI or OpenInference attributes (not an LLM call)": 1}


def test_reading_other_sources_reports_progress_record_by_record(data_dir, tmp_path):
    """`flywheel ingest` shows a bar while other sources are read and mapped (seconds on a large OTLP
    export), before the one of the load: every line read is heard of once, a bad one too."""
    path = tmp_path / "traces.json"
    lines = [json.dumps(_otlp_doc(f"{i:032x}", [_chat_span(f"{i:016x}", "hello", "hi")])) for i in range(1, 600)]
    path.write_text("\n".join([*lines, "{cut short"]) + "\n")
    (tmp_path / "contract.jsonl").write_text(json.dumps({"trace_id": "c1", "timestamp": "2026-03-02T10:00:00Z",
                                                         "messages": [{"role": "user", "content": "hi"}]}) + "\n")
    read, loaded = [], []
    with connect(data_dir / "flywheel.duckdb") as conn:
        report = ingest_paths(conn, [tmp_path], source_format="auto", mapping=MAPPING, on_read=read.append,
                              on_progress=loaded.append)
    assert sum(read) == 600 and len(read) >= 3  # in steps, the contract's own file not among them
    assert report.ingested == 600 and sum(loaded) == 601  # 599 conversations, the bad line, the contract's


def test_openinference_spans_with_the_conventions_own_names(data_dir, tmp_path):
    from google.protobuf.json_format import MessageToJson
    from openinference.semconv.trace import MessageAttributes, OpenInferenceSpanKindValues, SpanAttributes
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("phoenix-app")
    inp, out = SpanAttributes.LLM_INPUT_MESSAGES, SpanAttributes.LLM_OUTPUT_MESSAGES
    with tracer.start_as_current_span("agent") as chain:
        chain.set_attribute(SpanAttributes.OPENINFERENCE_SPAN_KIND, OpenInferenceSpanKindValues.CHAIN.value)
        with tracer.start_as_current_span("ChatOpenAI") as llm:
            llm.set_attribute(SpanAttributes.OPENINFERENCE_SPAN_KIND, OpenInferenceSpanKindValues.LLM.value)
            llm.set_attribute(SpanAttributes.SESSION_ID, "session-9")
            llm.set_attribute(SpanAttributes.USER_ID, "cust-3")
            llm.set_attribute(SpanAttributes.METADATA, json.dumps({"cohort": "smb", "intent": "billing"}))
            llm.set_attribute(SpanAttributes.TAG_TAGS, ["guardrail_tripped", "beta"])
            llm.set_attribute(SpanAttributes.LLM_MODEL_NAME, "gpt-4o-mini")
            llm.set_attribute(f"{inp}.0.{MessageAttributes.MESSAGE_ROLE}", "system")
            llm.set_attribute(f"{inp}.0.{MessageAttributes.MESSAGE_CONTENT}", "Answer billing questions.")
            llm.set_attribute(f"{inp}.1.{MessageAttributes.MESSAGE_ROLE}", "user")
            llm.set_attribute(f"{inp}.1.{MessageAttributes.MESSAGE_CONTENT}", "Why was I charged twice?")
            llm.set_attribute(f"{out}.0.{MessageAttributes.MESSAGE_ROLE}", "assistant")
            llm.set_attribute(f"{out}.0.{MessageAttributes.MESSAGE_CONTENT}", "One charge is a pending hold.")
    path = tmp_path / "phoenix-export.jsonl"
    # The SDK's own OTLP encoding, as proto3 JSON on one line (ids in base64, as such exporters write them).
    path.write_text(MessageToJson(encode_spans(memory.get_finished_spans()), indent=None) + "\n")
    assert source_files.detect(path) == "openinference"
    report, traces, _ = _ingest(data_dir, path)
    assert report.ingested == 1
    assert report.skipped_spans == {"openinference.span.kind CHAIN (not an LLM call)": 1}
    (trace,) = traces
    assert trace["trace_id"] == "session-9" and trace["customer_id"] == "cust-3"
    assert (trace["cohort"], trace["intent"], trace["guardrail_tripped"], trace["model_version"]) == (
        "smb", "billing", True, "gpt-4o-mini")
    assert _roles(trace) == [("system", "Answer billing questions."), ("user", "Why was I charged twice?"),
                             ("assistant", "One charge is a pending hold.")]


# ---------------------------------------------------------------------------------------------
# LangSmith runs
# ---------------------------------------------------------------------------------------------

def _lc(kind: str, content: str, **kwargs) -> dict:
    return {"lc": 1, "type": "constructor", "id": ["langchain", "schema", "messages", kind],
            "kwargs": {"content": content, **kwargs}}


def _langsmith_runs() -> list:
    from langsmith import schemas

    start = dt.datetime(2026, 3, 3, 9, 0, tzinfo=dt.timezone.utc)
    runs = []
    history: list[dict] = [_lc("SystemMessage", "You are the help desk.")]
    for turn, (question, answer) in enumerate([("Can I add a seat?", "Yes, under Billing."),
                                                ("How much?", "12 euros a month.")]):
        trace_id, at = uuid.uuid4(), start + dt.timedelta(minutes=turn)
        history = history + [_lc("HumanMessage", question)]
        meta = {"thread_id": "thread-5", "user_id": "cust-11", "cohort": "smb"}
        runs.append(schemas.Run(id=trace_id, trace_id=trace_id, name="agent", run_type="chain", start_time=at,
                                inputs={"question": question}, outputs={"output": answer},
                                extra={"metadata": meta}, dotted_order=f"{at:%Y%m%dT%H%M%S%fZ}{trace_id}"))
        llm = uuid.uuid4()
        runs.append(schemas.Run(
            id=llm, trace_id=trace_id, parent_run_id=trace_id, name="ChatOpenAI", run_type="llm",
            start_time=at + dt.timedelta(seconds=1), inputs={"messages": [history]},
            outputs={"generations": [[{"text": answer, "type": "ChatGeneration", "message": _lc("AIMessage", answer)}]],
                     "llm_output": {"model_name": "gpt-4o-mini"}},
            extra={"metadata": {**meta, "ls_model_name": "gpt-4o-mini"}}, tags=["intent:seats"],
            feedback_stats={"judge_score": {"n": 1, "avg": 0.8}},
            dotted_order=f"{at:%Y%m%dT%H%M%S%fZ}{trace_id}.{at:%Y%m%dT%H%M%S%fZ}{llm}"))
        history = history + [_lc("AIMessage", answer)]
        runs.append(schemas.Run(id=uuid.uuid4(), trace_id=trace_id, parent_run_id=trace_id, name="retriever",
                                run_type="retriever", start_time=at, inputs={"query": question},
                                dotted_order="x"))
    return runs


def test_langsmith_runs_from_the_api_and_the_bulk_export(data_dir, tmp_path):
    runs = _langsmith_runs()
    jsonl = tmp_path / "runs.jsonl"
    jsonl.write_text("".join(r.model_dump_json() + "\n" for r in runs) + '{"run_type": "llm", "inputs": {}}\n')
    report, traces, quarantine = _ingest(data_dir, jsonl)
    assert report.formats == {str(jsonl): "langsmith"}
    (trace,) = traces  # one thread, two turns
    assert trace["trace_id"] == "thread-5"
    assert _roles(trace) == [("system", "You are the help desk."), ("user", "Can I add a seat?"),
                             ("assistant", "Yes, under Billing."), ("user", "How much?"), ("assistant", "12 euros a month.")]
    assert (trace["customer_id"], trace["cohort"], trace["intent"], trace["judge_score"], trace["model_version"]) == (
        "cust-11", "smb", "seats", 0.8, "gpt-4o-mini")
    assert report.skipped_spans == {"LangSmith run_type retriever (not an LLM call)": 2,
                                    "LangSmith root run around LLM calls (the calls are read instead)": 2}
    assert [(line, reason) for line, reason in quarantine] == [(7, "line 7: a LangSmith run needs an id")]
    # The bulk export: Parquet, JSON columns as strings.
    rows = [{k: (json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in r.model_dump(mode="json").items()
             if k in ("id", "trace_id", "parent_run_id", "name", "run_type", "start_time", "inputs", "outputs",
                      "extra", "tags", "feedback_stats", "dotted_order")} for r in runs]
    parquet = tmp_path / "export" / "runs.parquet"
    parquet.parent.mkdir()
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    other = tmp_path / "other-data"
    other.mkdir()
    report, traces, _ = _ingest(other, parquet)
    assert report.formats == {str(parquet): "langsmith"} and len(traces) == 1
    assert len(traces[0]["messages"]) == 5


# ---------------------------------------------------------------------------------------------
# Langfuse exports
# ---------------------------------------------------------------------------------------------

def test_langfuse_api_traces_and_blob_export_rows(data_dir, tmp_path):
    api = [  # GET /api/public/traces/{id}: TraceWithFullDetails, camelCase
        {"id": "tr-1", "timestamp": "2026-03-04T08:00:00Z", "name": "chat-turn", "sessionId": "sess-1", "userId": "cust-20",
         "input": {"messages": [{"role": "user", "content": "Reset my password"}]}, "output": "Check your email.",
         "metadata": {"cohort": "enterprise"}, "tags": ["intent:account"],
         "observations": [
             {"id": "o1", "traceId": "tr-1", "type": "SPAN", "name": "router", "startTime": "2026-03-04T08:00:00Z"},
             {"id": "o2", "traceId": "tr-1", "type": "GENERATION", "name": "chat", "startTime": "2026-03-04T08:00:01Z",
              "model": "claude-3-5", "input": [{"role": "system", "content": "Be safe."},
                                              {"role": "user", "content": "Reset my password"}],
              "output": {"role": "assistant", "content": "Check your email."}}],
         "scores": [{"name": "csat", "value": 4, "dataType": "NUMERIC"}, {"name": "judge", "value": 0.9}]},
        {"id": "tr-2", "timestamp": "2026-03-04T08:05:00Z", "sessionId": "sess-1", "userId": "cust-20",
         "input": "And my username?", "output": {"role": "assistant", "content": "It is your email address."}},
        {"id": "tr-3", "timestamp": "2026-03-04T09:00:00Z", "userId": "cust-21", "input": None, "output": None},
    ]
    path = tmp_path / "langfuse-traces.json"
    path.write_text(json.dumps(api, indent=2))
    report, traces, quarantine = _ingest(data_dir, path)
    assert report.formats == {str(path): "langfuse"}
    (trace,) = traces
    assert trace["trace_id"] == "sess-1" and trace["customer_id"] == "cust-20"
    assert _roles(trace) == [("system", "Be safe."), ("user", "Reset my password"), ("assistant", "Check your email."),
                             ("user", "And my username?"), ("assistant", "It is your email address.")]
    assert (trace["cohort"], trace["intent"], trace["judge_score"], trace["model_version"]) == (
        "enterprise", "account", 0.9, "claude-3-5")
    assert json.loads(trace["metadata"])["scores"] == {"csat": 4.0, "judge": 0.9}
    assert quarantine == [(3, "line 3: a Langfuse trace without input, output or GENERATION observations")]
    # The blob storage export: snake_case, input and output as JSON strings, one trace per line.
    blob = tmp_path / "blob" / "traces.jsonl"
    blob.parent.mkdir()
    blob.write_text(json.dumps({"id": "tr-9", "timestamp": "2026-03-05 10:00:00", "user_id": "cust-30",
                                "session_id": None, "metadata": json.dumps({"intent": "billing"}),
                                "input": json.dumps([{"role": "user", "content": "Invoice please"}]),
                                "output": json.dumps({"role": "assistant", "content": "Sent."})}) + "\n")
    csv_path = tmp_path / "blob" / "traces.csv"
    csv_path.write_text('id,timestamp,user_id,input,output\ntr-10,2026-03-05T11:00:00Z,cust-31,"""Hi""","""Hello"""\n')
    other = tmp_path / "other"
    other.mkdir()
    report, traces, _ = _ingest(other, blob, csv_path)
    assert set(report.formats.values()) == {"langfuse"}
    assert [(t["trace_id"], t["customer_id"], _roles(t)) for t in traces] == [
        ("tr-9", "cust-30", [("user", "Invoice please"), ("assistant", "Sent.")]),
        ("tr-10", "cust-31", [("user", "Hi"), ("assistant", "Hello")])]
    assert traces[0]["intent"] == "billing"


@pytest.mark.parametrize("suffix", ["jsonl", "csv"])
def test_the_legacy_blob_export_joins_observations_to_their_traces_session(data_dir, tmp_path, suffix):
    """Langfuse's blob storage export, legacy layout (docs "Blob Storage Export Field Reference"):
    traces/, observations/ and scores/ apart, snake_case, observation rows without the session or user
    of their trace; a manifests/ folder beside them. One session of two traces is one conversation."""
    rows = {
        "traces": [
            {"id": "bt-1", "timestamp": "2026-05-13 10:00:00.000000", "name": "turn", "session_id": "bs-1",
             "user_id": "cust-10", "input": "My card is blocked", "output": "I can unblock it.",
             "metadata": json.dumps({"intent": "card_block"})},
            {"id": "bt-2", "timestamp": "2026-05-13 10:02:00.000000", "name": "turn", "session_id": "bs-1",
             "user_id": "cust-10", "input": "Please do", "output": "Done."}],
        "observations": [
            {"id": "ob-1", "trace_id": "bt-1", "type": "GENERATION", "start_time": "2026-05-13 10:00:00.300000",
             "model": "gpt-4.1", "input": json.dumps([{"role": "system", "content": "Be brief."},
                                                      {"role": "user", "content": "My card is blocked"}]),
             "output": json.dumps({"role": "assistant", "content": "I can unblock it."})},
            {"id": "ob-2", "trace_id": "bt-1", "type": "SPAN", "start_time": "2026-05-13 10:00:00.100000"},
            {"id": "ob-3", "trace_id": "bt-2", "type": "GENERATION", "start_time": "2026-05-13 10:02:00.300000",
             "model": "gpt-4.1", "input": json.dumps([{"role": "system", "content": "Be brief."},
                                                      {"role": "user", "content": "My card is blocked"},
                                                      {"role": "assistant", "content": "I can unblock it."},
                                                      {"role": "user", "content": "Please do"}]),
             "output": json.dumps({"role": "assistant", "content": "Done."})}],
        "scores": [{"id": "sc-1", "timestamp": "2026-05-13 10:10:00.000000", "trace_id": "bt-1", "name": "judge_score",
                    "value": 0.8, "source": "EVAL", "data_type": "NUMERIC"}],
    }
    export = tmp_path / "export"
    for folder, records in rows.items():
        (export / folder).mkdir(parents=True)
        path = export / folder / f"2026-05-13.{suffix}"
        if suffix == "jsonl":
            path.write_text("".join(json.dumps(r) + "\n" for r in records))
        else:  # every cell text, as a CSV export has it (the score's value too)
            columns = sorted({k for r in records for k in r})
            with open(path, "w", newline="") as fh:
                writer = csv.DictWriter(fh, columns)
                writer.writeheader()
                writer.writerows(records)
    (export / "manifests").mkdir()
    (export / "manifests" / "2026-05-13.json").write_text(json.dumps({"files": ["traces/2026-05-13"], "at": 1}))
    report, traces, quarantine = _ingest(data_dir, export)
    assert not report.errors and quarantine == []
    (trace,) = traces
    assert (trace["trace_id"], trace["customer_id"], trace["model_version"], trace["judge_score"], trace["intent"]) == (
        "bs-1", "cust-10", "gpt-4.1", 0.8, "card_block")
    assert _roles(trace) == [("system", "Be brief."), ("user", "My card is blocked"),
                             ("assistant", "I can unblock it."), ("user", "Please do"), ("assistant", "Done.")]
    assert json.loads(trace["metadata"])["llm_calls"] == 2
    assert report.skipped_spans["Langfuse export manifest (lists files, holds no trace)"] == 1


# ---------------------------------------------------------------------------------------------
# Chat logs, auto detection, the mapping file, the dry run
# ---------------------------------------------------------------------------------------------

def test_openai_chat_logs_take_the_given_time_and_a_content_id(data_dir, tmp_path):
    path = tmp_path / "chats.jsonl"
    chat = {"messages": [{"role": "system", "content": "Help."}, {"role": "user", "content": "Hi"},
                         {"role": "assistant", "content": "Hello!"}]}
    path.write_text(json.dumps(chat) + "\n" + json.dumps(chat) + "\n" + '{"messages": []}\n')
    report, traces, quarantine = _ingest(data_dir, path, timestamp="2026-03-06T12:00:00Z")
    assert report.formats == {str(path): "openai-chat"}
    assert report.ingested == 1 and report.duplicates == 1  # the same conversation twice is one trace
    assert traces[0]["trace_id"].startswith("chat_") and traces[0]["timestamp"] == dt.datetime(2026, 3, 6, 12)
    assert quarantine == [(3, 'line 3: "messages" holds no message')]


def test_auto_detection_leaves_flywheel_files_to_the_contract_and_names_unknown_ones(data_dir, tmp_path):
    ours = tmp_path / "ours.jsonl"
    ours.write_text(json.dumps({"trace_id": "t1", "timestamp": "2026-03-02T10:00:00Z",
                                "messages": [{"role": "user", "content": "hi"}]}) + "\n")
    unknown = tmp_path / "mystery.jsonl"
    unknown.write_text('{"foo": 1}\n')
    report, traces, _ = _ingest(data_dir, ours, unknown)
    assert report.formats == {str(ours): "flywheel"} and [t["trace_id"] for t in traces] == ["t1"]
    assert len(report.errors) == 1 and "give --format" in report.errors[0]["error"]
    # A CSV of the contract split by semicolons (a spreadsheet in a comma-decimal locale) is the contract too.
    semicolons = tmp_path / "ours.csv"
    semicolons.write_text('trace_id;timestamp;messages\n'
                          't2;2026-03-02T11:00:00Z;"[{""role"":""user"",""content"":""hi""}]"\n')
    report, traces, _ = _ingest(data_dir, semicolons)
    assert report.formats == {str(semicolons): "flywheel"} and [t["trace_id"] for t in traces] == ["t1", "t2"]


def test_the_mapping_file_is_checked_and_names_its_line(tmp_path):
    bad = tmp_path / "trace_mapping.yaml"
    bad.write_text("cohort: [metadata:cohort]\nmood: [tag:mood]\n")
    with pytest.raises(MappingError, match="'mood' is not a mapped field"):
        Mapping.load(bad)
    bad.write_text("cohort: [colour:blue]\n")
    with pytest.raises(MappingError, match="is not attribute:NAME"):
        Mapping.load(bad)
    bad.write_text("cohort: [metadata:cohort\n")
    with pytest.raises(MappingError, match=r"trace_mapping.yaml:\d+: not valid YAML"):
        Mapping.load(bad)


def test_dry_run_shows_the_mapping_without_customer_text_and_loads_nothing(data_dir, tmp_path):
    from flywheel.cli import main

    path = tmp_path / "traces.json"
    path.write_text(json.dumps(_otlp_doc("0a" * 16, [_chat_span("01" * 8, "my secret question", "a secret answer",
                                                                  **{"app.cohort": "smb", "enduser.id": "cust-1",
                                                                     "deployment": "eu"})])) + "\n"
                    + '{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "secret-id", "spanId": "01"}]}]}]}\n')
    result = CliRunner().invoke(main, ["ingest", "--dry-run", str(path)])
    assert result.exit_code == 0, result.output
    assert f"Would be quarantined: 1\n  {path}:2: a span: traceId is neither hex nor base64" in result.output
    assert "Dry run: 1 trace(s) and 1 bad record(s) from 1 file(s)" in result.output
    assert f"{path}: otel" in result.output and "cohort         smb  <- attribute:app.cohort" in result.output
    assert "user (18 chars), assistant (15 chars)" in result.output and "attribute:deployment" in result.output
    assert "secret" not in result.output and "cust-1" not in result.output
    assert not (data_dir / "flywheel.duckdb").exists()


def test_dry_run_never_calls_what_a_reader_consumes_unmapped(tmp_path):
    from flywheel.core.intake.sources import reader

    path = tmp_path / "runs.jsonl"
    path.write_text("".join(r.model_dump_json() + "\n" for r in _langsmith_runs()))
    read = reader.read([path], "auto", MAPPING, keep_groups=1)
    ((calls, _),) = read.groups
    # thread_id groups the conversation, user_id is the user, ls_model_name the model.
    assert reader.unmapped_keys(calls, MAPPING) == []


def test_phoenix_spans_dataframe_rows(data_dir, tmp_path):
    """Rows as Phoenix's get_spans_dataframe() returns them (arize-phoenix src/phoenix/trace/dsl/query.py):
    context.* columns and attributes.* columns, the message list as dicts keyed "message.role"."""
    from openinference.semconv.trace import SpanAttributes

    rows = [
        {"name": "ChatOpenAI", "span_kind": "LLM", "parent_id": None, "start_time": "2026-03-07T10:00:00+00:00",
         "end_time": "2026-03-07T10:00:01+00:00", "context.trace_id": "5f1a" * 8, "context.span_id": "9b" * 8,
         f"attributes.{SpanAttributes.LLM_INPUT_MESSAGES}": [{"message.role": "user", "message.content": "Is SSO included?"}],
         f"attributes.{SpanAttributes.LLM_OUTPUT_MESSAGES}": [{"message.role": "assistant", "message.content": "On Pro, yes."}],
         f"attributes.{SpanAttributes.USER_ID}": "cust-50", f"attributes.{SpanAttributes.METADATA}": {"cohort": "smb"}},
        {"name": "retrieve", "span_kind": "RETRIEVER", "parent_id": "9b" * 8, "start_time": "2026-03-07T10:00:00+00:00",
         "context.trace_id": "5f1a" * 8, "context.span_id": "9c" * 8},
    ]
    path = tmp_path / "spans.parquet"
    pq.write_table(pa.Table.from_pylist([{k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in r.items()}
                                         for r in rows]), path)
    report, traces, _ = _ingest(data_dir, path)
    assert report.formats == {str(path): "openinference"}
    assert [(t["trace_id"], t["customer_id"], t["cohort"], _roles(t)) for t in traces] == [
        ("5f1a" * 8, "cust-50", "smb", [("user", "Is SSO included?"), ("assistant", "On Pro, yes.")])]
    assert report.skipped_spans == {"openinference.span.kind RETRIEVER (not an LLM call)": 1}
    from flywheel.cli import main

    # A user who knows the tool, not the convention: --format phoenix reads OpenInference.
    result = CliRunner().invoke(main, ["ingest", "--dry-run", "--format", "phoenix", str(path)])
    assert result.exit_code == 0 and "openinference" in result.output and "Is SSO included?" not in result.output


def test_the_weekly_loop_reads_the_endpoints_closed_hours_from_the_inbox(data_dir, monkeypatch):
    import dagster as dg

    from flywheel.defs.intake import raw_traces
    from flywheel_tests.conftest import fake_resources

    paths = Paths(data_dir)
    monkeypatch.setenv("FLYWHEEL_NOW", "2026-03-09T12:30:00Z")
    closed = otlp_inbox.append(paths.inbox_traces, _otlp_doc("0a" * 16, [_chat_span("01" * 8, "hi", "hello")]),
                               dt.datetime(2026, 3, 2, 10, 15))
    still_open = otlp_inbox.append(paths.inbox_traces, _otlp_doc("0b" * 16, [_chat_span("02" * 8, "hey", "yo")]),
                                   dt.datetime(2026, 3, 9, 12, 20))
    result = dg.materialize([raw_traces], resources=fake_resources(paths))
    assert result.success
    with connect(paths.warehouse, read_only=True) as conn:
        assert conn.execute("SELECT trace_id, source_file FROM raw.traces").fetchall() == [("0a" * 16, str(closed))]
    monkeypatch.setenv("FLYWHEEL_NOW", "2026-03-16T00:00:00Z")  # a week later the hour has ended
    assert dg.materialize([raw_traces], resources=fake_resources(paths)).success
    with connect(paths.warehouse, read_only=True) as conn:
        assert sorted(r[0] for r in conn.execute("SELECT trace_id FROM raw.traces").fetchall()) == ["0a" * 16, "0b" * 16]
    assert still_open.exists()



# ---------------------------------------------------------------------------------------------
# What an independent tester found, writing files from the published specifications
# ---------------------------------------------------------------------------------------------

def _otel_attrs(**attrs) -> list[dict]:
    return [{"key": k, "value": {"stringValue": v}} for k, v in attrs.items()]


def test_tool_results_holding_json_are_kept_in_every_shape(data_dir, tmp_path):
    result = json.dumps({"status": "refunded", "on": "Monday"})
    otel_line = _otlp_doc("0d" * 16, [{**_chat_span("04" * 8, "x", "y"), "attributes": _otel_attrs(**{
        "gen_ai.operation.name": "chat",
        "gen_ai.input.messages": json.dumps([
            {"role": "user", "parts": [{"type": "text", "content": "Refund?"}]},
            {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1", "response": {"status": "refunded"}}]}]),
        "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "Done."}]}])})}])
    otel = tmp_path / "otel.jsonl"
    otel.write_text(json.dumps(otel_line) + "\n")
    chat = tmp_path / "chat.jsonl"
    chat.write_text(json.dumps({"messages": [{"role": "user", "content": "Refund?"},
                                             {"role": "tool", "content": result},
                                             {"role": "assistant", "content": "Done."}]}) + "\n")
    report, traces, _ = _ingest(data_dir, otel, chat, timestamp="2026-03-02T10:00:00Z")
    tools = [m["content"] for t in traces for m in t["messages"] if m["role"] == "tool"]
    assert sorted(tools) == sorted(['{"status": "refunded"}', result])


def test_the_oldest_and_the_azure_style_event_shapes(data_dir, tmp_path):
    oldest = {**_chat_span("05" * 8, "x", "y"), "attributes": _otel_attrs(**{"gen_ai.system": "openai"}), "events": [
        {"name": "gen_ai.content.prompt", "timeUnixNano": str(T0),
         "attributes": _otel_attrs(**{"gen_ai.prompt": json.dumps([{"role": "user", "content": "Old question"}])})},
        {"name": "gen_ai.content.completion", "timeUnixNano": str(T0 + 1),
         "attributes": _otel_attrs(**{"gen_ai.completion": json.dumps([{"role": "assistant", "content": "Old answer"}])})}]}
    azure = {**_chat_span("06" * 8, "x", "y"), "attributes": _otel_attrs(**{"gen_ai.operation.name": "chat"}), "events": [
        {"name": "gen_ai.user.message", "timeUnixNano": str(T0),
         "attributes": _otel_attrs(**{"gen_ai.event.content": json.dumps({"role": "user", "content": "Azure question"})})},
        {"name": "gen_ai.choice", "timeUnixNano": str(T0 + 1), "attributes": _otel_attrs(**{
            "gen_ai.event.content": json.dumps({"message": {"content": "Azure answer"}, "index": 0})})}]}
    path = tmp_path / "old.jsonl"
    path.write_text(json.dumps(_otlp_doc("0e" * 16, [oldest])) + "\n" + json.dumps(_otlp_doc("0f" * 16, [azure])) + "\n")
    report, traces, quarantine = _ingest(data_dir, path)
    assert quarantine == [] and [_roles(t) for t in traces] == [
        [("user", "Old question"), ("assistant", "Old answer")], [("user", "Azure question"), ("assistant", "Azure answer")]]


def test_a_langfuse_blob_export_folder_gzipped_with_scores_and_manifests(data_dir, tmp_path):
    root = tmp_path / "proj"
    for folder in ("traces", "scores", "manifests"):
        (root / folder).mkdir(parents=True)
    with gzip.open(root / "traces" / "2026-05-04.jsonl.gz", "wt") as fh:
        fh.write(json.dumps({"id": "bt-1", "timestamp": "2026-05-04 09:00:00", "user_id": "cust-60",
                             "input": json.dumps("Where is my invoice?"), "output": json.dumps("Sent again.")}) + "\n")
    (root / "scores" / "2026-05-04.jsonl").write_text(json.dumps(
        {"id": "sc-1", "trace_id": "bt-1", "name": "judge", "value": 0.45, "data_type": "NUMERIC", "source": "EVAL"}) + "\n")
    (root / "manifests" / "2026-05-04.json").write_text(json.dumps({"files": ["traces/2026-05-04.jsonl.gz"],
                                                                    "status": "completed"}))
    report, traces, _ = _ingest(data_dir, root)
    assert report.errors == [] and len(report.formats) == 3
    assert [(t["trace_id"], t["customer_id"], t["judge_score"], _roles(t)) for t in traces] == [
        ("bt-1", "cust-60", 0.45, [("user", "Where is my invoice?"), ("assistant", "Sent again.")])]


def test_langsmith_feedback_on_the_root_run_and_the_reported_model(data_dir, tmp_path):
    runs = _langsmith_runs()
    for run in runs:
        if run.run_type == "chain":
            run.feedback_stats = {"csat": {"n": 1, "avg": 5.0}}
            run.tags = ["intent:refund_status"]
        if run.run_type == "llm":
            run.feedback_stats = None
            run.tags = None
            run.outputs["llm_output"]["model_name"] = "gpt-4o-mini-2024-07-18"
    path = tmp_path / "runs.jsonl"
    path.write_text("".join(r.model_dump_json() + "\n" for r in runs))
    _, (trace,), _ = _ingest(data_dir, path)
    assert (trace["intent"], trace["model_version"]) == ("refund_status", "gpt-4o-mini-2024-07-18")
    assert json.loads(trace["metadata"])["scores"] == {"csat": 5.0}


def test_batch_api_lines_empty_files_and_a_wrong_format_hint(data_dir, tmp_path):
    from flywheel.cli import main

    batch = tmp_path / "mixed" / "batch.jsonl"
    batch.parent.mkdir()
    batch.write_text(json.dumps({"custom_id": "req-1", "method": "POST", "url": "/v1/chat/completions",
                                 "body": {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}}) + "\n")
    (tmp_path / "mixed" / "empty.jsonl").write_text("")
    report, traces, _ = _ingest(data_dir, batch.parent, timestamp="2026-03-02T10:00:00Z")
    assert report.errors == [] and [(t["model_version"], _roles(t)) for t in traces] == [("gpt-4o", [("user", "Hi")])]
    runs = tmp_path / "runs.jsonl"
    runs.write_text("".join(r.model_dump_json() + "\n" for r in _langsmith_runs()))
    result = CliRunner().invoke(main, ["ingest", "--format", "otel", str(runs)])
    assert result.exit_code == 0 and "looks like langsmith: try --format auto" in result.output
    result = CliRunner().invoke(main, ["ingest", str(runs)])  # read again, rightly: the quarantine is replaced
    with connect(data_dir / "flywheel.duckdb", read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM raw.quarantine WHERE source_file = ?", [str(runs)]).fetchone() == (0,)


def test_a_conversation_read_again_with_later_turns_is_quarantined_whole_not_a_duplicate(data_dir, tmp_path):
    first, later = tmp_path / "hour-10.jsonl", tmp_path / "hour-11.jsonl"
    turn = _chat_span("a1" * 8, "Where is my parcel?", "On its way.", **{"gen_ai.conversation.id": "conv-1"})
    first.write_text(json.dumps(_otlp_doc("ab" * 16, [turn])) + "\n")
    report, traces, _ = _ingest(data_dir, first)
    assert report.ingested == 1
    follow_up = _chat_span("a2" * 8, "Can I change the address?", "Yes.", **{"gen_ai.conversation.id": "conv-1"})
    later.write_text(json.dumps(_otlp_doc("cd" * 16, [follow_up])) + "\n")
    report, traces, quarantine = _ingest(data_dir, later)
    assert (report.ingested, report.duplicates, report.quarantined) == (0, 0, 1)
    assert quarantine == [(1, f"line 1: {ingest_module.CONTINUED}")]
    with connect(data_dir / "flywheel.duckdb") as conn:
        (kept,) = conn.execute("SELECT record FROM raw.quarantine").fetchone()
    assert "Can I change the address?" in kept  # the later turn is kept, whole
    assert _roles(traces[0]) == [("user", "Where is my parcel?"), ("assistant", "On its way.")]  # unchanged
    again = tmp_path / "hour-10-again.jsonl"  # the same conversation, the same messages: a duplicate
    again.write_text(first.read_text() + "\n")
    report, _, _ = _ingest(data_dir, again)
    assert (report.ingested, report.duplicates, report.quarantined) == (0, 1, 0)


def test_openllmetry_association_properties_name_the_customer(data_dir, tmp_path):
    """OpenLLMetry (traceloop-sdk): Traceloop.set_association_properties({"user_id": ...}) sets
    traceloop.association.properties.user_id on the spans; the default mapping reads it."""
    span = {"spanId": "e1" * 8, "name": "openai.chat", "kind": 3, "startTimeUnixNano": str(T0),
            "endTimeUnixNano": str(T0 + 10**9), "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in {
                "llm.request.type": "chat", "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "Hi",
                "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.content": "Hello",
                "traceloop.association.properties.user_id": "cust-77"}.items()]}
    path = tmp_path / "openllmetry.jsonl"
    path.write_text(json.dumps(_otlp_doc("ef" * 16, [span])) + "\n")
    _, traces, _ = _ingest(data_dir, path)
    assert [(t["customer_id"], _roles(t)) for t in traces] == [("cust-77", [("user", "Hi"), ("assistant", "Hello")])]
