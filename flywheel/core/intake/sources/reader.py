"""Files of any supported source into records of the trace contract, for the intake pipeline.

Calls are gathered from every file of one ingest, grouped into conversations across files (the
endpoint writes an hour per file; an exporter's batch may split a trace), and each conversation is
counted in the file holding its first call. A file's records are its conversations and its problems,
numbered in the order of the lines they come from; a problem's reason names its line (and span).
Spans or runs that are not LLM calls are counted by reason, never silently dropped.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from flywheel.core.intake.sources import chatlog, langfuse, langsmith, otel, phoenix
from flywheel.core.intake.sources import files as source_files
from flywheel.core.intake.sources.assemble import Call, group_calls, merge, wrappers_left_out
from flywheel.core.intake.sources.mapping import Mapping
from flywheel.core.intake.sources.otlp import OtlpError
from flywheel.core.intake.sources.values import WrongKind

EXCERPT = 2000
# Attributes the readers consume themselves (messages, ids, model, kind): never "unmapped".
CONSUMED_ATTRIBUTES = ("gen_ai.input.messages", "gen_ai.output.messages", "gen_ai.system_instructions",
                       "gen_ai.prompt", "gen_ai.completion", "llm.input_messages", "llm.output_messages",
                       "input.value", "output.value", "metadata", "tag.tags", "gen_ai.operation.name",
                       "gen_ai.response.model", "gen_ai.request.model", "gen_ai.conversation.id", "enduser.id",
                       "user.id", "session.id", "llm.model_name", "openinference.span.kind", "gen_ai.provider.name",
                       "gen_ai.system")

# Metadata keys a reader consumes itself: LangSmith's thread keys group the conversation, its user_id
# is the user and ls_model_name the model (never "unmapped", though the mapping file does not name them).
CONSUMED_METADATA = frozenset({*langsmith.THREAD_KEYS, "user_id", "ls_model_name"})


@dataclass
class Problem:
    reason: str
    excerpt: str = ""


@dataclass
class SourceRead:
    formats: dict[str, str] = field(default_factory=dict)  # file -> the format read
    prepared: dict[str, list[tuple[int, dict | Problem]]] = field(default_factory=dict)
    unreadable: dict[str, str] = field(default_factory=dict)  # file -> why it could not be read at all
    skipped: Counter = field(default_factory=Counter)  # reason -> spans or runs that are not LLM calls
    mapped: Counter = field(default_factory=Counter)  # "field <- source" -> conversations
    groups: list[tuple[list[Call], dict | Problem]] = field(default_factory=list)  # for --dry-run

    def native(self, path: Path) -> bool:
        """Whether the file is in flywheel's own contract (read by the intake as it always was)."""
        return self.formats.get(str(path)) == "flywheel"


def read(paths: list[Path], fmt: str, mapping: Mapping, *, timestamp: str | None = None,
         keep_groups: int = 0, on_read: Callable[[int], None] | None = None) -> SourceRead:
    """Every file's calls, grouped into conversations and mapped to the contract. `on_read(n)` hears of
    the records read (lines, elements, rows) as they are read."""
    import gc

    # Millions of small objects, none of them garbage until the read ends: the collector's passes over
    # them cost 40% of the read (measured on 200,000 spans).
    gc.disable()
    try:
        return _read(paths, fmt, mapping, timestamp, keep_groups, on_read or (lambda n: None))
    finally:
        gc.enable()


# on_read is called every READ_TICK records or READ_TICK_S seconds, whichever comes first: a progress
# bar keeps moving, and a call per record would cost.
READ_TICK, READ_TICK_S = 256, 0.2


