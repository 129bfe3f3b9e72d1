"""OTLP trace data as JSON (the Collector's file exporter, OTLP/HTTP with JSON, or protobuf decoded by
the endpoint) into plain spans.

OTLP/JSON (opentelemetry-proto, docs/specification.md "JSON Protobuf Encoding"): lowerCamelCase keys,
trace and span ids as hex, 64-bit integers as decimal strings or numbers, enums as integers. Some
exporters write the proto3 JSON mapping instead (ids in base64, enum names); both are read, ids told
apart by length (a trace id is 32 hex or 24 base64 characters). Pre-2022 files name `scopeSpans`
`instrumentationLibrarySpans`; snake_case keys are read too.
"""

from __future__ import annotations

import base64
import functools
import binascii
from collections.abc import Iterator
from dataclasses import dataclass, field

from flywheel.core.common.records import listed, mapping_of


class OtlpError(ValueError):
    """A document that is not OTLP trace data."""


@dataclass
class Span:
    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    kind: int
    start_ns: int
    end_ns: int
    attributes: dict
    events: list[tuple[str, int, dict]] = field(default_factory=list)  # (name, time ns, attributes)
    resource: dict = field(default_factory=dict)


def _get(obj: dict, camel: str, snake: str | None = None, default=None):
    if camel in obj:
        return obj[camel]
    return obj.get(snake or _snake(camel), default)


@functools.lru_cache(maxsize=256)
def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def any_value(value):
    """An OTLP AnyValue as a Python value: kvlist -> dict, array -> list, intValue -> int, bytes ->
    bytes; an empty AnyValue -> None."""
    if not isinstance(value, dict):
        return value
    if "stringValue" in value:  # nearly every attribute: no loop over the other kinds
        return value["stringValue"]
    if "string_value" in value:
        return value["string_value"]
    for key in ("boolValue", "bool_value"):
        if key in value:
            return bool(value[key])
    for key in ("intValue", "int_value"):
        if key in value:
            try:
                return int(value[key])
            except (TypeError, ValueError, OverflowError):
                return value[key]
    for key in ("doubleValue", "double_value"):
        if key in value:
            try:
                return float(value[key])
            except (TypeError, ValueError, OverflowError):
                return value[key]
    for key in ("arrayValue", "array_value"):
        if key in value:
            return [any_value(v) for v in listed(mapping_of(value[key]).get("values"))]
    for key in ("kvlistValue", "kvlist_value"):
        if key in value:
            return attributes(mapping_of(value[key]).get("values"))
    for key in ("bytesValue", "bytes_value"):
        if key in value:
            try:
                return base64.b64decode(value[key])
            except (binascii.Error, TypeError):
                return value[key]
    return None


def attributes(pairs) -> dict:
    """A list of OTLP KeyValue as a dict (later keys win, as in the SDKs)."""
    out = {}
    if type(pairs) is not list:
        return out
    for pair in pairs:  # two million pairs in the benchmark: the string case without a call
        if isinstance(pair, dict):
            key = pair.get("key")
            if isinstance(key, str):
                value = pair.get("value")
                out[key] = value["stringValue"] if isinstance(value, dict) and "stringValue" in value else any_value(value)
    return out


_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def span_id(value, hex_length: int, what: str = "id") -> str | None:
    """An OTLP id as lowercase hex: hex as given, or base64 (proto3 JSON) converted. Errors never quote
    the value: an id is as hostile as any other field of a trace."""
    if isinstance(value, str) and len(value) == hex_length and _HEX_DIGITS.issuperset(value):
        return value.lower()  # nearly every id: before the general case's strip and tests
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise OtlpError(f"{what} must be a string, got {type(value).__name__}")
    text = value.strip()
    if len(text) == hex_length and _HEX_DIGITS.issuperset(text):
        return text.lower()
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise OtlpError(f"{what} is neither hex nor base64") from None
    if len(raw) * 2 != hex_length:
        raise OtlpError(f"{what} has {len(raw)} bytes, expected {hex_length // 2}")
    return raw.hex()


