"""Hostile and broken records from other sources: every field of a trace may hold anything.

A seeded generator (hypothesis is not installed) takes one record of each source in its richest shape,
puts a value of the wrong kind at random places (a number where a list belongs, an infinite time, an
object for an id, JSON text inside a JSON string ...), or deletes keys, and reads the file. The readers
must never raise: a record they cannot use is quarantined on its line, and no reason, skip count or
report quotes a value (a marker planted in every customer field must not come out). A failure names
its format and seed, to run it again."""

from __future__ import annotations

import copy
import json
import random

import pytest

from flywheel.core.common.db import connect
from flywheel.core.intake.ingest import ingest_paths, record_text
from flywheel.core.intake.sources import reader
from flywheel.core.intake.sources.mapping import Mapping
from flywheel.paths import REPO_REFERENCE

MAPPING = Mapping.load(REPO_REFERENCE / "trace_mapping.yaml")
T0 = 1_772_445_600_000_000_000  # 2026-03-02T10:00:00Z in ns
SECRET = "SECRET-7f3a"  # in every customer value of the seeds
READS = 300  # mutated files per format, read by the readers
INGESTS = 8  # of them also ingested whole, through the contract's checks


def _kv(key, value) -> dict:
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    if isinstance(value, list):
        return {"key": key, "value": {"arrayValue": {"values": [{"stringValue": str(v)} for v in value]}}}
    return {"key": key, "value": {"stringValue": value}}


def _span(span_id: str, attributes: dict, events=(), start: int = T0) -> dict:
    return {"traceId": "0a" * 16, "spanId": span_id, "parentSpanId": "", "name": "s", "kind": 3,
            "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + 10**9),
            "attributes": [_kv(k, v) for k, v in attributes.items()],
            "events": [{"name": name, "timeUnixNano": str(start), "attributes": [_kv(k, v) for k, v in attrs.items()]}
                       for name, attrs in events]}


def _otel() -> list[dict]:
    """Every shape the OpenTelemetry reader knows, in one batch (see genai.py)."""
    said = json.dumps([{"role": "user", "parts": [{"type": "text", "content": f"hi {SECRET}"},
                                                  {"type": "tool_call", "name": "f", "arguments": {"a": SECRET}}]}])
    answered = json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": SECRET}], "finish_reason": "stop"}])
    spans = [
        _span("01" * 8, {"gen_ai.operation.name": "chat", "gen_ai.input.messages": said, "gen_ai.output.messages": answered,
                         "gen_ai.system_instructions": json.dumps([{"type": "text", "content": SECRET}]),
                         "enduser.id": SECRET, "app.cohort": SECRET, "app.csat": 4, "app.guardrail_tripped": True,
                         "gen_ai.conversation.id": SECRET, "gen_ai.response.model": "m",
                         "metadata": json.dumps({"intent": SECRET}), "tag.tags": ["a", f"intent:{SECRET}"]},
              events=[("gen_ai.evaluation.result", {"gen_ai.evaluation.name": "judge",
                                                    "gen_ai.evaluation.score.value": 0.5})]),
        _span("02" * 8, {"gen_ai.operation.name": "chat", "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": SECRET,
                         "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.content": SECRET,
                         "gen_ai.completion.0.tool_calls.0.name": "t",
                         "gen_ai.completion.0.tool_calls.0.arguments": json.dumps({"q": SECRET})}, start=T0 + 5),
        _span("03" * 8, {"gen_ai.system": "openai"}, start=T0 + 9, events=[
            ("gen_ai.user.message", {"content": SECRET}),
            ("gen_ai.choice", {"message": json.dumps({"role": "assistant", "content": SECRET})}),
            ("gen_ai.content.prompt", {"gen_ai.prompt": json.dumps([{"role": "user", "content": SECRET}])})]),
        _span("04" * 8, {"openinference.span.kind": "LLM", "llm.input_messages.0.message.role": "user",
                         "llm.input_messages.0.message.contents.0.message_content.text": SECRET,
                         "llm.output_messages.0.message.role": "assistant",
                         "llm.output_messages.0.message.content": SECRET,
                         "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "f",
                         "session.id": SECRET, "user.id": SECRET}),
        _span("05" * 8, {"gen_ai.operation.name": "execute_tool"}),
    ]
    return [{"resourceSpans": [{"resource": {"attributes": [_kv("service.name", "svc")]},
                                "scopeSpans": [{"scope": {"name": "t"}, "spans": spans}]}]}]


