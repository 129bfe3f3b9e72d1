"""Langfuse exports as calls: traces (the public API's camelCase JSON, the UI export, or the blob
storage export's snake_case JSON/JSONL/CSV/Parquet rows) and observations (GENERATION rows).

Trace fields read (Langfuse API reference, `TraceWithFullDetails`; blob storage export fields): id,
timestamp, input, output, userId/user_id, sessionId/session_id, metadata, tags, scores, observations.
A trace with GENERATION observations is read from them, in start order; otherwise from its own input
and output. sessionId groups a conversation. Input and output may be a message list, one {role,
content}, {"messages": [...]}, a plain string, or any of these as a JSON string (the blob export and
the v2 API store them so).
"""

from __future__ import annotations

from collections import Counter
import json
import math
from pathlib import Path

from flywheel.core.common.records import json_kind, listed
from flywheel.core.intake.sources import messages
from flywheel.core.intake.sources.assemble import Call
from flywheel.core.intake.sources.values import WrongKind, identifier, iso, label, maybe_json, sort_key


def _io(value):
    """Input or output: the blob export and the v2 API store them JSON-encoded, strings included."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def field(record: dict, camel: str):
    snake = "".join("_" + c.lower() if c.isupper() else c for c in camel)
    return record.get(camel, record.get(snake))


def is_observation(record: dict) -> bool:
    return field(record, "traceId") is not None and str(record.get("type") or "").upper() in (
        "GENERATION", "SPAN", "EVENT", "AGENT", "TOOL", "CHAIN", "RETRIEVER", "EMBEDDING", "EVALUATOR", "GUARDRAIL")


def is_trace(record: dict) -> bool:
    return ("input" in record or "output" in record or "observations" in record) and (
        any(field(record, k) is not None for k in ("sessionId", "userId", "timestamp")))


def is_score(record: dict) -> bool:
    """A row of the blob export's scores/ folder (or the scores API): a name and value on a trace."""
    return (field(record, "traceId") is not None and "name" in record and "value" in record
            and (field(record, "dataType") is not None or "source" in record) and "input" not in record)


MANIFEST = "Langfuse export manifest (lists files, holds no trace)"
EXPORT_FOLDERS = ("traces", "observations", "observations_v2", "scores")


def in_export_manifests(path: Path) -> bool:
    """A file in the blob export's manifests/ folder (beside its traces/, observations/ or scores/):
    left out whatever it holds, as the manifests' shape is not documented."""
    folder = path.parent
    return folder.name == "manifests" and any((folder.parent / sibling).is_dir() for sibling in EXPORT_FOLDERS)


def is_manifest(record: dict) -> bool:
    """The blob export's manifests/ files: which files an export wrote, no traces."""
    return isinstance(record.get("files"), list) and "status" in record and len(record) <= 6


def score(record: dict) -> tuple[str, str, float | str | bool] | None:
    """(trace id, name, value) of a score row."""
    value = score_value(record)
    return None if value is None else (str(field(record, "traceId")), str(record["name"]), value)


def score_value(record: dict) -> float | str | bool | None:
    """A score's value by its data type (Langfuse API `ScoreDataType`): a NUMERIC score's number, a
    CATEGORICAL one's category (`stringValue`; its `value` is only an index), a BOOLEAN one's truth
    (`value` 1 or 0). None when it has none of these."""
    kind = str(field(record, "dataType") or "").upper()
    value = record.get("value")
    if kind == "CATEGORICAL":
        text = field(record, "stringValue")
        return str(text) if text not in (None, "") else None
    if isinstance(value, str):  # a CSV export's cell
        try:
            value = float(value)
        except ValueError:
            return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return value if isinstance(value, bool) else None
    return bool(value) if kind == "BOOLEAN" else float(value)


def _metadata(value) -> dict:
    """Metadata: an object as it is; Langfuse takes any JSON there, so anything else is kept under
    "metadata" rather than dropped."""
    value = maybe_json(value)
    if value is None or value == "":
        return {}
    return value if isinstance(value, dict) else {"metadata": value}


def _tags(value) -> list[str]:
    """Tags: a list of strings (one tag for a lone string, as a hand-made export may write it)."""
    value = maybe_json(value)
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise WrongKind(f'"tags" is {json_kind(value)}, not a list')
    return [str(t) for t in value]


