"""The scrubber: three layers, merged spans, typed and numbered placeholders.

1. regex: Presidio's pattern recognizers (email, card, IBAN, IP, SSN, URL...) plus flywheel's own
   (flywheel.core.scrub.recognizers: phone numbers, Luhn-checked cards, ticket, account, order, invoice
   and PO ids, API keys and tokens, cued licences and postcodes; flywheel.core.scrub.addresses: postal
   address blocks);
2. NER: spaCy through Presidio (persons, organisations, locations), batched with nlp.pipe, with the
   pipes neither NER nor the tagger needs disabled, widened by rules (flywheel.core.scrub.rules:
   proper-noun runs, whole names, names after cue words, lists of names);
3. lookup: the customer vocabulary from the CRM (flywheel.core.scrub.vocabulary).

Overlapping findings merge into one span covering all of them, so no fragment of a value survives.
Within one conversation the same value gets the same placeholder across turns ("[PERSON_1]" stays the
same person), and a bare first or last name joins the full name it belongs to.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from flywheel.core.scrub import rules
from flywheel.core.scrub import vocabulary as vocab_mod
from flywheel.core.scrub.addresses import find_addresses
from flywheel.core.scrub.keep_terms import SCRUBBER_VERSION, version_with
from flywheel.core.scrub.offline import load_spacy, use_bundled_public_suffix_list
from flywheel.core.scrub.recognizers import (
    REPLACED_PRESIDIO_RECOGNIZERS,
    all_recognizers,
)
from flywheel.settings import ScrubSettings

# Presidio warns about every recognizer of a language we do not load, on every engine it builds.
logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)

NER_RECOGNIZER = "SpacyRecognizer"

# entity type -> placeholder stem. Unlisted types use their own name.
PLACEHOLDER = {
    "PERSON": "PERSON", "EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "CREDIT_CARD": "CREDIT_CARD",
    "IBAN_CODE": "IBAN", "IP_ADDRESS": "IP_ADDRESS", "US_SSN": "SSN", "URL": "URL", "DOMAIN_NAME": "URL",
    "ORGANIZATION": "ORG", "LOCATION": "LOCATION", "GPE": "LOCATION", "STREET_ADDRESS": "ADDRESS",
    "ZIP_CODE": "POSTCODE", "REFERENCE_NUMBER": "REFERENCE", "US_DRIVER_LICENSE": "DRIVER_LICENSE", "US_PASSPORT": "PASSPORT",
    "US_BANK_NUMBER": "BANK_ACCOUNT", "CRYPTO": "CRYPTO_WALLET", "PROPER_NOUN": "NAME",
    vocab_mod.CUSTOMER: "CUSTOMER", vocab_mod.CUSTOMER_ORG: "CUSTOMER_ORG", vocab_mod.CUSTOMER_PRODUCT: "CUSTOMER_PRODUCT",
}
# The essay's "Sarah from Acme becomes [CUSTOMER] from [CUSTOMER_ORG]": known customers are not numbered.
UNNUMBERED = {"CUSTOMER", "CUSTOMER_ORG", "CUSTOMER_PRODUCT"}

# When findings overlap, the merged span takes the type of the most specific finding.
PRIORITY = [
    vocab_mod.CUSTOMER, vocab_mod.CUSTOMER_ORG, vocab_mod.CUSTOMER_PRODUCT,
    "API_KEY", "EMAIL_ADDRESS", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS", "CRYPTO",
    "TICKET_ID", "ACCOUNT_ID", "ORDER_ID", "INVOICE_ID", "PO_NUMBER", "REFERENCE_NUMBER", "USERNAME", "US_BANK_NUMBER", "US_PASSPORT",
    "US_DRIVER_LICENSE", "STREET_ADDRESS", "ZIP_CODE", "PHONE_NUMBER", "URL", "DOMAIN_NAME", "DATE",
    "PERSON", "ORGANIZATION", "LOCATION", "GPE", "PROPER_NOUN",
]
_RANK = {t: i for i, t in enumerate(PRIORITY)}

# What the analyzer is asked for; anything else Presidio knows (dates, NRP...) stays in the text.
PRESIDIO_ENTITIES = [
    "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "US_SSN", "URL", "CRYPTO",
    "US_DRIVER_LICENSE", "US_PASSPORT", "US_BANK_NUMBER", "PERSON", "ORGANIZATION", "LOCATION",
]


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    entity_type: str
    layer: str  # "regex" | "ner" | "lookup"

    def to_json(self) -> dict:
        return {"start": self.start, "end": self.end, "entity_type": self.entity_type, "layer": self.layer}


@dataclass
class ScrubbedText:
    text: str
    spans: list[Span] = field(default_factory=list)
    placeholders: list[str] = field(default_factory=list)  # one per span, same order


def _rank(span: Span) -> int:
    """A type the list does not know ranks as an identifier when a pattern found it (an approved
    pattern's POLICY_ID beats the NER's PROPER_NOUN over the same token), last otherwise."""
    return _RANK.get(span.entity_type, _RANK["PO_NUMBER"] if span.layer == "regex" else len(_RANK))


def merge_spans(spans: Iterable[Span]) -> list[Span]:
    """Union overlapping spans; the merged span keeps the highest-priority type (and its layer)."""
    merged: list[Span] = []
    for s in sorted(spans, key=lambda s: (s.start, -s.end)):
        if merged and s.start < merged[-1].end:
            last = merged[-1]
            best = min((last, s), key=_rank)
            merged[-1] = Span(last.start, max(last.end, s.end), best.entity_type, best.layer)
        else:
            merged.append(s)
    return merged


_EDGE = " \t\r\n,;:!?\"“”"
# Findings of names other than persons: their leading "the" is no part of the name.
_NAME_TYPES = ("ORGANIZATION", "PROPER_NOUN", "LOCATION", "GPE")
_POSSESSIVE = re.compile(r"['’]s?$")


def _tidy(text: str, span: Span) -> Span | None:
    """Drop whitespace, punctuation and a possessive a recognizer swept in ("Acme's" -> "Acme"), so
    the placeholder reads "[CUSTOMER_ORG]'s"; brackets and dots stay, they belong to phone numbers
    and initials."""
    value = text[span.start : span.end]
    start = span.start + len(value) - len(value.lstrip(_EDGE))
    end = span.end - (len(value) - len(value.rstrip(_EDGE)))
    if span.layer != "regex":
        possessive = _POSSESSIVE.search(text, start, end)
        if possessive and possessive.start() > start:
            end = possessive.start()
        # A name finding that stops inside a hyphenated token leaves its tail readable ("PLX-2231" of
        # "PLX-2231-43" left "-43"): it takes the whole token.
        while end < len(text) and end > start and text[end] == "-" and text[end + 1 : end + 2].isalnum():
            end += 1
            while end < len(text) and text[end].isalnum():
                end += 1
    if span.layer == "ner" and span.entity_type == "PERSON":  # not firms: "Best Buy" keeps its "Best"
        start = rules.without_courtesy(text, start, end)
    if span.layer == "ner" and span.entity_type in _NAME_TYPES:
        start = rules.without_determiner(text, start, end)
    if end <= start:
        return None
    return Span(start, end, span.entity_type, span.layer)


class Placeholders:
    """Typed, numbered placeholders, consistent across the turns of one conversation."""

    # Stems whose values are names: a bare first name joins the full name it belongs to.
    NAME_LIKE = {"PERSON", "NAME"}
    MISTAKEN_FOR_PLACES = {"LOCATION"}

    def __init__(self) -> None:
        self._numbers: dict[tuple[str, str], int] = {}
        self._counts: dict[str, int] = {}
        self._name_words: list[tuple[str, set[str], int]] = []  # (stem, words, number)
        self._customer_words: list[set[str]] = []

    def _is_known_customer(self, value: str) -> bool:
        """'Sarah' in a conversation where the CRM's 'Sarah Connor' already appeared."""
        words = set(vocab_mod.WORD.findall(vocab_mod.normalize(value)))
        return bool(words) and any(words <= known for known in self._customer_words)

    def __call__(self, entity_type: str, value: str) -> str:
        stem = PLACEHOLDER.get(entity_type, entity_type)
        if stem == "CUSTOMER":
            self._customer_words.append(set(vocab_mod.WORD.findall(vocab_mod.normalize(value))))
        if stem in self.NAME_LIKE and self._is_known_customer(value):
            return "[CUSTOMER]"
        if stem in self.MISTAKEN_FOR_PLACES:
            person = self._person_named(value)
            if person is not None:
                return person
        if stem in UNNUMBERED:
            return f"[{stem}]"
        key = (stem, vocab_mod.normalize(value))
        if key not in self._numbers:
            self._numbers[key] = self._name_alias(stem, key[1]) or self._next(stem)
        return f"[{stem}_{self._numbers[key]}]"

    def _person_named(self, value: str) -> str | None:
        """The placeholder of the person a one-word place finding names: spaCy's small model often tags a
        lone first name as a place ("Thanks Marta" after "Marta Kowalski" was a person)."""
        words = set(vocab_mod.WORD.findall(vocab_mod.normalize(value)))
        if len(words) != 1:
            return None
        if self._is_known_customer(value):
            return "[CUSTOMER]"
        number = next((n for stem, known, n in self._name_words if stem == "PERSON" and words <= known), None)
        return None if number is None else f"[PERSON_{number}]"

    def _next(self, stem: str) -> int:
        self._counts[stem] = self._counts.get(stem, 0) + 1
        return self._counts[stem]

    def _name_alias(self, stem: str, value: str) -> int | None:
        """'Sarah' after 'Sarah Connor' (or before it) is the same person."""
        if stem not in self.NAME_LIKE:
            return None
        words = set(vocab_mod.WORD.findall(value))
        for other_stem, other, number in self._name_words:
            if other_stem == stem and words and (words <= other or other <= words):
                self._name_words.append((stem, words, number))
                return number
        self._name_words.append((stem, words, self._counts.get(stem, 0) + 1))  # the number _next gives
        return None


