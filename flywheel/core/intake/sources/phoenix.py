"""Rows of Phoenix's spans dataframe (`Client().spans.get_spans_dataframe()`, saved as Parquet, CSV
or JSON): `context.trace_id`, `context.span_id`, `parent_id`, `name`, `span_kind`, `start_time`, and
`attributes.*` columns, where `attributes.llm.input_messages` is a list of {"message.role": ...,
"message.content": ...}. Turned into the flattened OpenInference span the OTLP path reads."""

from __future__ import annotations

import datetime as dt

from flywheel.core.intake.sources.otlp import Span
from flywheel.core.intake.sources.values import epoch_seconds, identifier, maybe_json


def is_row(record: dict) -> bool:
    """A row of the spans dataframe: its context columns (context.span_id is the dataframe's index,
    which pandas' to_json leaves out), or a nested context."""
    context = record.get("context")
    return ("context.span_id" in record or "context.trace_id" in record
            or (isinstance(context, dict) and ("span_id" in context or "trace_id" in context)))


def span(row: dict) -> Span | str:
    context = row.get("context") if isinstance(row.get("context"), dict) else {}
    trace_id = row.get("context.trace_id") or context.get("trace_id")
    span_id = row.get("context.span_id") or context.get("span_id")  # absent when saved without the index
    if not trace_id:
        return "a Phoenix span row needs context.trace_id"
    attributes: dict = {}
    nested = row.get("attributes") if isinstance(row.get("attributes"), dict) else {}
    flat = {**{f"attributes.{k}": v for k, v in _flatten(nested).items()},
            **{k: v for k, v in row.items() if k.startswith("attributes.")}}
    for key, value in flat.items():
        name = key.removeprefix("attributes.")
        value = maybe_json(value)
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for i, item in enumerate(value):  # llm.input_messages: [{"message.role": ...}, ...]
                for sub, v in _flatten(item).items():
                    attributes[f"{name}.{i}.{sub}"] = v
        else:
            attributes[name] = value
    if row.get("span_kind") and "openinference.span.kind" not in attributes:
        attributes["openinference.span.kind"] = row["span_kind"]
    return Span(identifier(trace_id, "trace id"), identifier(span_id, "span id") or "",
                row.get("parent_id"), str(row.get("name") or ""), 0,
                _ns(row.get("start_time")), _ns(row.get("end_time")), attributes)


def _flatten(value: dict, prefix: str = "") -> dict:
    out = {}
    for key, v in value.items():
        name = f"{prefix}{key}"
        if isinstance(v, dict):
            out.update(_flatten(v, name + "."))
        else:
            out[name] = v
    return out


def _ns(value) -> int:
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
        return int(moment.timestamp() * 1e9)
    if isinstance(value, str):
        try:
            moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            return int((moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)).timestamp() * 1e9)
        except ValueError:
            return 0
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = epoch_seconds(value)  # pandas' to_json writes milliseconds, OTLP nanoseconds
        try:
            return int(seconds * 1e9) if seconds is not None else 0
        except (ValueError, OverflowError):  # infinite
            return 0
    return 0  # not a time: an object, a list, true
