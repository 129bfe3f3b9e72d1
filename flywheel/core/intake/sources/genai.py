"""The messages of one OpenTelemetry span, whichever convention wrote them.

Implemented against the OpenTelemetry GenAI semantic conventions v1.41.1 (the last release of
open-telemetry/semantic-conventions that holds them; they moved to semantic-conventions-genai in
v1.42.0 and are still "Development"), and the shapes still in the wild before it:

1. `gen_ai.system_instructions`, `gen_ai.input.messages`, `gen_ai.output.messages` (v1.37+): a JSON
   string or structured; messages of `parts` (text, tool_call, tool_call_response, ...).
2. OpenInference (Arize Phoenix, openinference-semantic-conventions 0.1.42):
   `llm.input_messages.{i}.message.role|content|contents.{j}.message_content.text|tool_calls...`,
   `llm.output_messages...`.
3. OpenLLMetry (Traceloop, up to 0.54): `gen_ai.prompt.{i}.role|content|tool_calls.{j}...`,
   `gen_ai.completion.{i}...`.
4. Per-message span events (v1.28-v1.36): `gen_ai.system.message`, `gen_ai.user.message`,
   `gen_ai.assistant.message`, `gen_ai.tool.message`, `gen_ai.choice` (fields in the event's attributes).
5. The oldest (<= v1.27): events `gen_ai.content.prompt` / `gen_ai.content.completion` carrying
   `gen_ai.prompt` / `gen_ai.completion` as OpenAI-style JSON.

Which spans count: an LLM call is a span whose `gen_ai.operation.name` is chat, text_completion or
generate_content, or whose `openinference.span.kind` is LLM, or (without either) one that carries
messages in any of the shapes above. Agent and workflow spans (invoke_agent, invoke_workflow, CHAIN,
AGENT) repeat their calls' messages and are skipped, as are tools, retrievers and embeddings; each skip
is counted with its reason.
"""

from __future__ import annotations

import re

from flywheel.core.common.records import json_kind, listed, mapping_of
from flywheel.core.intake.sources.otlp import Span
from flywheel.core.intake.sources.values import WrongKind, given_role, label, maybe_json, text_of, tool_call_text

LLM_OPERATIONS = {"chat", "text_completion", "generate_content", "completion"}
CONTAINER_OPERATIONS = {"invoke_agent", "invoke_workflow", "create_agent"}
INDEXED = re.compile(r"^(llm\.input_messages|llm\.output_messages|gen_ai\.prompt|gen_ai\.completion)\.(\d+)\.(.+)$")
MESSAGE_EVENTS = {"gen_ai.system.message": "system", "gen_ai.user.message": "user",
                  "gen_ai.assistant.message": "assistant", "gen_ai.tool.message": "tool"}


def skip_reason(span: Span) -> str | None:
    """Why a span is not an LLM call (None when it is one)."""
    operation = str(span.attributes.get("gen_ai.operation.name") or "").lower()
    kind = str(span.attributes.get("openinference.span.kind") or "").upper()
    if operation in LLM_OPERATIONS or kind == "LLM":
        return None
    if operation:
        return f"gen_ai.operation.name {label(operation)} (not an LLM call)"
    if kind:
        return f"openinference.span.kind {label(kind)} (not an LLM call)"
    if _has_messages(span):
        return None
    return "no GenAI or OpenInference attributes (not an LLM call)"


def _has_messages(span: Span) -> bool:
    a = span.attributes
    return ("gen_ai.input.messages" in a or "gen_ai.prompt.0.content" in a or "gen_ai.prompt.0.role" in a
            or "llm.input_messages.0.message.role" in a or "gen_ai.prompt" in a
            or any(name in MESSAGE_EVENTS or name in ("gen_ai.choice", "gen_ai.content.prompt", "gen_ai.content.completion")
                   for name, _, _ in span.events))