def replace(text: str, spans: Sequence[Span], placeholders: Placeholders) -> ScrubbedText:
    out, names, cursor = [], [], 0
    for s in spans:
        name = placeholders(s.entity_type, text[s.start : s.end])
        out += [text[cursor : s.start], name]
        names.append(name)
        cursor = s.end
    out.append(text[cursor:])
    return ScrubbedText("".join(out), list(spans), names)


# A value shorter than this is not looked for: "42" as a customer id would hide every 42.
MIN_OWN_VALUE = 4


def hide_own_values(texts: Sequence[str], scrubbed: list[ScrubbedText], values: Iterable[str]) -> list[ScrubbedText]:
    """A conversation's scrubbed turns, with values known to be its own customer's (the trace's raw
    customer id, which no recognizer knows for an id) hidden too, as CUSTOMER_ID; numbering as one
    conversation, the other placeholders as they were. The turns as given when no value occurs."""
    patterns = [re.compile(rf"(?<!\w){re.escape(v)}(?!\w)") for v in values if len(v) >= MIN_OWN_VALUE]
    found = [[Span(m.start(), m.end(), "CUSTOMER_ID", "lookup") for p in patterns for m in p.finditer(t)] for t in texts]
    if not any(found):
        return scrubbed
    numbering = Placeholders()
    return [replace(t, merge_spans([*s.spans, *extra]), numbering) for t, s, extra in zip(texts, scrubbed, found)]


