"""OpenAI-style chat logs: {"messages": [...]} per line (the fine-tuning and batch format). The id is
a hash of the content (the same conversation twice is one trace); the time is --timestamp, or the
file's modification time."""

from __future__ import annotations

import hashlib
import json

from flywheel.core.intake.sources import messages
from flywheel.core.intake.sources.assemble import Call


def is_chat(record: dict) -> bool:
    return (isinstance(record.get("messages"), list) or isinstance(_batch_body(record).get("messages"), list)) \
        and "trace_id" not in record


def _batch_body(record: dict) -> dict:
    """The Batch API's input line: {"custom_id", "method", "url", "body": {"model", "messages"}}."""
    body = record.get("body")
    return body if isinstance(body, dict) and "custom_id" in record else {}


def call(record: dict, file: str, line: int, timestamp: str) -> Call | str:
    body = _batch_body(record)
    if body:
        record = {**body, "metadata": {"custom_id": record.get("custom_id")}}
    found = messages.many(record.get("messages"), "user")
    if not found:
        return '"messages" holds no message'
    digest = hashlib.sha256(json.dumps(found, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:24]
    metadata = record.get("metadata") if isinstance(record.get("metadata"), dict) else {}
    # Each line is a conversation of its own; the same conversation on two lines is one trace id, so the
    # second is counted as a duplicate, as in any other file.
    return Call(group=f"line:{file}:{line}", trace_id=f"chat_{digest}", start=timestamp, order=line, inputs=found,
                outputs=[], model=record.get("model"), metadata=metadata, file=file, line=line,
                record_id=f"chat_{digest}")