def _read(paths: list[Path], fmt: str, mapping: Mapping, timestamp: str | None, keep_groups: int,
          on_read: Callable[[int], None]) -> SourceRead:
    out = SourceRead()
    calls: list[tuple[str, Call]] = []
    problems: dict[str, dict[int, Problem]] = {}  # file -> line -> what is wrong with it (one per line)
    native_gz: dict[str, list[tuple[int, dict | Problem]]] = {}
    last_line: dict[str, int] = {}
    joins = _Joins()
    for path in paths:
        name = str(path)
        if fmt in ("auto", "langfuse") and langfuse.in_export_manifests(path):
            out.formats[name] = "langfuse"
            out.skipped[langfuse.MANIFEST] += 1
            continue
        try:
            chosen = source_files.detect(path) if fmt == "auto" else fmt
        except (source_files.UnknownFormat, OSError) as exc:
            out.unreadable[name] = str(exc)
            continue
        out.formats[name] = chosen
        if chosen == "flywheel" and path.suffix.lower() != ".gz":
            if fmt == "auto" and path.suffix.lower() == ".json" and source_files.holds_no_records(path):
                out.prepared[name] = []  # `[]`, or an API page of no records: nothing, not a bad line
            continue  # the intake reads its own contract itself
        when = timestamp or _mtime(path)
        unreported, next_tick = 0, time.monotonic() + READ_TICK_S
        if chosen == "flywheel":
            native_gz[name] = []  # an empty one holds no record, and is no error
        try:
            for line, record in source_files.objects(path):
                last_line[name] = line
                unreported += 1
                if unreported >= READ_TICK or time.monotonic() >= next_tick:  # an OTLP line can hold 256 spans
                    on_read(unreported)
                    unreported, next_tick = 0, time.monotonic() + READ_TICK_S
                if chosen == "flywheel":  # a gzipped file of the contract: its records as they are
                    native_gz.setdefault(name, []).append(
                        (line, record if isinstance(record, dict) else Problem(record.reason, record.text)))
                    continue
                for found in _calls(chosen, record, name, line, when, out.skipped, joins):
                    if isinstance(found, Problem):
                        _add_problem(problems.setdefault(name, {}), line, found)
                    else:
                        calls.append((chosen, found))
        except (source_files.UnknownFormat, OSError, UnicodeDecodeError) as exc:
            out.unreadable[name] = str(exc) if not isinstance(exc, UnicodeDecodeError) else f"{path}: not UTF-8 text"
            out.formats.pop(name)
            problems.pop(name, None)
            native_gz.pop(name, None)
            calls = [(f, c) for f, c in calls if c.file != name]
        if unreported:
            on_read(unreported)
    langfuse.join_traces([call for chosen, call in calls if chosen == "langfuse"])
    otel.join_enclosing([call for chosen, call in calls if chosen in ("otel", "openinference")], joins.enclosing)
    for _, call in calls:
        call.scores.update(joins.scores.get(call.trace_id, {}))
    by_format: dict[str, list[Call]] = {}
    for chosen, call in calls:
        by_format.setdefault(chosen, []).append(call)
    placed: dict[str, list[tuple[int, dict | Problem]]] = {}
    for chosen, members in by_format.items():
        for key, group in group_calls(members).items():
            for wrapper in wrappers_left_out(group):
                out.skipped[_WRAPPERS.get(chosen, f"{_NAMES.get(chosen, chosen)} root run around LLM calls "
                                                  "(the calls are read instead)")] += 1
            try:
                record = _record(chosen, key, group, mapping, out.mapped)
            except _UNUSABLE as exc:
                record = Problem(f"line {group[0].line}: {unusable(exc, _NAMES.get(chosen, chosen))}")
            first = next((c for c in group if not c.fallback), group[0])  # its first call, a root run around it aside
            placed.setdefault(first.file, []).append((first.line, record))
            if len(out.groups) < keep_groups:
                out.groups.append((group, record))
    for name in out.formats:
        if name in native_gz:
            out.prepared[name] = native_gz[name]
        elif out.formats[name] != "flywheel":
            out.prepared[name] = _positions(placed.get(name, []), problems.get(name, {}), last_line.get(name, 0))
    return out


_WRAPPERS = {"langfuse": "Langfuse trace rows' own input and output (their GENERATION observations are read instead)"}
_NAMES = {"langsmith": "LangSmith", "langfuse": "Langfuse", "otel": "OpenTelemetry", "openinference": "OpenInference",
          "openai-chat": "chat log"}