def messages(span: Span) -> tuple[list[dict], list[dict]]:
    """(input messages, output messages) of an LLM-call span, from the first shape that has them."""
    a = span.attributes
    system = _parts_messages(maybe_json(a.get("gen_ai.system_instructions")), default_role="system")
    if "gen_ai.input.messages" in a or "gen_ai.output.messages" in a:
        return (system + _chat_messages(_message_list(a, "gen_ai.input.messages", "user")),
                _chat_messages(_message_list(a, "gen_ai.output.messages", "assistant")))
    indexed = _indexed(a)
    if indexed:
        inputs = indexed.get("llm.input_messages") or indexed.get("gen_ai.prompt") or []
        outputs = indexed.get("llm.output_messages") or indexed.get("gen_ai.completion") or []
        return system + inputs, outputs
    from_events = _event_messages(span)
    if from_events[0] or from_events[1]:
        return (system + from_events[0], from_events[1])
    if "gen_ai.prompt" in a or "gen_ai.completion" in a:  # <= v1.27 span attributes, OpenAI-style JSON
        return (_openai_messages(_message_list(a, "gen_ai.prompt", "user")),
                _openai_messages(_message_list(a, "gen_ai.completion", "assistant")))
    if a.get("input.value") not in (None, "") or a.get("output.value") not in (None, ""):
        # OpenInference's request and response as they were (text, or JSON such as {"messages": [...]})
        from flywheel.core.intake.sources import messages as message_shapes

        return (system + message_shapes.many(a.get("input.value"), "user"),
                message_shapes.many(a.get("output.value"), "assistant", strict=False))
    return system, []


def _message_list(attributes: dict, name: str, default_role: str):
    """An attribute that holds a list of messages (a JSON string of one, or structured), None when
    absent; plain text, as some instrumentations write it, is one message. WrongKind for JSON cut
    short or a number: a call read without its input would load as a conversation never had."""
    value = maybe_json(attributes.get(name))
    if value is None and name in attributes and name.endswith("input.messages"):  # {"stringValue": null}
        raise WrongKind(f'"{name}" holds no value, not a list of messages')
    if value is None or isinstance(value, (list, dict)):
        return value
    if isinstance(value, str) and value.strip()[:1] not in ("[", "{"):
        return [{"role": default_role, "content": value}]
    what = "JSON that does not parse" if isinstance(value, str) else json_kind(value)
    raise WrongKind(f'"{name}" holds {what}, not a list of messages')


def _chat_messages(value) -> list[dict]:
    """v1.37+ ChatMessage list: {role, parts: [...]}, or OpenAI-style {role, content}."""
    if isinstance(value, dict):
        value = [value]
    out = []
    for m in listed(value):
        if not isinstance(m, dict):
            continue
        r = given_role(m.get("role"), "user")
        if "parts" in m:
            text = _parts_text(m.get("parts"))
            if any(isinstance(p, dict) and p.get("type") == "tool_call_response" for p in listed(m.get("parts"))):
                r = "tool"
        else:
            text = _openai_content(m)
        out.append({"role": r, "content": text})
    return out


def _parts_messages(value, default_role: str) -> list[dict]:
    if not value:
        return []
    if isinstance(value, str):
        return [{"role": default_role, "content": value}]
    text = _parts_text(value if isinstance(value, list) else [value])
    return [{"role": default_role, "content": text}] if text else []


def _parts_text(parts) -> str:
    return text_of(parts if isinstance(parts, list) else [parts])


def _openai_content(m: dict) -> str:
    text = text_of(m.get("content"))
    calls = [tool_call_text(mapping_of(c.get("function")).get("name") or c.get("name"),
                            mapping_of(c.get("function")).get("arguments", c.get("args", c.get("arguments"))))
             for c in listed(maybe_json(m.get("tool_calls"))) if isinstance(c, dict)]
    return "\n".join(x for x in [text, *calls] if x)


