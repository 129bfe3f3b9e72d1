"""Where the fields only flywheel has come from: data/reference/trace_mapping.yaml.

No tracing standard has a cohort, an intent or a judge score. The mapping file lists, per field, the
places to look, first match wins:

    attribute:NAME   a span attribute (OpenTelemetry, OpenInference), e.g. attribute:app.cohort
    metadata:KEY     a key of the source's metadata (Langfuse, LangSmith extra.metadata, OpenInference
                     `metadata`), dotted for nested keys
    tag:NAME         a tag `NAME:value` or `NAME=value` (its value), or a bare tag `NAME` (true)
    score:NAME       a score (Langfuse), feedback (LangSmith) or gen_ai.evaluation.result (OTel) by name
    user             the source's user id (enduser.id / user.id, userId, metadata user_id)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flywheel.contracts import TRACE_FIELDS
from flywheel.core.intake.sources.assemble import Call

MAPPED_FIELDS = ("customer_id", "cohort", "intent", "judge_score", "guardrail_tripped", "retried", "handed_off", "csat")
KINDS = {f.name: f.kind for f in TRACE_FIELDS}
TRUE, FALSE = {"true", "yes", "y", "1", "t"}, {"false", "no", "n", "0", "f"}
PREFIXES = ("attribute:", "metadata:", "tag:", "score:")


class MappingError(ValueError):
    pass


@dataclass(frozen=True)
class Mapping:
    sources: dict[str, tuple[str, ...]]

    def __post_init__(self):
        # Each place turned into its reader once: apply() runs for every conversation of an ingest.
        parsed = {name: tuple((place, _reader(*place.partition(":")[::2])) for place in places)
                  for name, places in self.sources.items()}
        object.__setattr__(self, "_parsed", parsed)

    @classmethod
    def load(cls, path: str | Path) -> Mapping:
        import yaml

        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise MappingError(f"{path}: {exc.strerror or exc}") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise MappingError(f"{path}{f':{mark.line + 1}' if mark else ''}: not valid YAML") from None
        if not isinstance(raw, dict):
            raise MappingError(f"{path}: expected a mapping of field -> list of sources")
        sources = {}
        for name, places in raw.items():
            if name not in MAPPED_FIELDS:
                raise MappingError(f"{path}: {name!r} is not a mapped field ({', '.join(MAPPED_FIELDS)})")
            places = [places] if isinstance(places, str) else places
            if not isinstance(places, list) or not all(isinstance(p, str) for p in places):
                raise MappingError(f"{path}: {name}: expected a list of sources such as metadata:{name}")
            for place in places:
                if place != "user" and not (place.startswith(PREFIXES) and len(place.split(":", 1)[1]) > 0):
                    raise MappingError(f"{path}: {name}: {place!r} is not attribute:NAME, metadata:KEY, tag:NAME, "
                                       "score:NAME or user")
            sources[name] = tuple(places)
        return cls(sources)

    def apply(self, calls: list[Call]) -> tuple[dict, dict]:
        """(fields, where each came from) for one conversation's calls; the latest call wins."""
        values, used = {}, {}
        latest_first = calls[::-1]
        for name, places in self._parsed.items():
            for place, read in places:
                for call in latest_first:  # the latest call that has a value (an empty string is none)
                    found = read(call)
                    if found is not None and found != "":
                        break
                else:
                    continue
                values[name], used[name] = _coerce(name, found), place
                break
        return values, used


def _reader(kind: str, name: str) -> Callable[[Call], object]:
    """What one place reads from a call (None when the call does not have it)."""
    if kind == "user":
        return lambda call: call.user
    if kind == "attribute":
        if name.startswith("resource."):
            resource_name = name[len("resource."):]
            return lambda call: call.attributes[name] if name in call.attributes else call.resource.get(resource_name)
        return lambda call: call.attributes.get(name)
    if kind == "metadata":
        return functools.partial(_metadata, name.split("."))
    if kind == "score":
        return lambda call: call.scores.get(name)
    if kind == "tag":
        return functools.partial(_tag, name)
    return lambda call: None


def _metadata(path: list[str], call: Call):
    value = call.metadata
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _tag(name: str, call: Call):
    for tag in call.tags:
        for sep in (":", "="):
            if tag.startswith(name + sep):
                return tag[len(name) + 1:]
        if tag == name:
            return True
    return None


def _coerce(name: str, value):
    """A found value as its field's kind; one that does not convert is passed on as it is, so the
    contract's check quarantines the record naming the field ("judge_score must be a number, got a
    string"), rather than the field going quietly empty."""
    kind = KINDS[name]
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        return True if text in TRUE else False if text in FALSE else value
    if kind == "number":
        if isinstance(value, bool):
            return value
        try:
            return float(value)
        except (TypeError, ValueError, OverflowError):  # OverflowError: an integer past any float
            return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, (dict, list)) else str(value)