def _add_problem(by_line: dict[int, Problem], line: int, problem: Problem) -> None:
    """One quarantined record per line: a line with several bad spans says so once, with all reasons."""
    if line in by_line:
        by_line[line].reason += "; " + problem.reason.split(": ", 1)[-1]
    else:
        by_line[line] = problem


def _positions(traces: list[tuple[int, dict | Problem]], problems: dict[int, Problem], last: int):
    """Each record's number in its file: a bad record keeps its physical line (what the quarantine and
    the report name); a conversation takes the line of its first call when no other record claims it,
    else (several conversations from one OTLP batch line) a number after the file's last line."""
    claimed = dict(problems)
    taken = {}
    for line, record in traces:
        taken.setdefault(line, []).append(record)
    extra = max([last, *claimed, *taken]) if (claimed or taken) else last
    out = [(line, p) for line, p in claimed.items()]
    for line, records in taken.items():
        for i, record in enumerate(records):
            if i == 0 and line not in claimed:
                out.append((line, record))
            else:
                extra += 1
                out.append((extra, record))
    return sorted(out, key=lambda item: item[0])


def _mtime(path: Path) -> str:
    import datetime as dt

    try:
        return dt.datetime.fromtimestamp(path.stat().st_mtime, tz=dt.timezone.utc).isoformat()
    except OSError:
        return ""


@dataclass
class _Joins:
    """What one record lends the calls of others, joined once every file is read."""
    scores: dict[str, dict] = field(default_factory=dict)  # trace id -> Langfuse score rows' {name: value}
    enclosing: dict[str, list] = field(default_factory=dict)  # trace id -> its skipped spans naming ids (otel)


def _calls(chosen: str, record, file: str, line: int, when: str, skipped: Counter,
           joins: _Joins) -> list[Call | Problem]:
    if isinstance(record, source_files.Bad):
        return [Problem(f"line {line}: {record.reason}", record.text)]
    counted = Counter()  # into `skipped` only when the whole record was read
    try:
        found = _calls_of(chosen, record, file, line, when, counted, joins)
    except WrongKind as exc:
        found = [Problem(f"line {line}: {exc}")]
    except _UNUSABLE as exc:
        found = [Problem(f"line {line}: {unusable(exc, _NAMES.get(chosen, chosen))}")]
    else:
        skipped.update(counted)
    if any(isinstance(f, Problem) for f in found):  # the excerpt only when something is wrong: a batch line is large
        excerpt = json.dumps(record, ensure_ascii=False, default=str)[:EXCERPT]
        for f in found:
            if isinstance(f, Problem) and not f.excerpt:
                f.excerpt = excerpt
    return found


# What a field of an unexpected type raises where a reader did not look before it leapt (a number
# where a list belongs, an infinite time). The readers check the shapes they know; this keeps one
# record they did not foresee from failing the whole ingest: it is quarantined instead.
_UNUSABLE = (TypeError, ValueError, AttributeError, KeyError, IndexError, OverflowError, RecursionError)


def unusable(exc: BaseException, source: str) -> str:
    """Why a record could not be read, naming the reader's step and never a value (an exception's
    message can quote one, and every field of a trace may hold customer data)."""
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/sources/" in f.filename]
    where = f" ({Path(frames[-1].filename).stem}.{frames[-1].name}: {type(exc).__name__})" if frames else ""
    return f"a field of this {source} record has a type or value the reader cannot use{where}"


