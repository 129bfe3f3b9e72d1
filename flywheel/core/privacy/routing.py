"""Routing fields leave `raw` only in a known shape.

`intent`, `cohort` and `model_version` steer sampling and are shown to reviewers, but no scrubber ever
reads them: they are supposed to be labels a system chose (`billing_dispute`, `enterprise`,
`relay-assist-2026.03`), and a production export sometimes carries a customer's email, phone number or
free text there instead. Scrubbing them would not help (a scrubber finds PII in prose; a slug with a
name in it is not prose), so the rule is a shape: a value passes unchanged only when it looks like a
label, and is otherwise replaced by a typed placeholder, `[REDACTED_INTENT]`. A placeholder is itself
not a valid label, so shaping twice changes nothing.

A label here is one token of at most 64 characters: a letter or digit first, then letters, digits and
`_ . : -` (no spaces, no `@`, nothing a spreadsheet would execute), holding at least one letter and few
digits: at most 4 for an intent or a cohort, at most 12 (and no run longer than 8, so a build date such
as 20241022 passes) for a model version, which names dates and version numbers. An email, a phone
number, a card number or a sentence cannot take that shape. A customer's name written as a slug
(`acme-bakery`) can: where that matters, pass the known values as `allowed` and nothing else gets out.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

import polars as pl

ROUTING_FIELDS = ("intent", "cohort", "model_version")

_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
_LETTER = re.compile(r"[A-Za-z]")
_DIGIT_RUN = re.compile(r"\d+")

# field -> (most digits in all, longest run of digits)
DIGIT_LIMITS = {"intent": (4, 4), "cohort": (4, 4), "model_version": (12, 8)}
DEFAULT_DIGIT_LIMIT = (4, 4)


def placeholder(field: str) -> str:
    return f"[REDACTED_{field.upper()}]"


def is_known_shape(field: str, value: str) -> bool:
    """Does `value` look like a label a system chose for `field`?"""
    if not isinstance(value, str) or not _TOKEN.fullmatch(value) or not _LETTER.search(value):
        return False
    most, longest_run = DIGIT_LIMITS.get(field, DEFAULT_DIGIT_LIMIT)
    runs = _DIGIT_RUN.findall(value)
    return sum(map(len, runs)) <= most and all(len(r) <= longest_run for r in runs)


def shape(field: str, value: str | None, allowed: Collection[str] | None = None) -> str | None:
    """The value as it may leave `raw`: unchanged when it has the shape of a label (and, given an
    allow-list, is on it), else the field's placeholder. None stays None."""
    if value is None:
        return None
    if allowed is not None:
        return value if value in allowed else placeholder(field)
    return value if is_known_shape(field, value) else placeholder(field)


def shape_record(record: Mapping, allowed: Mapping[str, Collection[str]] | None = None) -> dict:
    """A copy of `record` with every routing field it holds shaped."""
    out = dict(record)
    for field in ROUTING_FIELDS:
        if field in out:
            out[field] = shape(field, out[field], (allowed or {}).get(field))
    return out


def shape_frame(frame: pl.DataFrame, allowed: Mapping[str, Collection[str]] | None = None) -> pl.DataFrame:
    """`frame` with its routing-field columns shaped, worked out once per distinct value."""
    changes = []
    for field in ROUTING_FIELDS:
        if field not in frame.columns or frame.schema[field] != pl.String:
            continue
        mapping = {v: shape(field, v, (allowed or {}).get(field)) for v in frame[field].drop_nulls().unique().to_list()}
        mapping = {v: shaped for v, shaped in mapping.items() if shaped != v}
        if mapping:
            changes.append(pl.col(field).replace(mapping))
    return frame.with_columns(changes) if changes else frame
