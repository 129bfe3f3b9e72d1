"""The scrubber resource: Presidio + spaCy for real, a regex-only fake for fast tests.

The real scrubber is loaded once per process and reused across runs' steps; loading spaCy costs about
half a second and a few hundred MB.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from flywheel.core.scrub.vocabulary import CustomerVocabulary

# The scrubber module imports Presidio (7 s on 2 cores): imported where a scrub happens, not by every
# Dagster run that loads the definitions (a fold-in never scrubs).
if TYPE_CHECKING:
    from flywheel.core.scrub.scrubber import ScrubbedText, Span
from flywheel.settings import ScrubSettings


def _existing(path: str | None) -> tuple[str | None, float]:
    """(path, mtime) when the file exists, so an edited file is picked up by the next run."""
    if path and Path(path).exists():
        return path, Path(path).stat().st_mtime
    return None, 0.0


@functools.lru_cache(maxsize=4)
def _load_scrubber(spacy_model: str, vocabulary: tuple[str | None, float], keep_terms: tuple[str | None, float],
                   patterns: tuple[str | None, float] = (None, 0.0)):
    from flywheel.core.scrub import Scrubber

    return Scrubber.from_files(vocabulary[0], keep_terms[0], patterns[0], spacy_model=spacy_model)


class ScrubberResource(dg.ConfigurableResource):
    """Station 2's scrubber. The vocabulary is the CRM export at vocabulary_path and the product's own
    words are in keep_terms_path, the patterns approved from reported misses in patterns_path, each used
    if the file exists."""

    spacy_model: str = ScrubSettings().spacy_model
    vocabulary_path: str | None = None
    keep_terms_path: str | None = None
    patterns_path: str | None = None

    def get(self):
        return _load_scrubber(self.spacy_model, _existing(self.vocabulary_path), _existing(self.keep_terms_path),
                              _existing(self.patterns_path))


class RegexOnlyScrubber:
    """FAKE for fast tests: emails, long digit runs and vocabulary entries only. Its real counterpart,
    flywheel.core.scrub.Scrubber, is tested on the real spaCy model in flywheel_tests/test_scrubber.py."""

    version = "fake-1"
    PATTERNS = [("EMAIL_ADDRESS", re.compile(r"\S+@\S+\.\w+")), ("ID", re.compile(r"[#\w-]*\d{4,}[\w-]*"))]

    def __init__(self, vocabulary: CustomerVocabulary | None = None):
        self.vocabulary = vocabulary or CustomerVocabulary()

    def _spans(self, text: str) -> list[Span]:
        from flywheel.core.scrub.scrubber import Span, merge_spans

        spans = [Span(m.start(), m.end(), kind, "regex") for kind, rx in self.PATTERNS for m in rx.finditer(text)]
        spans += [Span(s, e, kind, "lookup") for s, e, kind in self.vocabulary.find(text)]
        return merge_spans(spans)

    def scrub_conversations(self, conversations: Iterable[Sequence[str]]) -> Iterator[list[ScrubbedText]]:
        from flywheel.core.scrub.scrubber import Placeholders, replace

        for conv in conversations:
            numbering = Placeholders()
            yield [replace(t, self._spans(t), numbering) for t in conv]


class FakeScrubberResource(dg.ConfigurableResource):
    """FAKE: hands out a RegexOnlyScrubber, so asset tests run without loading spaCy."""

    vocabulary_path: str | None = None

    def get(self):
        path = self.vocabulary_path
        return RegexOnlyScrubber(CustomerVocabulary.from_csv(path) if path and Path(path).exists() else None)