def _phoenix() -> list[dict]:
    return [{"context.span_id": "s1", "context.trace_id": "t1", "name": "llm", "span_kind": "LLM",
             "start_time": "2026-03-02T10:00:00Z",
             "attributes.llm.input_messages": [{"message.role": "user", "message.content": SECRET}],
             "attributes.llm.output_messages": [{"message.role": "assistant", "message.content": SECRET}],
             "attributes.session.id": SECRET, "attributes.user.id": SECRET, "attributes.metadata": {"cohort": SECRET}},
            {"context": {"span_id": "s2", "trace_id": "t2"}, "span_kind": "LLM", "start_time": "2026-03-02T10:00:00Z",
             "attributes": {"llm.input_messages": [{"message.role": "user", "message.content": SECRET}],
                            "openinference.span.kind": "LLM"}}]


def _langsmith() -> list[dict]:
    def lc(kind, content):
        return {"lc": 1, "type": "constructor", "id": ["langchain", "schema", "messages", kind], "kwargs": {"content": content}}

    meta = {"thread_id": SECRET, "user_id": SECRET, "cohort": SECRET}
    return [
        {"id": "r1", "trace_id": "r1", "name": "agent", "run_type": "chain", "start_time": "2026-03-03T09:00:00Z",
         "inputs": {"question": SECRET}, "outputs": {"output": SECRET}, "extra": {"metadata": meta}},
        {"id": "r2", "trace_id": "r1", "parent_run_id": "r1", "name": "ChatOpenAI", "run_type": "llm",
         "start_time": "2026-03-03T09:00:01Z", "inputs": {"messages": [[lc("SystemMessage", SECRET), lc("HumanMessage", SECRET)]]},
         "outputs": {"generations": [[{"text": SECRET, "message": lc("AIMessage", SECRET)}]],
                     "llm_output": {"model_name": "gpt-4o-mini"}},
         "extra": {"metadata": meta, "invocation_params": {"model": "m"}}, "tags": [f"intent:{SECRET}"],
         "feedback_stats": {"judge_score": {"n": 1, "avg": 0.8}}},
        {"id": "r3", "trace_id": "r1", "parent_run_id": "r1", "run_type": "retriever", "inputs": {"query": SECRET}},
    ]


def _langfuse() -> list[dict]:
    return [
        {"id": "tr-1", "timestamp": "2026-03-04T08:00:00Z", "sessionId": SECRET, "userId": SECRET,
         "input": {"messages": [{"role": "user", "content": SECRET}]}, "output": SECRET,
         "metadata": {"cohort": SECRET}, "tags": [f"intent:{SECRET}"],
         "observations": [
             {"id": "o1", "traceId": "tr-1", "type": "SPAN", "name": "router", "startTime": "2026-03-04T08:00:00Z"},
             {"id": "o2", "traceId": "tr-1", "type": "GENERATION", "startTime": "2026-03-04T08:00:01Z", "model": "c",
              "input": [{"role": "system", "content": SECRET}, {"role": "user", "content": SECRET}],
              "output": {"role": "assistant", "content": SECRET}}],
         "scores": [{"name": "csat", "value": 4, "dataType": "NUMERIC"}, {"name": "judge", "value": 0.9}]},
        {"id": "tr-9", "timestamp": "2026-03-05 10:00:00", "user_id": SECRET, "session_id": None,
         "metadata": json.dumps({"intent": SECRET}), "input": json.dumps([{"role": "user", "content": SECRET}]),
         "output": json.dumps({"role": "assistant", "content": SECRET})},
        {"id": "sc-1", "trace_id": "tr-9", "name": "csat", "value": 3, "data_type": "NUMERIC"},
    ]


