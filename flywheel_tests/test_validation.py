"""The fast path (acceptance_sql) against the reference (validation_sql): the fast path may leave a
record to the reference, but must never accept one the reference rejects, and must type what it
accepts exactly as the reference does."""

import json

import duckdb
import pyarrow as pa
import pytest

from flywheel.core.intake.validation import CONTENTS_READ_BY_PATH, NOT_ACCEPTED, acceptance_sql, validation_sql
from flywheel_tests.conftest import trace
from flywheel_tests.test_intake import BAD_RECORDS

MAX_BYTES = 4096

def _conversation(n: int, bad_at: int | None = None, bad=None) -> list[dict]:
    """n messages taking turns; the one at bad_at has `bad` for content, or no content when None."""
    messages = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"message {i}"} for i in range(n)]
    if bad_at is not None:
        if bad is None:
            del messages[bad_at]["content"]
        else:
            messages[bad_at]["content"] = bad
    return messages


# Records the reference rejects that a typed parse would read without complaint, on top of the
# intake tests' catalogue.
LENIENT_PARSE_TRAPS = [
    json.dumps(trace(judge_score="0.5")),  # a numeric string is not a number
    json.dumps(trace(turns=1.7)),  # rounded by a cast
    json.dumps(trace(guardrail_tripped=1)),  # truthy, not a boolean
    json.dumps(trace(cohort=7)),  # read as text by a VARCHAR parse
    json.dumps(trace(messages=[{"role": "user", "content": {"text": "hi"}}])),
    json.dumps(trace(messages=[{"role": "user", "content": None}])),
    json.dumps(trace(messages=[{"role": "user", "content": "a"}, {"role": "user"}])),
    json.dumps(trace(messages=[{"role": 1, "content": "a"}])),
    json.dumps(trace(messages={"role": "user", "content": "a"})),
    json.dumps(trace(timestamp="2026-03-02")) [:-1],  # truncated
    json.dumps(trace(metadata="text")),
    "x" * (MAX_BYTES + 1),
    # The typed parse turns what it cannot convert into NULL, or converts it anyway.
    json.dumps(trace(turns=2**63)),  # past BIGINT
    json.dumps(trace(timestamp=1767225600)),  # epoch seconds are not ISO 8601
    json.dumps(trace(timestamp="2026-13-01T00:00:00Z")),
    json.dumps(trace(timestamp="10000-01-01T00:00:00Z")),  # parsed by DuckDB, not held by Python
    json.dumps(trace(timestamp="-infinity")),
    json.dumps(trace(judge_score={"value": 0.5})),
    json.dumps(trace(trace_id=1.5)),  # an id may be an integer, not any number
    json.dumps(trace(csat=True)),
    json.dumps(trace(metadata=["a"])),
    json.dumps(trace())[:-1] + ', "csat": 1e400}',  # infinity
    # Repeated keys: the first one counts, in every parse.
    '{"judge_score": "x", ' + json.dumps(trace(judge_score=0.5))[1:],
    # An escaped key is the same key once read.
    json.dumps(trace())[:-1] + ', "judge\\u005fscore": "high"}',
    # Not objects, or not JSON once the object ends.
    "null",
    "true",
    json.dumps(trace()) + " x",
    # Contents past those whose kinds are read by path are read by the wildcard.
    json.dumps(trace(messages=_conversation(CONTENTS_READ_BY_PATH + 8, bad_at=CONTENTS_READ_BY_PATH + 3, bad=7))),
    json.dumps(trace(messages=_conversation(CONTENTS_READ_BY_PATH + 8, bad_at=CONTENTS_READ_BY_PATH + 3, bad=None))),
    json.dumps(trace(messages=_conversation(CONTENTS_READ_BY_PATH, bad_at=CONTENTS_READ_BY_PATH - 1, bad=[1]))),
]

