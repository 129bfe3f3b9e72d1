"""Message lists in the shapes LLM platforms store them: OpenAI-style {role, content}, LangChain
serialized messages ({"lc": 1, "id": [..., "HumanMessage"], "kwargs": {...}}) or dumped ones
({"type": "human", "content": ...}), a single message, {"messages": [...]}, a plain string."""

from __future__ import annotations

import json
import re

from flywheel.core.common.records import json_kind, listed, mapping_of
from flywheel.core.intake.sources.values import WrongKind, given_role, maybe_json, role, text_of, tool_call_text


def one(m, default_role: str) -> dict | None:
    if isinstance(m, str):
        return {"role": default_role, "content": m}
    if not isinstance(m, dict):
        return None
    if m.get("lc") and isinstance(m.get("kwargs"), dict):  # LangChain's dumpd(): class name gives the role
        kwargs = m["kwargs"]
        path = listed(m.get("id"))
        name = path[-1] if path else default_role
        r = role(kwargs.get("role")) if name == "ChatMessage" else role(name) or role(kwargs.get("type"))
        return {"role": r or default_role,
                "content": _with_tool_calls(kwargs.get("content"), kwargs.get("tool_calls") or _function_call(kwargs))}
    if "message" in m and isinstance(m["message"], dict) and "content" not in m:  # a choice or a generation
        return one(m["message"], default_role)
    r = given_role(m.get("role"), role(m.get("type")) or default_role)
    calls = m.get("tool_calls") or mapping_of(m.get("additional_kwargs")).get("tool_calls") or _function_call(m)
    content = m.get("content", m.get("text"))
    if "parts" in m and content is None:
        content = m["parts"]
    return {"role": r, "content": _with_tool_calls(content, calls)}


def _function_call(m: dict) -> list | None:
    """OpenAI's legacy `function_call` ({name, arguments}, before tool_calls), on the message or in
    LangChain's additional_kwargs, as a list of one call."""
    call = m.get("function_call") or mapping_of(m.get("additional_kwargs")).get("function_call")
    return [call] if isinstance(call, dict) else None


# Text that starts as a list of objects or an object with a key: JSON cut short, not a user's words.
_CUT_JSON = re.compile(r'\s*(\[\s*\{|\{\s*")')


def _with_tool_calls(content, calls) -> str:
    text = text_of(content)
    rendered = []
    for c in listed(maybe_json(calls)):
        if isinstance(c, dict):
            fn = mapping_of(c.get("function"))
            rendered.append(tool_call_text(fn.get("name") or c.get("name"), fn.get("arguments", c.get("args", c.get("arguments")))))
    return "\n".join(x for x in [text, *rendered] if x)


def many(value, default_role: str, *, strict: bool = True) -> list[dict]:
    """Messages from any of the shapes above; unknown structures become one message of their JSON.
    A number or true/false where the messages themselves belong (the whole input, or its "messages")
    is WrongKind, not a message "42"; inside other keys (a chain's {"question": 42}) it is text."""
    value = maybe_json(value)
    if value is None or value == "" or value == [] or value == {}:
        return []
    if strict and isinstance(value, (bool, int, float)):
        raise WrongKind(f"{json_kind(value)} where messages or text belong")
    if isinstance(value, str):
        if strict and _CUT_JSON.match(value):  # read as the question, it would put words in the customer's mouth
            raise WrongKind("JSON that does not parse where messages belong (cut short?)")
        return [{"role": default_role, "content": value}]
    if isinstance(value, dict):
        for key in ("messages", "input", "prompt", "query", "question"):
            if key in value and value[key] not in (None, "", []):
                return many(value[key], default_role, strict=key == "messages")
        if "choices" in value:
            return [m for c in listed(value["choices"]) if (m := one(c, "assistant"))]
        if "generations" in value:
            gens = maybe_json(value["generations"])
            if gens is not None and not isinstance(gens, list):
                raise WrongKind(f'"generations" is {json_kind(gens)}, not a list')
            flat = [g for batch in listed(gens) for g in (batch if isinstance(batch, list) else [batch])]
            # dumpd(ChatGeneration) wraps the generation's fields in LangChain's serialized form
            flat = [g["kwargs"] if isinstance(g, dict) and g.get("lc") and isinstance(g.get("kwargs"), dict) else g
                    for g in flat]
            return [m for g in flat if isinstance(g, dict)
                    and (m := one(g.get("message") or {"content": g.get("text")}, "assistant"))]
        for key in ("output", "answer", "response", "result", "text", "completion"):
            if key in value and value[key] not in (None, ""):
                return many(value[key], default_role, strict=False)
        if "role" in value or "content" in value or value.get("lc"):
            m = one(value, default_role)
            return [m] if m else []
        if "args" in value or "kwargs" in value:  # a decorated function's arguments
            return [{"role": default_role, "content": json.dumps(value, ensure_ascii=False, default=str)}]
        return [{"role": default_role, "content": json.dumps(value, ensure_ascii=False, default=str)}]
    if isinstance(value, list):
        if value and all(isinstance(v, list) for v in value):  # LangChain: a batch of message lists
            value = value[0]
        return [m for v in value if (m := one(v, default_role))]
    return [{"role": default_role, "content": text_of(value)}]
