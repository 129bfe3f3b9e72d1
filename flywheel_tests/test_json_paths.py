"""orjson reads and writes trace JSON first; json takes what orjson refuses. The answers must be json's."""

from __future__ import annotations

import json
import math

import pytest

from flywheel.core.common.records import parse_object
from flywheel.core.intake.ingest import record_text
from flywheel.core.intake.sources.values import maybe_json


@pytest.mark.parametrize("text", [
    '{"a": 1, "b": [true, null, 2.5], "c": {"d": "\\u00e9\\u4e2d"}}',
    '{"a": 1, "a": 2}',  # the last of a repeated key, as json
    '{"n": 18446744073709551615}',  # the largest 64-bit integer stays an integer
    '  {"padded": "with spaces"}  \n',
])
def test_what_orjson_reads_is_what_json_reads(text):
    assert parse_object(text) == json.loads(text)


def test_what_orjson_refuses_goes_to_json():
    assert math.isnan(parse_object('{"score": NaN}')["score"])
    assert parse_object('{"score": Infinity}')["score"] == math.inf
    assert parse_object('{"a": "\\ud800"}').startswith("a \\u escape stands for half a character")
    assert parse_object('{"a": 1,}').startswith("column 9: not valid JSON")
    assert parse_object('[1, 2]') == "a JSON list where a JSON object belongs"
    assert maybe_json('[{"role": "user", "content": NaN}]')[0]["role"] == "user"
    assert maybe_json('{"broken": ') == '{"broken": '


def test_a_record_is_written_as_json_would_read_it():
    import datetime as dt

    record = {"trace_id": "t1", "timestamp": dt.datetime(2026, 3, 2, 9, 30), "metadata": {1: "one", "b": b"x"},
              "messages": [{"role": "user", "content": "caf\u00e9"}], "csat": 4.0}
    assert json.loads(record_text(record)) == {"trace_id": "t1", "timestamp": "2026-03-02T09:30:00+00:00",
                                                 "metadata": {"1": "one", "b": "x"},
                                                 "messages": [{"role": "user", "content": "caf\u00e9"}], "csat": 4.0}
    # What orjson cannot write as json did is written by json: the contract's query then names the
    # non-finite score, and keeps the 100-digit integer.
    assert '"judge_score": NaN' in record_text({"trace_id": "t2", "judge_score": math.nan})
    assert str(10**100) in record_text({"trace_id": "t3", "metadata": {"n": 10**100}})