GOOD_RECORDS = [
    json.dumps(trace("g1")),
    json.dumps(trace(1234, customer_id=99, judge_score=1, turns=0, csat=-2.5)),
    json.dumps(trace("g3", timestamp="2026-03-02T12:00:00+02:00", region="eu", tags=["vip"],
                     metadata={"channel": "chat"})),
    json.dumps(trace("g4", messages=[{"role": "system", "content": ""}, {"role": "tool", "content": "{\"a\": 1}"}])),
    json.dumps(trace("g5", guardrail_tripped=None, intent=None, model_version="m-1")),
    "  " + json.dumps(trace("g6")) + "\r",
    json.dumps(trace(2**64 - 1, customer_id=-7, timestamp="2026-03-02 12:00:00")),
    '{"cohort": "smb", ' + json.dumps(trace("g8", cohort="enterprise"))[1:],  # the first of repeated keys
    json.dumps(trace("g9", csat=None, metadata=None, judge_score=0)),
    json.dumps(trace("g10", messages=[{"role": "user", "content": "caf\u00e9 \u2603", "name": "x"}]), ensure_ascii=True),
    json.dumps(trace("g11", messages=_conversation(CONTENTS_READ_BY_PATH))),
    json.dumps(trace("g12", messages=_conversation(CONTENTS_READ_BY_PATH + 1))),
    json.dumps(trace("g13", messages=_conversation(2 * CONTENTS_READ_BY_PATH))),
]


def _run(sql: str, lines: list[str]) -> dict[int, tuple]:
    conn = duckdb.connect()
    conn.execute("SET TimeZone = 'UTC'")
    conn.register("chunk", pa.table({"line": pa.array(range(1, len(lines) + 1), pa.int64()),
                                     "text": pa.array(lines, pa.large_string())}))
    cursor = conn.execute(f"SELECT * EXCLUDE (text) FROM ({sql}) ORDER BY line")
    rows = {row[0]: row[1:] for row in cursor.fetchall()}
    conn.close()
    return rows


@pytest.mark.parametrize("line", [b[1] for b in BAD_RECORDS] + LENIENT_PARSE_TRAPS)
def test_the_fast_path_never_accepts_a_record_the_reference_rejects(line):
    [(reason, *_)] = _run(validation_sql(MAX_BYTES), [line]).values()
    assert reason is not None, "the reference must reject this record"
    [(fast_reason, *typed)] = _run(acceptance_sql(MAX_BYTES), [line]).values()
    assert fast_reason == NOT_ACCEPTED
    assert all(v is None for v in typed), "nothing of a record not accepted is typed"


def test_the_fast_path_accepts_valid_records_and_types_them_as_the_reference_does():
    reference = _run(validation_sql(MAX_BYTES), GOOD_RECORDS)
    fast = _run(acceptance_sql(MAX_BYTES), GOOD_RECORDS)
    assert all(row[0] is None for row in reference.values()), reference
    assert fast == reference


def test_both_queries_skip_blank_lines():
    lines = ["", "   ", "\r", json.dumps(trace("b1"))]
    assert list(_run(acceptance_sql(MAX_BYTES), lines)) == [4]
    assert list(_run(validation_sql(MAX_BYTES), lines)) == [4]


def test_a_record_that_is_not_json_leaves_the_rest_of_its_vector_to_the_fast_path():
    """A record that is not JSON never reaches the typed parse, whose error would fail the query."""
    lines = [json.dumps(trace(f"v{i}")) for i in range(3000)]
    lines[1500] = "{oops"
    fast = _run(acceptance_sql(MAX_BYTES), lines)
    assert [line for line, (reason, *_) in fast.items() if reason is not None] == [1501]
    assert sum(reason is None for reason, *_ in fast.values()) == 2999


def _leaves(value) -> list[str]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    return [json.dumps(value), str(value)]


# Words a reason may hold for what they are in the contract, not as a record's values.
CONTRACT_WORDS = {"user", "assistant", "system", "tool", "true", "false", "null"}


@pytest.mark.parametrize("line", [b[1] for b in BAD_RECORDS] + LENIENT_PARSE_TRAPS)
def test_a_reason_names_the_field_and_the_problem_never_the_value(line):
    """Traces hold customer data; reasons are printed, logged and shown in the UI."""
    [(reason, *_)] = _run(validation_sql(MAX_BYTES), [line]).values()
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        return
    quoted = [leaf for leaf in _leaves(record) if len(leaf) >= 3 and leaf not in CONTRACT_WORDS and leaf in reason]
    assert not quoted, (reason, quoted)
