"""OpenTelemetry (GenAI conventions, OpenLLMetry) and OpenInference spans as calls."""

from __future__ import annotations

from collections import Counter

from flywheel.core.intake.sources import genai
from flywheel.core.intake.sources.assemble import Call
from flywheel.core.intake.sources.otlp import OtlpError, Span, spans
from flywheel.core.intake.sources.values import WrongKind, epoch_ns_to_iso, maybe_json

NO_CONTENT = ("LLM call without recorded messages (content capture is off: set "
              "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true in the application)")


def calls(doc: dict, file: str, line: int, skipped: Counter) -> tuple[list[Call], list[str]]:
    """The LLM calls of one OTLP document (a line of a Collector file, or a request to the endpoint),
    and the problems of spans that could not be read. Spans that are not LLM calls are counted in
    `skipped` by reason."""
    found, problems = [], []
    for span in spans(doc):
        if isinstance(span, OtlpError):
            problems.append(str(span))
            continue
        reason = genai.skip_reason(span)
        if reason:
            skipped[reason] += 1
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