def _chat() -> list[dict]:
    return [{"messages": [{"role": "system", "content": SECRET}, {"role": "user", "content": SECRET},
                          {"role": "assistant", "content": SECRET,
                           "tool_calls": [{"function": {"name": "f", "arguments": json.dumps({"a": SECRET})}}]}]}]


SEEDS = {"otel": _otel, "openinference": _phoenix, "langsmith": _langsmith, "langfuse": _langfuse, "openai-chat": _chat}

# Values of every JSON kind, and the troublesome ones of each: huge and infinite numbers, JSON text
# inside strings, ids that are objects, lone surrogates, the OTLP AnyValue shapes with the wrong insides.
WRONG = [None, True, False, 0, -1, 7, 10**30, -10**30, 10**400, 1.5, 1e308, -1e308, float("nan"), float("inf"),
         "", "x", "0", "99999999999999999999999", "-5", "[1,2]", '{"a":1}', "[", "{", "null", [], {}, [None], [1, "a"],
         {"role": 5}, {"content": {"x": []}}, [[[]]], {"type": "text"}, {"type": "tool_call"}, {"parts": 3},
         "2026-13-45T99:99:99Z", "\x00", "\ud800x", [{"role": None, "content": None}], {"stringValue": 5},
         {"intValue": "abc"}, {"arrayValue": 5}, {"kvlistValue": {"values": 3}}, {"bytesValue": "!!"},
         {"doubleValue": "x"}, {"id": ["a", 5]}, {"lc": 1, "kwargs": {"content": 3}, "id": 5},
         f"{SECRET} jo@example.com", {"stringValue": SECRET}]  # customer text where a kind or type belongs


def _places(obj, path=()):
    yield path
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from _places(value, path + (key,))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from _places(value, path + (i,))


def _mutated(record, rng: random.Random):
    record = copy.deepcopy(record)
    for _ in range(rng.randint(1, 4)):
        path = rng.choice(list(_places(record)))
        if not path:
            continue
        parent = record
        for step in path[:-1]:
            parent = parent[step]
        key, roll = path[-1], rng.random()
        if roll < 0.15 and isinstance(parent, dict):
            del parent[key]
        elif roll < 0.3 and isinstance(parent[key], str) and parent[key][:1] in "[{":
            try:  # a wrong value inside JSON held as a string (messages, metadata)
                inner = json.loads(parent[key])
            except ValueError:
                continue
            if isinstance(inner, (dict, list)):
                parent[key] = json.dumps(_mutated(inner, rng))
        else:
            parent[key] = copy.deepcopy(rng.choice(WRONG))
    return record


def _write(path, records) -> None:
    path.write_text("".join(json.dumps(r, allow_nan=True) + "\n" for r in records))


def _quoted_secret(texts) -> list[str]:
    return [t for t in texts if SECRET.lower() in t.lower()]  # a kind is lower-cased on its way


