"""Small conversions every source needs: JSON that may arrive as a string, message content in its
many shapes, roles by their many names, timestamps in their many encodings."""

from __future__ import annotations

import datetime as dt
import json

from flywheel.core.common.records import loads, mapping_of

ROLES = {
    "user": "user", "human": "user", "humanmessage": "user", "humanmessagechunk": "user",
    "assistant": "assistant", "ai": "assistant", "aimessage": "assistant", "aimessagechunk": "assistant",
    "model": "assistant", "bot": "assistant", "chatbot": "assistant",
    "system": "system", "developer": "system", "systemmessage": "system",
    "tool": "tool", "function": "tool", "toolmessage": "tool", "functionmessage": "tool", "ipython": "tool",
}


def maybe_json(value):
    """A string that holds a JSON object or list, parsed; anything else as it is."""
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in ("{", "[") and text[-1:] in ("}", "]"):
            try:
                return loads(text)
            except (json.JSONDecodeError, RecursionError):
                return value
    return value


# The kinds of span or run each source's conventions name (OpenTelemetry GenAI v1.41 operation names,
# OpenInference span kinds, LangSmith run types, Langfuse observation types), lower case.
KNOWN_KINDS = frozenset({
    "chat", "text_completion", "generate_content", "completion", "embeddings", "execute_tool", "invoke_agent",
    "create_agent", "invoke_workflow", "retrieval", "llm", "chain", "tool", "agent", "retriever", "embedding",
    "reranker", "guardrail", "evaluator", "prompt", "parser", "span", "generation", "event", "unknown", "?", "run"})


def label(value) -> str:
    """A kind or type a source gave, fit to name in a report (counted skips are printed and kept in run
    metadata): one the conventions name as it is; any other not repeated, as it could be customer text."""
    text = str(value)
    return text if text.lower() in KNOWN_KINDS else "(a value outside the conventions)"


def role(name) -> str | None:
    """The contract's role for a source's role name (human -> user, ai -> assistant ...), or None."""
    if not isinstance(name, str):
        return None
    return ROLES.get(name.strip().lower().replace("_", ""))


def tool_call_text(name, arguments, call_id=None) -> str:
    """A tool call kept as text in the conversation: what was called, with what."""
    args = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False, default=str)
    return f"[tool call {name or '?'}({args or ''})]"


def text_of(content) -> str:
    """Message content as text: a string, a list of parts ({type: text, text|content}, tool calls,
    images named not inlined), or an object with text in it."""
    content = maybe_json(content) if isinstance(content, str) and content[:1] in "[{" else content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, (int, float, bool)):
        return json.dumps(content)
    if isinstance(content, dict):
        found = _part_text(content)
        return found if found is not None else _json(content)
    if isinstance(content, (list, tuple)):
        pieces = [_part_text(p) if isinstance(p, dict) else text_of(p) for p in content]
        if pieces and all(p is None for p in pieces):
            return _json(content)  # structured data (a tool's JSON result): kept as it is
        return "\n".join(p if p is not None else _json(item) for p, item in zip(pieces, content) if p != "")
    return str(content)


def _json(value) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _part_text(part: dict) -> str | None:
    """The text of a message part, or None when the object is not a part (plain data)."""
    kind = str(part.get("type", "") or "").lower()
    if kind in ("tool_call", "tool_use", "function_call"):
        function = mapping_of(part.get("function"))
        return tool_call_text(part.get("name") or function.get("name"),
                              part.get("arguments", part.get("input", function.get("arguments"))))
    if kind in ("tool_call_response", "tool_result"):
        return text_of(part.get("response", part.get("result", part.get("content"))))
    if kind in ("image", "image_url", "blob", "file", "uri", "audio", "video", "input_image", "document"):
        return f"[{part.get('modality') or kind}]"
    for key in ("content", "text", "message_content.text"):
        if key in part and part[key] is not None:
            return text_of(part[key])
    return "" if kind else None


def epoch_ns_to_iso(value) -> str | None:
    """OTLP's nanoseconds since the epoch (a number or a decimal string) as ISO 8601 UTC."""
    try:
        ns = int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an infinite float
        return None
    if ns <= 0:
        return None
    try:
        return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.timezone.utc).isoformat().replace("+00:00", "Z")
    except (ValueError, OverflowError, OSError):  # past the year 9999, or the platform's time_t
        return None


def iso(value) -> str | None:
    """A timestamp from a source (ISO 8601 string, datetime, epoch seconds or milliseconds) as ISO 8601."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)).isoformat()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = value / 1e9 if value > 1e17 else value / 1e3 if value > 1e11 else value
        try:
            return dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc).isoformat()
        except (ValueError, OverflowError, OSError):  # NaN, infinite, past the year 9999
            return None
    return str(value)


def sort_key(timestamp: str | None, position: int) -> float:
    """Epoch seconds of an ISO timestamp (ties and unreadable ones by position read)."""
    try:
        moment = dt.datetime.fromisoformat(str(timestamp).replace("Z", "+00:00"))
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=dt.timezone.utc)
        return moment.timestamp() + position * 1e-9
    except (TypeError, ValueError):
        return float(position)
