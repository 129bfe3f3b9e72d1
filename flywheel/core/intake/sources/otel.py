"""OpenTelemetry (GenAI conventions, OpenLLMetry) and OpenInference spans as calls."""

from __future__ import annotations

from collections import Counter

from flywheel.core.intake.sources import genai
from flywheel.core.intake.sources.assemble import Call
from flywheel.core.intake.sources.otlp import OtlpError, Span, spans
from flywheel.core.intake.sources.values import WrongKind, epoch_ns_to_iso, identifier, maybe_json

NO_CONTENT = ("LLM call without recorded messages (content capture is off? OpenTelemetry: set "
              "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true; OpenInference: unset OPENINFERENCE_HIDE_INPUTS "
              "and OPENINFERENCE_HIDE_OUTPUTS)")


# What an enclosing span (invoke_agent, a workflow) may carry for the calls inside it.
ENCLOSING_KEYS = ("gen_ai.conversation.id", "session.id", "enduser.id", "user.id")


def calls(doc: dict, file: str, line: int, skipped: Counter,
          enclosing: dict[str, list[Span]] | None = None) -> tuple[list[Call], list[str]]:
    """The LLM calls of one OTLP document (a line of a Collector file, or a request to the endpoint),
    and the problems of spans that could not be read. Spans that are not LLM calls are counted in
    `skipped` by reason; those naming a conversation or a user, or carrying an evaluation, are kept
    in `enclosing` by trace for join_enclosing."""
    found, problems = [], []
    for span in spans(doc):
        if isinstance(span, OtlpError):
            problems.append(str(span))
            continue
        reason = genai.skip_reason(span)
        if reason:
            skipped[reason] += 1
            if enclosing is not None and _may_enclose(span):
                enclosing.setdefault(span.trace_id, []).append(span)
            continue
        try:
            inputs, outputs = genai.messages(span)
            if not inputs and not outputs:
                skipped[NO_CONTENT] += 1
                continue
            found.append(_call(span, inputs, outputs, file, line))
        except WrongKind as exc:  # this span only: the batch line's other spans are read
            problems.append(f"span {span.span_id}: {exc}")
    return found, problems


# Spans beside a call, not around it: they lend it nothing (a retriever's documents are no attribute of the call).
_BESIDE = {"execute_tool", "embeddings", "tool", "retriever", "embedding", "reranker"}


def _may_enclose(span: Span) -> bool:
    a = span.attributes
    kind = str(a.get("gen_ai.operation.name") or a.get("openinference.span.kind") or "").lower()
    return kind not in _BESIDE and (any(k in a for k in ENCLOSING_KEYS) or bool(span.events))


def join_enclosing(calls: list[Call], enclosing: dict[str, list[Span]]) -> None:
    """The GenAI agent conventions put gen_ai.conversation.id (and an application its user) on the
    invoke_agent span around the chat calls, and an evaluation may be of the agent's span: a call
    without its own takes the conversation, the user, the scores and (for the mapping) the attributes
    of the spans of its trace that were skipped, as if it had them itself."""
    for call in calls:
        around = enclosing.get(call.trace_id)
        if not around:
            continue
        lent: dict = {}
        scores: dict = {}
        for span in around:
            lent.update(span.attributes)
            scores.update(genai.evaluation_scores(span))
        own = call.attributes
        try:
            if not any(k in own for k in ("gen_ai.conversation.id", "session.id")):
                call.group = identifier(lent.get("gen_ai.conversation.id") or lent.get("session.id"),
                                        "conversation id") or call.group
            call.user = call.user or identifier(lent.get("enduser.id") or lent.get("user.id"), "user id")
        except WrongKind:  # an enclosing span's id of the wrong kind lends nothing; the call stands as read
            pass
        call.attributes = {**lent, **own}
        call.scores = {**scores, **call.scores}


def _call(span: Span, inputs: list[dict], outputs: list[dict], file: str, line: int) -> Call:
    a = span.attributes
    group = a.get("gen_ai.conversation.id") or a.get("session.id") or span.trace_id
    metadata = maybe_json(a.get("metadata"))
    tags = a.get("tag.tags")
    return Call(
        group=group, trace_id=span.trace_id, start=epoch_ns_to_iso(span.start_ns) or "",
        order=span.start_ns, inputs=inputs, outputs=outputs,
        model=a.get("gen_ai.response.model") or a.get("gen_ai.request.model") or a.get("llm.model_name"),
        user=a.get("enduser.id") or a.get("user.id"),
        attributes=a, resource=span.resource,
        metadata=metadata if isinstance(metadata, dict) else {},
        tags=[str(t) for t in tags] if isinstance(tags, list) else [],
        scores=genai.evaluation_scores(span), file=file, line=line, call_id=span.span_id,
    )
