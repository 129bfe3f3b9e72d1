"""OpenAI-style chat logs: {"messages": [...]} per line (the fine-tuning and batch format). The id is
a hash of the content (the same conversation twice is one trace); the time is --timestamp, or the
file's modification time."""

from __future__ import annotations

import hashlib
import json

from flywheel.core.intake.sources import messages
from flywheel.core.intake.sources.assemble import Call


def is_chat(record: dict) -> bool:
    return isinstance(record.get("messages"), list) and "trace_id" not in record


def call(record: dict, file: str, line: int, timestamp: str) -> Call | str:
    found = messages.many(record["messages"], "user")
    if not found:
        return '"messages" holds no message'
    digest = hashlib.sha256(json.dumps(found, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:24]
    metadata = record.get("metadata") if isinstance(record.get("metadata"), dict) else {}
    return Call(group=f"chat_{digest}", trace_id=f"chat_{digest}", start=timestamp, order=line, inputs=found,
                outputs=[], model=record.get("model"), metadata=metadata, file=file, line=line)