def _int(value, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return default


_KINDS = {"SPAN_KIND_UNSPECIFIED": 0, "SPAN_KIND_INTERNAL": 1, "SPAN_KIND_SERVER": 2, "SPAN_KIND_CLIENT": 3,
          "SPAN_KIND_PRODUCER": 4, "SPAN_KIND_CONSUMER": 5}


def is_otlp(doc) -> bool:
    return isinstance(doc, dict) and ("resourceSpans" in doc or "resource_spans" in doc)


def count_spans(doc: dict) -> int:
    """The spans a document holds, in any of the shapes spans() reads; an entry or a container that is
    not what it should be counts as one (the intake quarantines it, where it can be seen)."""
    return sum(1 if isinstance(found, str) else len(found[1]) for found in _scopes(doc))


def spans(doc: dict) -> Iterator[Span | OtlpError]:
    """Every span of one OTLP traces document ({"resourceSpans": [...]}); a span that cannot be read
    comes out as the OtlpError saying why (its id in the message when it has one), and so does a
    container of the wrong kind (spans in it could not be counted, so they are not lost unseen)."""
    if not is_otlp(doc):
        raise OtlpError('not OTLP trace data: no "resourceSpans"')
    last, resource = None, {}
    for found in _scopes(doc):
        if isinstance(found, str):
            yield OtlpError(found)
            continue
        resource_spans, raw_spans = found
        if resource_spans is not last:  # a resource's attributes once, however many scopes it has
            last, resource = resource_spans, attributes(mapping_of(_get(resource_spans, "resource")).get("attributes"))
        for raw in raw_spans:
            yield _span(raw, resource)


def shape_problem(doc: dict) -> str | None:
    """Why a document is not OTLP in shape (a container of the wrong kind, as no protobuf decoder
    would produce), or None: the endpoint answers 400 for it, as OTLP/HTTP says for a bad request."""
    return next((found for found in _scopes(doc) if isinstance(found, str)), None)


def _scopes(doc: dict) -> Iterator[tuple[dict, list] | str]:
    """(its resourceSpans entry, its spans) for each scope of a document, in any shape spans() reads;
    for a container of the wrong kind, why, in place of the spans it would have held."""
    resource_spans_list = _get(doc, "resourceSpans")
    if not _list_or_absent(resource_spans_list):
        yield '"resourceSpans" is not a list'
    for resource_spans in listed(resource_spans_list):
        if not isinstance(resource_spans, dict):
            yield "a resourceSpans entry is not an object"
            continue
        scopes = _get(resource_spans, "scopeSpans") or _get(resource_spans, "instrumentationLibrarySpans")
        if not _list_or_absent(scopes):
            yield 'a resourceSpans entry\'s "scopeSpans" is not a list'
        for scope in listed(scopes):
            if not isinstance(scope, dict):
                yield "a scopeSpans entry is not an object"
                continue
            if not _list_or_absent(scope.get("spans")):
                yield 'a scopeSpans entry\'s "spans" is not a list'
            yield resource_spans, listed(scope.get("spans"))


def _list_or_absent(value) -> bool:
    return value is None or isinstance(value, list)


def _span(raw, resource: dict) -> Span | OtlpError:
    if not isinstance(raw, dict):
        return OtlpError("a span is not an object")
    # Each field under its camelCase name (OTLP/JSON), else its snake_case one: looked up in place,
    # as this runs for every span of a file.
    try:
        trace = span_id(raw.get("traceId") or raw.get("trace_id"), 32, "traceId")
        sid = span_id(raw.get("spanId") or raw.get("span_id"), 16, "spanId")
        parent = span_id(raw.get("parentSpanId") or raw.get("parent_span_id"), 16, "parentSpanId")
    except OtlpError as exc:
        return OtlpError(f"a span: {exc}")
    if not trace or not sid:
        return OtlpError(f"a span has no {'traceId' if not trace else 'spanId'}")
    if not _list_or_absent(raw.get("attributes")):  # read as none, an LLM call would pass as "not an LLM call"
        return OtlpError(f"span {sid}: its attributes are not a list")
    kind = raw.get("kind", 0)
    events = raw.get("events")
    events = [(str(_get(e, "name") or ""), _int(_get(e, "timeUnixNano")), attributes(_get(e, "attributes")))
              for e in events if isinstance(e, dict)] if events and isinstance(events, list) else []
    kind = _KINDS.get(kind, 0) if isinstance(kind, str) else _int(kind)
    return Span(trace, sid, parent, str(raw.get("name") or ""), kind,
                _int(raw.get("startTimeUnixNano") or raw.get("start_time_unix_nano")),
                _int(raw.get("endTimeUnixNano") or raw.get("end_time_unix_nano")),
                attributes(raw.get("attributes")), events, resource)