class Scrubber:
    """Stateless between calls: the models and recognizers are loaded once, nothing is remembered
    about the texts it has seen."""

    def __init__(self, settings: ScrubSettings | None = None, vocabulary: vocab_mod.CustomerVocabulary | None = None):
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine

        self.settings = settings or ScrubSettings()
        self.vocabulary = vocabulary or vocab_mod.CustomerVocabulary()
        self.keep_words = {w for term in self.settings.keep_terms for w in vocab_mod.WORD.findall(vocab_mod.normalize(term))}
        use_bundled_public_suffix_list()
        model_name, disabled = self.settings.spacy_model, tuple(self.settings.disabled_pipes)

        class OfflineSpacyEngine(SpacyNlpEngine):
            """Presidio's spaCy engine, loading the installed package with unused pipes off and
            never trying to download a model."""

            def load(self) -> None:
                self.nlp = {"en": load_spacy(model_name, disable=disabled)}

        ner_config = NerModelConfiguration(labels_to_ignore=["DATE_TIME", "NRP", "CARDINAL", "MONEY", "PERCENT",
                                                             "ORDINAL", "QUANTITY", "EVENT", "WORK_OF_ART",
                                                             "LAW", "LANGUAGE", "PRODUCT"])
        self.nlp_engine = OfflineSpacyEngine(models=[{"lang_code": "en", "model_name": model_name}],
                                             ner_model_configuration=ner_config)
        self.nlp_engine.load()
        rules.common_capitalised()  # the word-frequency table, read once per process (0.5 s), here not mid-batch
        self.analyzer = AnalyzerEngine(nlp_engine=self.nlp_engine, supported_languages=["en"])
        for name in REPLACED_PRESIDIO_RECOGNIZERS:
            self.analyzer.registry.remove_recognizer(name)
        recognizers = all_recognizers() + self._approved_patterns()
        for recognizer in recognizers:
            self.analyzer.registry.add_recognizer(recognizer)
        self.entities = PRESIDIO_ENTITIES + sorted(
            {e for r in recognizers for e in r.supported_entities} - set(PRESIDIO_ENTITIES)
        )

    @classmethod
    def from_files(cls, vocabulary=None, keep_terms=None, patterns=None, spacy_model: str | None = None) -> Scrubber:
        """The scrubber of a data directory: its customer vocabulary (CRM export), keep terms and approved
        patterns, each read when the file is there. VocabularyError or patterns.PatternError name a
        file that cannot be read."""
        from flywheel.core.scrub.patterns import load as load_patterns

        settings = ScrubSettings(keep_terms=sorted(vocab_mod.read_lines(keep_terms)) if keep_terms else [],
                                 extra_patterns=load_patterns(patterns),
                                 **({"spacy_model": spacy_model} if spacy_model else {}))
        exists = vocabulary is not None and Path(vocabulary).exists()
        return cls(settings, vocab_mod.CustomerVocabulary.from_csv(vocabulary) if exists else None)

    def _approved_patterns(self) -> list:
        """The patterns an admin approved from reported misses (flywheel.core.scrub.patterns)."""
        from presidio_analyzer import Pattern, PatternRecognizer

        by_type: dict[str, list] = {}
        for i, (entity, regex) in enumerate(self.settings.extra_patterns):
            by_type.setdefault(entity, []).append(Pattern(f"approved pattern {i + 1}", regex, 0.85))
        return [PatternRecognizer(supported_entity=entity, name=f"flywheel_approved_{entity.lower()}", patterns=found)
                for entity, found in by_type.items()]

    @property
    def version(self) -> str:
        """The code's version (SCRUBBER_VERSION, bumped when recognizers or merging change) and the lists
        it runs with, keep terms and approved patterns: a trace scrubbed with other lists was scrubbed by
        another scrubber. Each scrub report records it."""
        return version_with(SCRUBBER_VERSION, self.settings.keep_terms, self.settings.extra_patterns)

    # -- analysis --------------------------------------------------------------------------------

    def find_spans(self, texts: Sequence[str]) -> list[list[Span]]:
        """Merged spans per text, offsets into that text."""
        out: list[list[Span]] = []
        artifacts = self.nlp_engine.process_batch(list(texts), language="en", batch_size=self.settings.batch_size)
        for text, (_, nlp_artifacts) in zip(texts, artifacts):
            found: list[Span] = []
            if text.strip():
                results = self.analyzer.analyze(
                    text=text, language="en", entities=self.entities, nlp_artifacts=nlp_artifacts,
                    score_threshold=self.settings.score_threshold,
                )
                for r in results:
                    name = (r.recognition_metadata or {}).get("recognizer_name", "")
                    if name == NER_RECOGNIZER and rules.not_a_name(text[r.start : r.end]):
                        continue
                    found.append(Span(r.start, r.end, r.entity_type, "ner" if name == NER_RECOGNIZER else "regex"))
                found += [Span(s, e, kind, "regex") for s, e, kind in find_addresses(text)]
                found = self._widen_names(text, nlp_artifacts.tokens, found)
                found = [s for s in found if not self._is_kept(text, s) and not self._in_heading(text, s)]
                found += [Span(s, e, kind, "lookup") for s, e, kind in self.vocabulary.find(text)]
            joined = rules.join_fragments(text, merge_spans(t for t in (_tidy(text, s) for s in found) if t))
            out.append(merge_spans(kept for s in joined if not self._public_body(text, s)
                                   and (kept := self._unless_common(text, s))))
        return out

    def _unless_common(self, text: str, span: Span) -> Span | None:
        """The span, or None when it is a lone common noun with a capital: grown first over name-like
        words beside it ("Riverbend Plumbing"), whose name it then is."""
        if not self._common_noun(text, span):
            return span
        start, end = rules.name_around(text, span.start, span.end)
        return Span(start, end, span.entity_type, span.layer) if (start, end) != (span.start, span.end) else None

    @staticmethod
    def _public_body(text: str, span: Span) -> bool:
        """An NER finding that names a public body, a legal instrument or an office ("the District Court",
        "Criminal Code", "Legal Adviser"): see rules.public_body. Judged after the pieces are joined, so
        "President of the Court" is judged whole."""
        return span.layer == "ner" and span.entity_type in (*_NAME_TYPES, "PERSON") \
            and rules.public_body(text[span.start : span.end], span.entity_type)

    @staticmethod
    def _common_noun(text: str, span: Span) -> bool:
        """A one-word organisation or proper noun (not a person, not a place) that is a common noun with
        a capital ("the Court", "Export"): see rules.is_common_noun. Judged after the pieces of a name
        are joined, so "Lucid" of "Lucid and Loveland Technologies" stays."""
        return span.layer == "ner" and span.entity_type in ("ORGANIZATION", "PROPER_NOUN") \
            and rules.is_common_noun(text[span.start : span.end])

    @staticmethod
    def _in_heading(text: str, span: Span) -> bool:
        """An NER finding other than a person on a line in capitals ("THE FACTS"): a heading."""
        return span.layer == "ner" and span.entity_type != "PERSON" and rules.in_heading(text, span.start, span.end)

    def _is_kept(self, text: str, span: Span) -> bool:
        """An NER finding made only of the product's own words ("Settings", "Integrations") is not
        customer data. Regex and lookup findings are never kept."""
        if span.layer != "ner" or not self.keep_words:
            return False
        words = vocab_mod.WORD.findall(vocab_mod.normalize(text[span.start : span.end]))
        return bool(words) and all(w in self.keep_words for w in words)

    @staticmethod
    def _widen_names(text: str, doc, found: list[Span]) -> list[Span]:
        """The rule-based part of the NER layer (flywheel.core.scrub.rules): whole names around NER's
        persons, proper-noun runs the model left unlabelled, names after cue words, the speakers of a
        transcript, and the other members of a list of persons."""
        widened = []
        for s in found:
            if s.layer == "ner" and s.entity_type == "PERSON":
                s = Span(*rules.extend_person(text, s.start, s.end), s.entity_type, s.layer)
            widened.append(s)
        widened += [Span(s, e, kind, "ner") for s, e, kind in rules.proper_noun_runs(doc)]
        widened += [Span(s, e, kind, "ner") for s, e, kind in rules.cued_persons(text)]
        widened += [Span(s, e, kind, "ner") for s, e, kind in rules.self_introductions(text)]
        widened += [Span(s, e, kind, "ner") for s, e, kind in rules.speaker_labels(text)]
        persons = [(s.start, s.end) for s in widened if s.entity_type == "PERSON"]
        widened += [Span(s, e, kind, "ner") for s, e, kind in rules.list_persons(text, persons)]
        return widened

    # -- scrubbing -------------------------------------------------------------------------------

    def scrub_texts(self, texts: Sequence[str]) -> list[ScrubbedText]:
        """Each text on its own: numbering restarts per text."""
        return [replace(t, spans, Placeholders()) for t, spans in zip(texts, self.find_spans(texts))]

    def scrub_conversations(self, conversations: Iterable[Sequence[str]]) -> Iterator[list[ScrubbedText]]:
        """Scrub many conversations (lists of message contents), batching the NLP across them;
        numbering is shared by the turns of one conversation."""
        batch: list[Sequence[str]] = []
        for conv in conversations:
            batch.append(conv)
            if sum(len(c) for c in batch) >= self.settings.batch_size * 4:
                yield from self._scrub_batch(batch)
                batch = []
        if batch:
            yield from self._scrub_batch(batch)

    def _scrub_batch(self, batch: list[Sequence[str]]) -> Iterator[list[ScrubbedText]]:
        flat = [text for conv in batch for text in conv]
        spans = iter(self.find_spans(flat))
        texts = iter(flat)
        for conv in batch:
            numbering = Placeholders()
            yield [replace(next(texts), next(spans), numbering) for _ in conv]