def calls(record: dict, file: str, line: int, skipped: Counter) -> list[Call] | str:
    if is_observation(record):
        return _observation(record, file, line, skipped)
    if not record.get("id"):
        return "a Langfuse trace needs an id"
    trace_id = identifier(record["id"], "trace id")
    common = dict(user=field(record, "userId"), metadata=_metadata(record.get("metadata")),
                  scores=_scores(record.get("scores")), tags=_tags(record.get("tags")), file=file, line=line)
    group = field(record, "sessionId") or trace_id
    start = iso(record.get("timestamp")) or ""
    found = []
    for i, obs in enumerate(listed(maybe_json(record.get("observations")))):
        if not isinstance(obs, dict):
            continue
        if str(obs.get("type") or "").upper() != "GENERATION":
            skipped[f"Langfuse observation type {label(str(obs.get('type') or '?').upper())} (not an LLM call)"] += 1
            continue
        obs_start = iso(field(obs, "startTime")) or start
        found.append(Call(group=group, trace_id=trace_id, start=obs_start, order=sort_key(obs_start, line * 1000 + i),
                          inputs=messages.many(_io(obs.get("input")), "user"),
                          outputs=messages.many(_io(obs.get("output")), "assistant", strict=False),
                          model=obs.get("model"),
                          call_id=str(obs.get("id") or f"{trace_id}/{i}"), **common))
    if not found:
        inputs = messages.many(_io(record.get("input")), "user")
        outputs = messages.many(_io(record.get("output")), "assistant", strict=False)
        if not inputs and not outputs:
            return "a Langfuse trace without input, output or GENERATION observations"
        found.append(Call(group=group, trace_id=trace_id, start=start, order=sort_key(start, line), inputs=inputs,
                          outputs=outputs, model=None, call_id=trace_id, **common))
    return found


def join_traces(calls: list[Call]) -> None:
    """The blob export's legacy layout writes traces/ and observations/ apart, and an observation row
    there has its trace's id but not its session or user: without this, a session of two traces came
    out as three (the traces' own input and output, and each trace's generations on their own). A
    trace row's call (its call_id is its own id, as calls() makes it) lends its session and user to
    the GENERATION observations of that trace read in the same ingest, and steps back to a wrapper
    (read only when its conversation has no LLM call), as a LangSmith root run does."""
    own = {c.trace_id: c for c in calls if c.call_id == c.trace_id}
    observed = {c.trace_id for c in calls if c.call_id != c.trace_id}
    for call in calls:
        if call.call_id == call.trace_id:
            call.fallback = call.fallback or call.trace_id in observed
        elif (trace := own.get(call.trace_id)) is not None and call.group == call.trace_id:
            call.group = trace.group
            call.user = call.user or trace.user


def _observation(record: dict, file: str, line: int, skipped: Counter) -> list[Call]:
    kind = str(record.get("type") or "").upper()
    if kind != "GENERATION":
        skipped[f"Langfuse observation type {label(kind)} (not an LLM call)"] += 1
        return []
    trace_id = identifier(field(record, "traceId"), "trace id")
    start = iso(field(record, "startTime")) or ""
    return [Call(group=field(record, "sessionId") or trace_id, trace_id=trace_id, start=start,
                 order=sort_key(start, line), inputs=messages.many(_io(record.get("input")), "user"),
                 outputs=messages.many(_io(record.get("output")), "assistant", strict=False),
                 model=record.get("model") or field(record, "providedModelName"),
                 user=field(record, "userId"), metadata=_metadata(record.get("metadata")),
                 tags=_tags(record.get("tags")), file=file, line=line,
                 call_id=str(record.get("id") or ""))]


def _scores(value) -> dict:
    """Scores as {name: value}: the API's list of score objects, or a {name: value} mapping."""
    value = maybe_json(value)
    out = {}
    if isinstance(value, dict):
        value = [{"name": k, "value": v} for k, v in value.items()]
    for s in listed(value):
        if isinstance(s, dict) and s.get("name") is not None and (found := score_value(s)) is not None:
            out[str(s["name"])] = found
    return out
