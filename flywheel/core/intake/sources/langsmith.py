"""LangSmith runs (the API's Run objects as JSON, or the bulk export's Parquet rows) as calls.

Run fields read (langsmith-sdk `langsmith/schemas.py` Run; docs "Run data format" and "Data export"):
id, trace_id, parent_run_id, run_type, start_time, inputs, outputs, extra.metadata, tags,
feedback_stats. LLM runs (run_type "llm") are the calls; a trace with none is read from its root run
(a chain run whose inputs hold messages). `extra.metadata.thread_id`, `session_id` or `conversation_id`
group a conversation (LangSmith threads); `Run.session_id` is the project, not the conversation.
"""

from __future__ import annotations

from collections import Counter

from flywheel.core.common.records import json_kind, listed, mapping_of
from flywheel.core.intake.sources import messages
from flywheel.core.intake.sources.assemble import Call
from flywheel.core.intake.sources.values import WrongKind, iso, label, maybe_json, sort_key

THREAD_KEYS = ("thread_id", "session_id", "conversation_id")


def is_run(record: dict) -> bool:
    return "run_type" in record and ("inputs" in record or "outputs" in record or "dotted_order" in record)


def call(record: dict, file: str, line: int, skipped: Counter) -> Call | str | None:
    """The call of one run; a string saying why it cannot be read; None when skipped (counted)."""
    if not record.get("id"):
        return "a LangSmith run needs an id"
    run_type = str(record.get("run_type") or "").lower()
    root = not record.get("parent_run_id")
    if run_type != "llm" and not root:
        skipped[f"LangSmith run_type {label(run_type or '?')} (not an LLM call)"] += 1
        return None
    extra = maybe_json(record.get("extra"))
    if extra is not None and not isinstance(extra, dict):  # its metadata groups the thread: not to be guessed
        raise WrongKind(f'"extra" is {json_kind(extra)}, not an object')
    extra = extra or {}
    metadata = mapping_of(maybe_json(extra.get("metadata")))
    inputs = messages.many(maybe_json(record.get("inputs")), "user")
    outputs = messages.many(maybe_json(record.get("outputs")), "assistant", strict=False)  # a model may answer "42"
    if not inputs and not outputs:
        skipped[f"LangSmith {label(run_type or 'run')} run without messages"] += 1
        return None
    trace = record.get("trace_id") or record["id"]
    group = next((metadata[k] for k in THREAD_KEYS if metadata.get(k)), trace)
    start = iso(record.get("start_time")) or ""
    feedback = maybe_json(record.get("feedback_stats")) or {}
    scores = {k: float(v["avg"]) for k, v in feedback.items()
              if isinstance(v, dict) and isinstance(v.get("avg"), (int, float))} if isinstance(feedback, dict) else {}
    model = (_reported_model(maybe_json(record.get("outputs"))) or metadata.get("ls_model_name")
             or mapping_of(extra.get("invocation_params")).get("model"))
    tags = maybe_json(record.get("tags")) or []
    return Call(group=group, trace_id=trace, start=start, order=sort_key(start, line), inputs=inputs, outputs=outputs,
                model=model, user=metadata.get("user_id"), metadata=metadata,
                tags=[str(t) for t in tags] if isinstance(tags, list) else [], scores=scores, file=file, line=line,
                call_id=str(record["id"]), fallback=run_type != "llm")



def _reported_model(outputs) -> str | None:
    """The model the provider says answered (a dated version), before the one that was asked for."""
    if not isinstance(outputs, dict):
        return None
    llm_output = outputs.get("llm_output") if isinstance(outputs.get("llm_output"), dict) else {}
    found = llm_output.get("model_name") or outputs.get("model")
    if not found:
        for batch in listed(outputs.get("generations")):
            for generation in batch if isinstance(batch, list) else [batch]:
                message = mapping_of(generation).get("message") or {}
                kwargs = message.get("kwargs") if isinstance(message, dict) else None
                metadata = (kwargs or message).get("response_metadata") if isinstance(kwargs or message, dict) else None
                if isinstance(metadata, dict) and metadata.get("model_name"):
                    return str(metadata["model_name"])
    return str(found) if found else None