@pytest.mark.parametrize("source", list(SEEDS))
def test_no_wrong_value_anywhere_fails_a_read_or_is_quoted(tmp_path, source):
    seeds = SEEDS[source]()
    for n in range(READS):
        rng = random.Random(f"{source}-{n}")
        path = tmp_path / f"{n}.jsonl"
        _write(path, [_mutated(rng.choice(seeds), rng) for _ in range(rng.randint(1, 4))])
        for fmt in (source, "auto"):
            try:
                read = reader.read([path], fmt, MAPPING, timestamp="2026-03-02T10:00:00Z")
                texts = [record_text(r) for items in read.prepared.values() for _, r in items if isinstance(r, dict)]
            except Exception as exc:  # noqa: BLE001 - the point: nothing may escape
                pytest.fail(f"{source} seed {n} --format {fmt}: {type(exc).__name__} escaped the reader")
            reasons = [r.reason for items in read.prepared.values() for _, r in items if not isinstance(r, dict)]
            said = reasons + list(read.skipped) + list(read.mapped) + list(read.unreadable.values())
            assert not _quoted_secret(said), f"{source} seed {n}: a value in {_quoted_secret(said)}"
            assert len(texts) + len(reasons) <= 4 * 5 + 4  # records and problems, no more than the spans read


@pytest.mark.parametrize("source", list(SEEDS))
def test_wrong_values_are_quarantined_by_line_and_the_rest_loads(tmp_path, source):
    seeds = SEEDS[source]()
    for n in range(INGESTS):
        rng = random.Random(f"ingest-{source}-{n}")
        good = seeds if source != "langfuse" else seeds[:2]
        records = [_mutated(rng.choice(seeds), rng) for _ in range(3)] + copy.deepcopy(good)
        path = tmp_path / f"{n}.jsonl"
        _write(path, records)
        with connect(tmp_path / f"{n}.duckdb") as conn:
            report = ingest_paths(conn, [path], source_format=source, mapping=MAPPING, timestamp="2026-03-02T10:00:00Z")
            quarantined = conn.execute("SELECT line, reason FROM raw.quarantine").fetchall()
        assert not report.errors, f"{source} seed {n}: {report.errors}"
        assert report.ingested >= 1, f"{source} seed {n}: the untouched records did not load"
        assert all(line >= 1 and reason for line, reason in quarantined)  # the reader's reasons or the contract's
        assert not _quoted_secret(reason for _, reason in quarantined)


def test_an_otlp_time_past_the_year_9999_is_quarantined_not_a_crash(tmp_path):
    (doc,) = _otel()
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"] = [doc["resourceSpans"][0]["scopeSpans"][0]["spans"][1]]
    doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["startTimeUnixNano"] = "99999999999999999999999"
    path = tmp_path / "otel.jsonl"
    _write(path, [doc])
    read = reader.read([path], "auto", MAPPING)
    ((line, problem),) = read.prepared[str(path)]
    assert line == 1 and "no timestamp" in problem.reason


def test_a_record_no_reader_foresaw_is_quarantined_naming_the_step_not_the_value(tmp_path, monkeypatch):
    from flywheel.core.intake.sources import langfuse

    def broken(record, *args):
        raise TypeError(f"cannot use {record['userId']}")  # an exception message quoting a customer value

    monkeypatch.setattr(langfuse, "calls", broken)
    path = tmp_path / "langfuse.jsonl"
    _write(path, _langfuse()[:1])
    read = reader.read([path], "langfuse", MAPPING)
    ((line, problem),) = read.prepared[str(path)]
    assert line == 1
    assert problem.reason == ("line 1: a field of this Langfuse record has a type or value the reader cannot use "
                              "(reader._calls_of: TypeError)")
    assert SECRET not in problem.reason


# Cases a blind tester found that the fuzz cannot judge (they loaded, with the wrong values): each
# is quarantined with the field and the kind named, and the record beside it loads.

def _chat_at(span_id: str, **extra) -> dict:
    said = json.dumps([{"role": "user", "parts": [{"type": "text", "content": f"hi {SECRET}"}]}])
    answered = json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": "hello"}]}])
    return _span(span_id, {"gen_ai.operation.name": "chat", "gen_ai.input.messages": said,
                           "gen_ai.output.messages": answered, **extra})


def _reasons(read, path) -> list[tuple[int, str]]:
    return [(line, r.reason) for line, r in read.prepared[str(path)] if not isinstance(r, dict)]