def _calls_of(chosen: str, record: dict, file: str, line: int, when: str, skipped: Counter,
              joins: _Joins) -> list[Call | Problem]:
    if chosen in ("otel", "openinference"):
        if phoenix.is_row(record):
            return _phoenix_row(record, file, line, skipped)
        try:
            found, errors = otel.calls(record, file, line, skipped, joins.enclosing)
        except OtlpError as exc:
            return [Problem(f"line {line}: {exc}")]
        return [*found, *(Problem(f"line {line}: {e}") for e in errors)]
    if chosen == "langsmith":
        got = langsmith.call(record, file, line, skipped) if langsmith.is_run(record) else "not a LangSmith run"
    elif chosen == "langfuse":
        if langfuse.is_manifest(record):
            skipped[langfuse.MANIFEST] += 1
            return []
        if langfuse.is_score(record):
            found = langfuse.score(record)
            if found:
                joins.scores.setdefault(found[0], {})[found[1]] = found[2]
            skipped["Langfuse score rows (added to their traces' scores)"] += 1
            return []
        got = langfuse.calls(record, file, line, skipped) if (langfuse.is_trace(record) or langfuse.is_observation(
            record)) else ("a Langfuse trace needs an id" if "id" not in record and ("input" in record or "output" in record)
                           else "not a Langfuse trace, observation or score (no input, output or observations)")
    elif chosen == "openai-chat":
        got = chatlog.call(record, file, line, when) if chatlog.is_chat(record) else 'no "messages" list'
    else:
        got = f"unknown format {chosen}"
    if isinstance(got, str):
        return [Problem(f"line {line}: {got}")]
    return [] if got is None else (got if isinstance(got, list) else [got])


def _phoenix_row(record: dict, file: str, line: int, skipped: Counter) -> list[Call | Problem]:
    from flywheel.core.intake.sources import genai

    span = phoenix.span(record)
    if isinstance(span, str):
        return [Problem(f"line {line}: {span}")]
    reason = genai.skip_reason(span)
    if reason:
        skipped[reason] += 1
        return []
    inputs, outputs = genai.messages(span)
    if not inputs and not outputs:
        skipped[otel.NO_CONTENT] += 1
        return []
    return [otel._call(span, inputs, outputs, file, line)]


def _record(chosen: str, key: str, group: list[Call], mapping: Mapping, mapped: Counter) -> dict | Problem:
    messages = merge(group)
    first = group[0]
    calls = [c for c in group if not c.fallback] or group  # what merge() read
    if not messages:
        return Problem(f"line {first.line}: a conversation of {len(group)} LLM call(s) has no message text", "")
    # The first LLM call's time, not a root run's around it (the root's only when no call has one).
    start = min((c.start for c in calls if c.start), default="") or min((c.start for c in group if c.start), default="")
    fields, used = mapping.apply(group)
    metadata: dict = {}
    for call in group:
        metadata.update(call.metadata)
    tags = sorted({t for c in group for t in c.tags})
    scores = {k: v for c in group for k, v in c.scores.items()}
    sources = sorted({c.trace_id for c in group})
    metadata.update({"source_format": chosen, "source_traces": sources[:50], "llm_calls": len(calls)})
    if tags:
        metadata["tags"] = tags
    if scores:
        metadata["scores"] = scores
    record = {"trace_id": first.record_id or key, "timestamp": start, "messages": messages, "metadata": metadata, **fields}
    model = next((c.model for c in reversed(group) if c.model), None)
    if model:
        record["model_version"] = str(model)
    if not start:  # kept as assembled, so the conversation is in the quarantine, not lost
        kept = json.dumps({k: v for k, v in record.items() if k != "timestamp"}, ensure_ascii=False, default=str)
        return Problem(f"line {first.line}: a conversation of {len(group)} LLM call(s) has no timestamp "
                       "(none given, or none that reads as a time after 2000)", kept)
    for name, place in used.items():
        mapped[f"{name} <- {place}"] += 1
    return record


def mapped_sources(calls: list[Call], mapping: Mapping) -> dict[str, str]:
    return mapping.apply(calls)[1]


def unmapped_keys(calls: list[Call], mapping: Mapping) -> list[str]:
    """Attribute, metadata and tag names a source gave that no mapping entry reads (message attributes
    aside): what the mapping file could still use."""
    used = {place for places in mapping.sources.values() for place in places}
    keys = set()
    for call in calls:
        keys |= {f"attribute:{k}" for k in call.attributes
                 if not k.startswith(CONSUMED_ATTRIBUTES) and not k.startswith("resource.")}
        keys |= {f"metadata:{k}" for k in call.metadata if k not in CONSUMED_METADATA}
        keys |= {f"tag:{t.split(':', 1)[0].split('=', 1)[0]}" for t in call.tags}
        keys |= {f"score:{k}" for k in call.scores}
    return sorted(keys - used)
