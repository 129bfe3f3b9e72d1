"""Calls into conversations.

A *call* is one LLM call as a source recorded it: when, the messages that went in, the messages that
came out, and what the source knows around it (ids, attributes, metadata, tags, scores). Calls are
grouped by conversation (a conversation, session or thread id when the source has one, else the trace
id), ordered by start time, and merged: each call's input usually repeats the conversation so far, so
only what it adds is appended (the longest overlap between the end of the conversation and the start
of the input is dropped), then its output. A call whose input holds only the new turn appends all of
it. The result is one trace of the contract per group.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from flywheel.core.intake.sources.values import WrongKind, identifier, parse_time


@dataclass
class Call:
    group: str  # the conversation it belongs to
    trace_id: str  # the source's own trace (or run, or observation) id
    start: str  # ISO 8601 UTC, for the trace's timestamp
    order: float  # sort key within the group: epoch seconds, or the position read
    inputs: list[dict]
    outputs: list[dict]
    model: str | None = None
    user: str | None = None
    attributes: dict = field(default_factory=dict)
    resource: dict = field(default_factory=dict)  # OTel resource attributes, looked up as attribute:resource.NAME
    metadata: dict = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    scores: dict = field(default_factory=dict)
    file: str = ""
    line: int = 0
    record_id: str = ""  # the trace id to give the conversation, when not its group key
    call_id: str = ""  # the span, run or observation id: a batch an exporter sent twice adds nothing
    fallback: bool = False  # a wrapper (a chain run, a trace's own input) used only when its group has no LLM call

    def __post_init__(self):
        # The ids as text, whatever kind the source gave (WrongKind for a list, an object, true ...).
        self.group = identifier(self.group, "conversation id") or ""
        self.trace_id = identifier(self.trace_id, "trace id") or ""
        self.model = identifier(self.model, "model name")
        self.user = identifier(self.user, "user id")
        if self.start and parse_time(self.start) is None:  # sorted by position instead, it merged out of order
            raise WrongKind("the start time is text that does not read as an ISO 8601 time")


def _same(a: dict, b: dict) -> bool:
    return a.get("role") == b.get("role") and (a.get("content") or "").strip() == (b.get("content") or "").strip()


def _overlap(conversation: list[dict], inputs: list[dict]) -> int:
    """The longest k with conversation[-k:] == inputs[:k]."""
    for k in range(min(len(conversation), len(inputs)), 0, -1):
        if all(_same(x, y) for x, y in zip(conversation[-k:], inputs[:k])):
            return k
    return 0


def merge(calls: Iterable[Call]) -> list[dict]:
    calls = list(calls)
    real = [c for c in calls if not c.fallback]
    conversation: list[dict] = []
    for call in real or calls:
        inputs = [m for m in call.inputs if m.get("content") or m.get("role") != "system"]
        if any(m.get("role") == "system" for m in conversation):
            # The first call's instructions stand: a prompt holding the date changes them every call, and
            # a repeated history behind new instructions would not overlap and be appended again.
            inputs = [m for m in inputs if m.get("role") != "system"]
        conversation += inputs[_overlap(conversation, inputs):]
        conversation += call.outputs
    return [m for m in conversation if (m.get("content") or "").strip()]


def group_calls(calls: Iterable[Call]) -> dict[str, list[Call]]:
    groups: dict[str, list[Call]] = {}
    seen: set[tuple[str, str, str]] = set()
    for call in calls:
        if call.call_id:
            key = (call.group, call.trace_id, call.call_id)
            if key in seen:
                continue
            seen.add(key)
        groups.setdefault(call.group, []).append(call)
    for members in groups.values():  # wrappers stay for the mapping's lookups; merge() reads them only alone
        members.sort(key=lambda c: (c.order, len(c.inputs)))  # at one time, the longer history came later
    return groups


def wrappers_left_out(group: list[Call]) -> list[Call]:
    """The fallback calls merge() ignores because the group has real LLM calls."""
    return [c for c in group if c.fallback] if any(not c.fallback for c in group) else []
