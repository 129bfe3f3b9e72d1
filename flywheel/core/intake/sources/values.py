"""Small conversions every source needs: JSON that may arrive as a string, message content in its
many shapes, roles by their many names, timestamps in their many encodings."""

from __future__ import annotations

import datetime as dt
import json
import uuid

from flywheel.core.common.records import json_kind, loads, mapping_of

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


class WrongKind(ValueError):
    """A value a reader needs is of the wrong kind: the message names the field and the kind, never the
    value (it may be customer data)."""


def identifier(value, what: str) -> str | None:
    """An id (a conversation's, a trace's, a user's, a model's name) as text: a string, an integer or a
    UUID; None when absent or empty. Anything else raises WrongKind: a list or an object would become
    its Python repr, and `true` as a conversation id would make every span carrying it one conversation."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (int, uuid.UUID)) and not isinstance(value, bool):
        return str(value)
    kind = "a JSON number that is not an integer" if isinstance(value, float) else json_kind(value)
    raise WrongKind(f"the {what} is {kind}, not a string or an integer")


def role(name) -> str | None:
    """The contract's role for a source's role name (human -> user, ai -> assistant ...), or None."""
    if not isinstance(name, str):
        return None
    return ROLES.get(name) or ROLES.get(name.strip().lower().replace("_", ""))


def given_role(name, default: str) -> str:
    """The contract's role for a message's own role field: `default` when it has none (a plain string,
    an input without roles); WrongKind for one no convention names ("wizard", 5), as the contract
    quarantines it, rather than a guess that would put words in the customer's mouth."""
    if name is None or name == "":
        return default
    found = role(name)
    if found is None:
        raise WrongKind("a message has a role outside the conventions (user, assistant, system, tool and "
                        "their other names: human, ai, developer, function ...)")
    return found


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
    kind = part.get("type")
    if kind == "text":  # nearly every part: its text as it is (text_of would parse one that looks like JSON)
        text = part.get("content")
        if isinstance(text, str) and text[:1] not in ("[", "{"):
            return text
    kind = str(kind or "").lower()
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
    """OTLP's nanoseconds since the epoch (a number or a decimal string) as ISO 8601 UTC; a number too
    small for nanoseconds read in the unit its size implies, and none before 2000 (epoch_seconds)."""
    try:
        ns = int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an infinite float
        return None
    seconds = epoch_seconds(ns)
    if seconds is None:
        return None
    try:
        return dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc).isoformat().replace("+00:00", "Z")
    except (ValueError, OverflowError, OSError):  # past the year 9999, or the platform's time_t
        return None


def iso(value) -> str | None:
    """A timestamp from a source (ISO 8601 string, datetime, epoch seconds or milliseconds) as ISO 8601."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)).isoformat()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = epoch_seconds(value)
        if seconds is None:
            return None
        try:
            return dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc).isoformat()
        except (ValueError, OverflowError, OSError):  # NaN, infinite, past the year 9999
            return None
    return str(value)


# 2000-01-01T00:00:00Z: no LLM trace is older, and a number read in the wrong unit (milliseconds as
# nanoseconds, a count where a time belongs) lands in 1970.
EARLIEST_EPOCH_S = 946_684_800


def epoch_seconds(value: float) -> float | None:
    """A number since the epoch as seconds, its unit told by its size (nanoseconds, microseconds,
    milliseconds or seconds, as exporters and dataframe writers use them: pandas' to_json writes
    milliseconds); None for a time before 2000 whatever the unit, or not a number at all."""
    try:
        magnitude = abs(value)
        seconds = (value / 1e9 if magnitude >= 1e17 else value / 1e6 if magnitude >= 1e14
                   else value / 1e3 if magnitude >= 1e11 else float(value))
    except (TypeError, OverflowError):
        return None
    return seconds if seconds >= EARLIEST_EPOCH_S else None  # NaN compares False: None


def parse_time(text) -> dt.datetime | None:
    """An ISO 8601 time as sources write it (Z, z, " UTC" or an offset; UTC when it has none), or None."""
    value = str(text).strip()
    for suffix in ("Z", "z", " UTC", " GMT"):
        if value.endswith(suffix):
            value = value[: -len(suffix)] + "+00:00"
            break
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def sort_key(timestamp: str | None, position: int) -> float:
    """Epoch seconds of an ISO timestamp (ties and unreadable ones by position read)."""
    moment = parse_time(timestamp) if timestamp is not None else None
    return moment.timestamp() + position * 1e-9 if moment is not None else float(position)