def _loaded(read, path) -> list[dict]:
    return [r for _, r in read.prepared[str(path)] if isinstance(r, dict)]


@pytest.mark.parametrize("attribute,value,named", [
    ("gen_ai.conversation.id", [SECRET], "the conversation id is a JSON list"),
    ("gen_ai.conversation.id", True, "the conversation id is JSON true"),  # every such span one conversation
    ("gen_ai.response.model", [SECRET], "the model name is a JSON list"),
    ("enduser.id", 1.5, "the user id is a JSON number that is not an integer"),
])
def test_an_id_of_the_wrong_kind_quarantines_its_span_not_its_repr(tmp_path, attribute, value, named):
    bad = _chat_at("0b" * 8, **{attribute: value})
    good = _chat_at("0c" * 8, **{"gen_ai.conversation.id": 42})  # an integer id is an id
    good["traceId"] = "0d" * 16
    path = tmp_path / "otel.jsonl"
    _write(path, [{"resourceSpans": [{"scopeSpans": [{"spans": [bad, good]}]}]}])
    read = reader.read([path], "auto", MAPPING)
    assert _reasons(read, path) == [(1, f"line 1: span {'0b' * 8}: {named}, not a string or an integer")]
    assert [r["trace_id"] for r in _loaded(read, path)] == ["42"]


def test_otlp_containers_of_the_wrong_kind_are_quarantined_not_lost_uncounted(tmp_path):
    path = tmp_path / "otel.jsonl"
    _write(path, [{"resourceSpans": SECRET}, {"resourceSpans": [{"scopeSpans": SECRET}]},
                  {"resourceSpans": [{"scopeSpans": [{"spans": {"a": SECRET}}]}]},
                  {"resourceSpans": [{"scopeSpans": [5]}]}, {"resourceSpans": []}])  # an empty batch holds nothing to lose
    with connect(tmp_path / "w.duckdb") as conn:
        report = ingest_paths(conn, [path], source_format="otel", mapping=MAPPING)
        stored = conn.execute("SELECT line, reason FROM raw.quarantine ORDER BY line").fetchall()
    assert report.quarantined == 4 and report.ingested == 0
    assert [line for line, _ in stored] == [1, 2, 3, 4]
    expected = ['"resourceSpans" is not a list', '"scopeSpans" is not a list', '"spans" is not a list',
                "a scopeSpans entry is not an object"]
    assert all(words in reason for words, (_, reason) in zip(expected, stored, strict=True))


def test_a_role_no_convention_names_quarantines_a_missing_one_takes_its_place(tmp_path):
    path = tmp_path / "chat.jsonl"
    _write(path, [{"messages": [{"role": "user", "content": "a"}, {"role": f"wizard {SECRET}", "content": "b"}]},
                  {"messages": [{"role": 5, "content": "a"}]},
                  {"messages": [{"content": "where is my order"}, {"role": "assistant", "content": "here"}]},
                  {"messages": [{"role": "Human", "content": "hi"}, {"role": "developer", "content": "be brief"}]}])
    read = reader.read([path], "openai-chat", MAPPING, timestamp="2026-03-02T10:00:00Z")
    assert [line for line, _ in _reasons(read, path)] == [1, 2]
    assert all("a message has a role outside the conventions" in reason and SECRET not in reason
               for _, reason in _reasons(read, path))
    assert [[m["role"] for m in r["messages"]] for r in _loaded(read, path)] == [
        ["user", "assistant"], ["user", "system"]]
    (doc,) = _otel()  # the same in OpenTelemetry's message attributes, span by span
    spans = doc["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans[0]["attributes"] = [a if a["key"] != "gen_ai.output.messages" else _kv(a["key"], json.dumps(
        [{"role": "narrator", "parts": [{"type": "text", "content": SECRET}]}])) for a in spans[0]["attributes"]]
    path = tmp_path / "otel.jsonl"
    _write(path, [doc])
    read = reader.read([path], "otel", MAPPING)
    assert [reason for _, reason in _reasons(read, path)] == [
        f"line 1: span {'01' * 8}: a message has a role outside the conventions (user, assistant, system, tool and "
        "their other names: human, ai, developer, function ...)"]
    assert _loaded(read, path), "the batch's other spans still load"