def _openai_messages(value) -> list[dict]:
    if isinstance(value, dict):
        value = value.get("messages") or [value.get("message", value)]
    return [{"role": given_role(m.get("role"), "user"), "content": _openai_content(m)}
            for m in listed(value) if isinstance(m, dict)]


def _indexed(a: dict) -> dict[str, list[dict]]:
    """OpenInference's llm.{input,output}_messages.{i}.message.* and OpenLLMetry's
    gen_ai.{prompt,completion}.{i}.* flattened attributes, as message lists in index order."""
    found: dict[str, dict[int, dict]] = {}
    for key, value in a.items():
        hit = INDEXED.match(key)
        if hit:
            prefix, index, rest = hit.group(1), int(hit.group(2)), hit.group(3)
            found.setdefault(prefix, {}).setdefault(index, {})[rest.removeprefix("message.")] = value
    out = {}
    for prefix, by_index in found.items():
        out[prefix] = [m for m in (_flat_message(by_index[i]) for i in sorted(by_index)) if m]
    return out


def _flat_message(fields: dict) -> dict | None:
    """One message from its flattened fields (OpenInference or OpenLLMetry suffixes)."""
    r = given_role(fields.get("role"), "user")
    text = text_of(fields.get("content")) if fields.get("content") not in (None, "") else ""
    if not text:
        parts = sorted((k for k in fields if k.startswith("contents.") and k.endswith("message_content.text")),
                       key=lambda k: int(k.split(".")[1]) if k.split(".")[1].isdigit() else 0)
        text = "\n".join(str(fields[k]) for k in parts)
    calls: dict[str, dict] = {}
    for key, value in fields.items():
        hit = re.match(r"^tool_calls\.(\d+)\.(?:tool_call\.)?(.+)$", key)
        if hit:
            calls.setdefault(hit.group(1), {})[hit.group(2)] = value
    for _, call in sorted(calls.items(), key=lambda kv: int(kv[0])):
        name = call.get("function.name") or call.get("name")
        args = call.get("function.arguments") or call.get("arguments")
        text = "\n".join(x for x in [text, tool_call_text(name, args)] if x)
    if "tool_call_id" in fields and r == "user":
        r = "tool"
    return {"role": r, "content": text} if text or fields.get("role") else None


def _event_messages(span: Span) -> tuple[list[dict], list[dict]]:
    inputs, outputs = [], []
    for name, _, attrs in sorted(span.events, key=lambda e: e[1]):
        # The events were log records with a body; as span events the body's fields are attributes, or
        # one JSON attribute (`body`, or `gen_ai.event.content` as Azure's instrumentations write it).
        packed = next((k for k in ("body", "gen_ai.event.content") if k in attrs), None)
        body = maybe_json(attrs[packed]) if packed else attrs
        body = body if isinstance(body, dict) else {"content": body}
        if name in MESSAGE_EVENTS:
            r = given_role(body.get("role"), MESSAGE_EVENTS[name])
            inputs.append({"role": r, "content": _openai_content(body)})
        elif name == "gen_ai.choice":
            message = maybe_json(body.get("message")) if "message" in body else body
            message = message if isinstance(message, dict) else {"content": message}
            outputs.append({"role": given_role(message.get("role"), "assistant"), "content": _openai_content(message)})
        elif name == "gen_ai.content.prompt":
            inputs += _openai_messages(maybe_json(attrs.get("gen_ai.prompt")))
        elif name == "gen_ai.content.completion":
            outputs += _openai_messages(maybe_json(attrs.get("gen_ai.completion")))
    return inputs, outputs


def evaluation_scores(span: Span) -> dict[str, float]:
    """gen_ai.evaluation.result events (v1.38+): evaluation name -> score value."""
    out = {}
    for name, _, attrs in span.events:
        if name == "gen_ai.evaluation.result" and attrs.get("gen_ai.evaluation.name") is not None:
            value = attrs.get("gen_ai.evaluation.score.value")
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                out[str(attrs["gen_ai.evaluation.name"])] = float(value)
    return out
