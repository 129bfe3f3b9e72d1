"""Patterns from reported misses: an identifier the scrubber let through becomes a pattern it knows.

A reviewer who finds customer data in a scrubbed trace reports the miss with its class (scrub.residue,
never the value). For the classes that are identifiers (order, ticket, account, policy numbers ...),
`flywheel residue` looks at what is still in those traces' scrubbed text and proposes the *shape* of
each identifier-like token as a pattern: "ZX-48213-Q" becomes `[A-Z]{2}-\\d{5}-[A-Z]`. The shape names no
customer; it is what an admin approves (`flywheel residue approve-pattern`), into
<data>/reference/pii_patterns.yaml, which the regex layer of the next scrub reads. The scrubber
version then names the pattern list too. A missed name or place is not a pattern: it belongs in the
customer vocabulary (the CRM export), which the proposal says.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from flywheel.core.common.db import table_exists

NAME_CLASSES = {"PERSON", "ORGANIZATION", "LOCATION", "GPE", "CUSTOMER", "CUSTOMER_ORG", "STREET_ADDRESS",
                "NAME", "ORG", "PROPER_NOUN", "NRP"}
# A token that may be an identifier: letters, digits and - _ / # . inside, at least three digits.
TOKEN = re.compile(r"(?<![\w\[])[A-Za-z0-9][\w\-/#.]*[A-Za-z0-9](?![\w\]])")
PLACEHOLDER = re.compile(r"\[[A-Z][A-Z0-9_]*\]")
DATE_OR_TIME = re.compile(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}|\d{1,2}[:.]\d{2}(?:[:.]\d{2})?|\d{1,2}(?:am|pm)",
                          re.IGNORECASE)


class PatternError(ValueError):
    pass


def shape(token: str) -> str:
    """The regex of a token's shape: runs of capitals, lower-case letters and digits by length,
    anything else as itself; bounded so that it never matches inside a longer word."""
    parts = []
    for run in re.finditer(r"[A-Z]+|[a-z]+|\d+|.", token):
        text = run.group()
        kind = "[A-Z]" if text.isupper() and text.isalpha() else "[a-z]" if text.isalpha() else "\\d" if text.isdigit() else None
        parts.append(f"{kind}{{{len(text)}}}" if kind and len(text) > 1 else kind or _literal(text))
    return r"(?<![\w-])" + "".join(parts) + r"(?![\w-])"


def _literal(char: str) -> str:
    """A separator as the regex reads it ("-" and "/" as themselves, "." escaped)."""
    return "\\" + char if char in ".^$*+?{}[]\\|()" else char


def identifier_like(token: str) -> bool:
    """At least three digits in five characters or more, not a date or a time; a bare number only from
    six digits (shorter ones are amounts, years, counts)."""
    if token.isdigit():
        return len(token) >= 6
    return sum(c.isdigit() for c in token) >= 3 and len(token) >= 5 and not DATE_OR_TIME.fullmatch(token)


def candidates_in(text: str) -> list[str]:
    """Identifier-like tokens left in a scrubbed text (placeholders aside)."""
    bare = PLACEHOLDER.sub(" ", text)
    return [m.group() for m in TOKEN.finditer(bare) if identifier_like(m.group())]


@dataclass
class Proposal:
    entity_type: str
    regex: str
    misses: int = 0
    traces: set[str] = field(default_factory=set)


@dataclass
class Proposals:
    patterns: list[Proposal] = field(default_factory=list)
    names: Counter = field(default_factory=Counter)  # class -> misses of a name-like class (vocabulary, not patterns)
    nothing_left: int = 0  # misses whose trace holds no identifier-like token any more (rescrubbed, or a name)


def propose(conn: duckdb.DuckDBPyConnection, known: list[tuple[str, str]] = ()) -> Proposals:
    """Pattern proposals from the reported misses of identifier classes, by shape; patterns already in
    the list (`known`, (entity, regex)) are left out."""
    out = Proposals()
    if not table_exists(conn, "scrub", "residue") or not table_exists(conn, "scrub", "anonymized_traces"):
        return out
    rows = conn.execute(
        """SELECT r.entity_type, r.trace_ref, a.messages FROM scrub.residue r
           JOIN scrub.anonymized_traces a USING (trace_ref) ORDER BY r.reported_at""").fetchall()
    have = {regex for _, regex in known}
    found: dict[tuple[str, str], Proposal] = {}
    for entity, ref, messages in rows:
        if entity in NAME_CLASSES:
            out.names[entity] += 1
            continue
        shapes = {shape(t) for m in messages for t in candidates_in(m["content"] or "")} - have
        if not shapes:
            out.nothing_left += 1
        for regex in sorted(shapes):
            proposal = found.setdefault((entity, regex), Proposal(entity, regex))
            proposal.misses += 1
            proposal.traces.add(ref)
    out.patterns = sorted(found.values(), key=lambda p: (-p.misses, p.entity_type, p.regex))
    return out


def load(path: str | Path | None) -> list[tuple[str, str]]:
    """(entity type, regex) of <data>/reference/pii_patterns.yaml: a list of {entity_type, regex}.
    A file that is not that shape, or a regex that does not compile, is a PatternError naming it."""
    if not path or not Path(path).exists():
        return []
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise PatternError(f"{path}{f':{mark.line + 1}' if mark else ''}: not valid YAML") from None
    if not isinstance(raw, list):
        raise PatternError(f"{path}: expected a list of {{entity_type, regex}}")
    out = []
    for i, item in enumerate(raw, 1):
        if not isinstance(item, dict) or not isinstance(item.get("entity_type"), str) or not isinstance(item.get("regex"), str):
            raise PatternError(f"{path}: entry {i}: expected entity_type and regex, both text")
        try:
            re.compile(item["regex"])
        except re.error as exc:
            raise PatternError(f"{path}: entry {i}: the regex does not compile ({exc})") from None
        out.append((item["entity_type"].strip().upper(), item["regex"]))
    return out


def approve(path: Path, entity_type: str, regex: str, by: str) -> bool:
    """Append a pattern to the list; False when it is there already."""
    try:
        re.compile(regex)
    except re.error as exc:
        raise PatternError(f"the regex does not compile ({exc})") from None
    if (entity_type.upper(), regex) in load(path):
        return False
    import datetime as dt

    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    entry = yaml.safe_dump([{"entity_type": entity_type.upper(), "regex": regex, "approved_by": by,
                             "approved_on": dt.date.today().isoformat()}], sort_keys=False, allow_unicode=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(entry)
    return True