def test_numbers_since_the_epoch_are_read_in_their_unit_and_1970_is_no_time(tmp_path):
    rows = [{"context.span_id": f"s{i}", "context.trace_id": f"t{i}", "span_kind": "LLM", "start_time": start,
             "attributes.llm.input_messages": [{"message.role": "user", "message.content": "hi"}]}
            for i, start in enumerate([1_778_234_401_000, 1_778_234_401_000_000, 1_778_234_401_000_000_000,
                                       1_778_234_401, 12345])]  # pandas' to_json milliseconds, then µs, ns, s; a count
    path = tmp_path / "phoenix.jsonl"
    _write(path, rows)
    read = reader.read([path], "openinference", MAPPING)
    assert [r["timestamp"][:19] for r in _loaded(read, path)] == ["2026-05-08T10:00:01"] * 4
    ((line, reason),) = _reasons(read, path)
    assert line == 5 and "has no timestamp (none given, or none that reads as a time after 2000)" in reason
    (kept,) = [r.excerpt for _, r in read.prepared[str(path)] if not isinstance(r, dict)]
    assert json.loads(kept)["messages"] == [{"role": "user", "content": "hi"}]  # the conversation, kept
    path = tmp_path / "langfuse.jsonl"
    _write(path, [{"id": "a", "timestamp": 12345, "input": "hi", "output": "hello"},
                  {"id": "b", "timestamp": 1_778_234_401_000, "input": "hi", "output": "hello"}])
    read = reader.read([path], "langfuse", MAPPING)
    assert [line for line, _ in _reasons(read, path)] == [1]
    assert [r["timestamp"][:19] for r in _loaded(read, path)] == ["2026-05-08T10:00:01"]


def test_a_message_list_that_cannot_be_read_quarantines_instead_of_loading_the_reply_alone(tmp_path):
    cut = '[{"role":"user","parts":[{"type":"text","content":"' + SECRET  # JSON cut short
    spans = [_chat_at("1a" * 8, **{"gen_ai.input.messages": 5}), _chat_at("1b" * 8, **{"gen_ai.input.messages": cut}),
             _chat_at("1c" * 8, **{"gen_ai.input.messages": "where is my parcel"})]  # plain text: one message
    for i, span in enumerate(spans):
        span["traceId"] = f"{i + 1:032x}"
    path = tmp_path / "otel.jsonl"
    _write(path, [{"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]} for span in spans])
    read = reader.read([path], "otel", MAPPING)
    assert _reasons(read, path) == [
        (1, f'line 1: span {"1a" * 8}: "gen_ai.input.messages" holds a JSON number, not a list of messages'),
        (2, f'line 2: span {"1b" * 8}: "gen_ai.input.messages" holds JSON that does not parse, not a list of messages')]
    assert [[(m["role"], m["content"]) for m in r["messages"]] for r in _loaded(read, path)] == [
        [("user", "where is my parcel"), ("assistant", "hello")]]
    path = tmp_path / "langsmith.jsonl"
    run = {"id": "r1", "run_type": "llm", "start_time": "2026-03-03T09:00:00Z", "outputs": {"output": 42}}
    _write(path, [{**run, "inputs": {"messages": 42}}, {**run, "id": "r2", "inputs": {"question": "why"}}])
    read = reader.read([path], "langsmith", MAPPING)
    assert _reasons(read, path) == [(1, "line 1: a JSON number where messages or text belong")]
    assert [[(m["role"], m["content"]) for m in r["messages"]] for r in _loaded(read, path)] == [
        [("user", "why"), ("assistant", "42")]]  # a model may answer a number
