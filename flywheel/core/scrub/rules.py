"""Rules that widen what spaCy's small NER model finds (layer "ner").

The statistical NER misses many names it has not seen (rare surnames, company names like "Persint",
non-English names) and cuts others short ("Batukayev" of "Sieda Batukayev"). Two cheap signals
recover most of them:

* the tagger: a run of capitalised tokens tagged as proper nouns (NNP/NNPS) is a name of some kind,
  even when NER gave it no label or no span at all;
* cue words: what follows "my name is", "Mr.", "calls me", "my kid"... is a person, also in text
  written all in lower case, where capitals mark nothing.

Both yield spans of a generic PROPER_NOUN type unless the cue says "person"; when they overlap an NER
span the merge keeps NER's more specific type.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from flywheel.core.scrub.addresses import REFERENCE_WORDS

PERSON = "PERSON"
ORGANIZATION = "ORGANIZATION"
PROPER_NOUN = "PROPER_NOUN"

# Capitalised words the tagger calls proper nouns but that name nobody: greetings, form labels and
# help-desk vocabulary. Short on purpose; labels followed by ":" are skipped anyway.
# Greetings and courtesies: the words a reply puts before a name ("Sorry Marta", "Thanks Lukas").
COURTESIES = {"hi", "hello", "hey", "dear", "thanks", "thank", "thx", "cheers", "regards", "best", "cool", "ok",
              "okay", "yes", "no", "please", "sorry"}
NOT_NAMES = COURTESIES | {
    "sir", "madam", "ma'am", "email", "e-mail", "ticket", "address",
    "phone", "mobile", "fax", "desk", "office", "name", "date", "account", "order", "invoice", "support",
    "team", "customer", "user", "users", "username", "bot", "admin", "st", "st.",
    # Dates are not names.
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "january", "february",
    "march", "april", "june", "july", "august", "september", "october", "november", "december",
}
# Help-desk jargon spaCy's small model likes to call organisations ("the SSO login", "the SLA breach").
JARGON = {"sso", "sla", "api", "csv", "pdf", "url", "vat", "faq", "atm", "pin", "vpn", "dns", "mfa", "2fa",
          "saml", "scim", "crm", "sms", "otp", "eta", "kb", "ui", "ux", "qa", "cc", "bcc", "id", "asap", "fyi",
          "ssn", "iban", "zip", "swift", "bic"}
ORG_WORDS = {"inc", "inc.", "llc", "ltd", "ltd.", "corp", "corp.", "corporation", "company", "co.", "group",
             "partners", "holdings", "gmbh", "plc", "ag", "sa", "bank", "software", "technologies",
             "systems", "labs", "solutions", "services", "associates", "sons"}
PROPER_TAGS = {"NNP", "NNPS"}


def not_a_name(value: str) -> bool:
    """An NER finding made only of greetings, labels and jargon ("Email", "Thanks", "SSO")."""
    words = re.findall(r"[\w'.-]+", value.lower())
    return bool(words) and all(w.strip(".") in NOT_NAMES | JARGON for w in words)


def _is_acronym(word: str) -> bool:
    """'SSO', 'SLA', 'ATM', 'IBAN': short all-capital words are product and process jargon."""
    return word.isupper() and len(word) <= 4


def _name_token(token) -> bool:
    text = token.text
    return (
        token.tag_ in PROPER_TAGS
        and text[:1].isupper()
        and not _is_acronym(text)
        and text.lower() not in NOT_NAMES
        and not _is_label(token)
    )


def _is_label(token) -> bool:
    """'Phone' in 'Phone: 555...' names a field."""
    nxt = token.nbor(1) if token.i + 1 < len(token.doc) else None
    return nxt is not None and nxt.text == ":" and not token.whitespace_


def proper_noun_runs(doc) -> list[tuple[int, int, str]]:
    """(start, end, type) of each run of proper-noun tokens, joined across initials ("Hanne I.
    Kreutzmann") and hyphens; ORGANIZATION when the run ends in a company word."""
    spans: list[tuple[int, int, str]] = []
    i = 0
    while i < len(doc):
        if not _name_token(doc[i]):
            i += 1
            continue
        j = i + 1
        # A title opens a name of its own: "Government Mr. T. Lehmann" is "Government", then a person.
        while j < len(doc) and (_name_token(doc[j]) or _is_initial(doc[j])) and not _TITLE.fullmatch(doc[j].text):
            j += 1
        while j > i + 1 and _is_initial(doc[j - 1]):
            j -= 1
        if j == i + 1 and (_interjection(doc[i]) or _reference_label(doc[i])):
            i = j
            continue
        if _in_heading(doc[i]):
            i = j
            continue
        kind = ORGANIZATION if doc[j - 1].text.lower() in ORG_WORDS else PROPER_NOUN
        spans.append((doc[i].idx, doc[j - 1].idx + len(doc[j - 1].text), kind))
        i = j
    return spans


def _reference_label(token) -> bool:
    """'Article' of 'Article 34', 'Rule' of 'Rule 33': a label before a number, not a name."""
    nxt = token.nbor(1) if token.i + 1 < len(token.doc) else None
    return token.text.lower() in REFERENCE_WORDS and nxt is not None and nxt.text[:1].isdigit()


def in_heading(text: str, start: int, end: int) -> bool:
    """The span lies on a line written all in capitals ("THE FACTS", "PROCEDURE"): a heading, whose
    capitals mark nothing."""
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line = text[line_start : line_end if line_end != -1 else len(text)]
    letters = [c for c in line if c.isalpha()]
    if len(letters) < 4 or not all(c.isupper() for c in letters):
        return False
    words = line.split()
    # One word alone on its line in capitals is a heading when the word is a common one ("PROCEDURE");
    # "JOHN" on a line of its own may be a signature.
    return len(words) >= 2 or (len(letters) >= 5 and is_common_noun(words[0].strip(".:").title()))


def _in_heading(token) -> bool:
    return in_heading(token.doc.text, token.idx, token.idx + len(token.text))


def _interjection(token) -> bool:
    """'Understood.' or 'Done!' as a sentence of its own: the tagger's NNP there is only the capital."""
    starts = token.i == 0 or token.nbor(-1).text in (".", "!", "?", "\n") or token.nbor(-1).is_space
    follows = token.nbor(1).text if token.i + 1 < len(token.doc) else "."
    return starts and follows in (".", "!", "?", ";")


def _is_initial(token) -> bool:
    t = token.text
    return len(t) <= 2 and t[:1].isupper() and (len(t) == 1 or t[1] == ".")


# "my name is X", "calls me X", "Mr. X", "my kid X": the words after the cue are a person's name.
_NAME_WORD = r"[^\W\d_][\w'’-]*"
PERSON_CUES = re.compile(
    r"(?i:\b(?:my\s+name\s+is|name\s+is|names?:|calls?\s+me|call\s+him|call\s+her|named|"
    r"my\s+(?:kid|son|daughter|wife|husband|partner|boss|friend|colleague|brother|sister|mother|father)|"
    r"(?:mr|mrs|ms|miss|dr|prof)\.?)\s+)"
    rf"({_NAME_WORD}(?:\s+(?:[^\W\d_]\.?\s+)?{_NAME_WORD})?)"
)
# Words a cue may be followed by that are not names ("my name is not correct", "my son is ill").
CUE_STOP = {"is", "was", "not", "the", "a", "an", "and", "in", "on", "at", "to", "from", "for", "of", "has",
            "had", "will", "would", "can", "could", "should", "but", "as", "with", "who", "that", "it",
            "this", "i", "me", "you", "he", "she", "they", "we", "my", "your", "his", "her", "our", "their",
            "correct", "incorrect", "wrong", "right", "misspelled", "spelled", "missing", "changed"}


def cued_persons(text: str) -> list[tuple[int, int, str]]:
    spans = []
    lower_case = not any(c.isupper() for c in text)
    for m in PERSON_CUES.finditer(text):
        words = [w for w in re.finditer(r"\S+", m.group(1))]
        if not (lower_case or words[0].group()[0].isupper()):
            continue  # "call me back": in ordinary text a name is capitalised
        keep = []
        for w in words:
            bare = w.group().strip(".,;:!?\"'").lower()
            if bare in CUE_STOP or not bare:
                break
            if keep and not lower_case and not w.group()[0].isupper():
                break  # "Ms Halford applied": in ordinary text a name's words have capitals
            keep.append(w)
            if not w.group()[-1].isalnum() and not (len(bare) == 1):  # punctuation ends the name
                break
        if keep:
            spans.append((m.start(1) + keep[0].start(), m.start(1) + keep[-1].end(), PERSON))
    return spans


# "I'm Lukas Meyer": who writes introduces themself. Only capitalised name-like words count, so "I'm
# locked out", "I'm Sorry" and "I'm not sure" name nobody.
_SELF_INTRODUCTION = re.compile(rf"\bI(?:['’]m|\s+am)\s+({_NAME_WORD}(?:\s+{_NAME_WORD})?)")


def self_introductions(text: str) -> list[tuple[int, int, str]]:
    spans = []
    for m in _SELF_INTRODUCTION.finditer(text):
        words = list(re.finditer(r"\S+", m.group(1)))
        keep = []
        for w in words:
            if not _name_like(w.group()):  # the pattern's words hold no punctuation
                break
            keep.append(w)
        if keep:
            spans.append((m.start(1) + keep[0].start(), m.start(1) + keep[-1].end(), PERSON))
    return spans


# Words that never start or continue a name when extending a span ("The", "and", "of"...).
_STOP = {"the", "a", "an", "and", "or", "of", "in", "on", "at", "to", "for", "from", "by", "with", "is", "was",
         "my", "your", "his", "her", "our", "their", "this", "that", "i", "we", "you", "he", "she", "they", "it"}
_WORD_AT = re.compile(r"[^\W\d_][\w'’-]*")


def _extendable(word: str) -> bool:
    base = re.split(r"['’]", word)[0].lower()  # "I'm" is "I"
    return word[:1].isupper() and not {word.lower(), base} & (_STOP | NOT_NAMES | JARGON) and not _is_acronym(word)


def extend_person(text: str, start: int, end: int) -> tuple[int, int]:
    """Grow a PERSON span to the whole words it cuts ("Hauta" of "Hauta-aho") and to the capitalised
    words right beside it on the same line ("Sieda" before "Batukayev", "Foldesy" after "Agnes")."""
    while end < len(text) and (text[end].isalnum() or (text[end] in "-'’" and end + 1 < len(text)
                                                       and text[end + 1].isalpha())):
        end += 1
    while start > 0 and (text[start - 1].isalnum() or (text[start - 1] == "-" and start > 1
                                                       and text[start - 2].isalpha())):
        start -= 1
    for _ in range(2):  # following surname or middle name
        m = _WORD_AT.match(text, end + 1) if text[end : end + 1] == " " else None
        if not (m and _extendable(m.group())):
            break
        end = m.end()
    before = re.search(r"([^\W\d_][\w'’-]*) $", text[max(0, start - 40) : start])
    # Not over a word before a title ("the Government Mr. T. Lehmann": a title opens a name) nor over a
    # common word with a capital ("Commission Mrs J. Liddy").
    if (before and _extendable(before.group(1)) and not _sentence_start(text, start - 1 - len(before.group(1)))
            and not _TITLE.match(text, start) and not is_common_noun(before.group(1))):
        start -= len(before.group(1)) + 1
    return _from_title(text, start, end), end


def _from_title(text: str, start: int, end: int) -> int:
    """A person span that holds a title after common words ("Government Mr M. Eaton") starts at the title."""
    for m in _TITLE_INSIDE.finditer(text, start, end):
        if m.start() > start and all(is_common_noun(w) or w.lower() in PUBLIC_HEADS | _STOP
                                     for w in text[start : m.start()].split()):
            return m.start()
    return start


_TITLES = "Mr|Mrs|Ms|Miss|Dr|Prof"
_TITLE = re.compile(rf"(?:{_TITLES}|Sir|Dame|Lord|Lady)\b\.?")
_TITLE_INSIDE = re.compile(rf"(?<=\s)(?:{_TITLES})\b\.?(?=\s)")


def _sentence_start(text: str, i: int) -> bool:
    """Position i begins the text or a sentence: its capital says nothing about a name."""
    head = text[:i].rstrip(" \t")
    return not head or head[-1] in ".!?\n:\"“"


# "A, B, C and D": members of one list are the same kind of thing.
_WORD_NOT_AND = r"(?!(?:and|or)\b)[^\W\d_][\w'’-]*"
_MEMBER = rf"{_WORD_NOT_AND}(?: {_WORD_NOT_AND})?"
NAME_LIST = re.compile(rf"{_MEMBER}(?:, {_MEMBER})+,? (?:and|or|&) {_MEMBER}")


def list_persons(text: str, persons: list[tuple[int, int]]) -> list[tuple[int, int, str]]:
    """When at least two members of an enumeration are persons, all its members are."""
    out = []
    for m in NAME_LIST.finditer(text):
        members = [(x.start() + m.start(), x.end() + m.start())
                   for x in re.finditer(rf"(?<![\w'’-]){_MEMBER}", m.group())]
        members = [(s, e) for s, e in members if text[s:e].split()[0].lower() not in _STOP]
        hits = sum(any(ps < e and s < pe for ps, pe in persons) for s, e in members)
        if hits >= 2:
            out += [(s, e, PERSON) for s, e in members]
    return out


# How often a word is written with a capital, against in lower case, from spaCy's English lexeme
# probabilities (spacy-lookups-data, log-probabilities over a large web corpus, case-sensitive). A
# capitalised word whose lower-case form is far more frequent is a common noun written with a capital
# ("the Court", "Convention rights", "the Government", "click Export"), not a name: "Court" is 4.8x
# rarer than "court", while "Jacob" is 20x commoner than "jacob" and "Smith" 7x commoner than "smith".
COMMON_MARGIN = 1.0  # natural log: the lower-case form at least e (2.7) times as frequent


@functools.lru_cache(maxsize=1)
def common_capitalised() -> frozenset[str]:
    """Title-case words ("Court") whose lower-case form is at least e times as frequent; empty when
    spacy-lookups-data is not installed."""
    import gzip

    try:
        import spacy_lookups_data
    except ImportError:
        return frozenset()
    path = Path(spacy_lookups_data.__file__).parent / "data" / "en_lexeme_prob.json.gz"
    try:
        import orjson as json_module
    except ImportError:  # orjson parses the 30 MB table in a third of the time; json works too
        import json as json_module
    probs = json_module.loads(gzip.decompress(path.read_bytes()))
    return frozenset(w for w, lp in probs.items() if w[:1].isupper() and w[1:].islower()
                     and probs.get(w.lower(), -1e9) - lp > COMMON_MARGIN)


def is_common_noun(value: str) -> bool:
    """One capitalised word that is usually written in lower case ("Court", "Settings"), possessive
    aside. One word only: a name made of common words ("Clean Power Finance") is still a name."""
    word = re.sub(r"['’]s?$", "", value.strip())
    return " " not in word and word[:1].isupper() and word in common_capitalised()


# Pieces of one name that NER and the tagger return apart ("Government" "of" "Turkey", "Workers and
# Peasants' Liberation Army"): joined, the reader sees one [ORG_1] instead of "[NAME_1] of [NAME_2]".
_JOINABLE = {ORGANIZATION, PROPER_NOUN, "LOCATION", "GPE"}
_CONNECTOR = re.compile(r" (?:of(?: the)?|for(?: the)?|de|del|des|du|di|der|and|&) |[-‐]")


def join_fragments(text: str, spans: list) -> list:
    """Adjacent name findings (NER layer) separated by one connector word, or a hyphen ("Weeks-Rivas"),
    become one span: ORGANIZATION when a piece is one, else the first piece's type. "and" and "&" join
    only when a piece is an organisation or follows the name of a public body ("Sarah and John" stay two
    people, "London and Paris" two places; "Convention for the Protection of Human Rights and Fundamental
    Freedoms" is one instrument)."""
    out = []
    for span in spans:
        prev = out[-1] if out else None
        gap = text[prev.end : span.start] if prev else ""
        if (prev is not None and prev.layer == span.layer == "ner" and prev.entity_type in _JOINABLE
                and span.entity_type in _JOINABLE and _CONNECTOR.fullmatch(gap)
                and (gap.strip() not in ("and", "&") or ORGANIZATION in (prev.entity_type, span.entity_type)
                     or head_word(text[prev.start : prev.end]) in PUBLIC_HEADS)):
            kind = ORGANIZATION if ORGANIZATION in (prev.entity_type, span.entity_type) else prev.entity_type
            out[-1] = type(span)(prev.start, span.end, kind, "ner")
        else:
            out.append(span)
    return out


# "Ella: What a wife.\nDestiny: Remember me": in a transcript the words before the colon at the start
# of a line are speakers. Two speaker lines with different names make a transcript; a label that is a
# common word ("Note:", "Steps:", "Expected:", "User:") or a form field is no speaker.
SPEAKER = re.compile(r"^[ \t>]*([^\W\d_][\w'’.-]*(?: [^\W\d_][\w'’.-]*)?)[ \t]*:(?!//)", re.MULTILINE)


def speaker_labels(text: str) -> list[tuple[int, int, str]]:
    found = []
    for m in SPEAKER.finditer(text):
        words = m.group(1).split()
        if any(w.lower().strip(".") in NOT_NAMES | JARGON or len(w) < 2 or _is_acronym(w) for w in words):
            continue
        if any(is_common_noun(w[:1].upper() + w[1:].lower()) for w in words):
            continue
        found.append((m.start(1), m.end(1), PERSON))
    return found if len({text[s:e].lower() for s, e, _ in found}) >= 2 else []


def _name_like(word: str) -> bool:
    """A capitalised word that can belong to a name: no stop word, label, jargon, acronym or common
    noun ("Riverbend" yes; "The", "Settings", "SSO" no)."""
    bare = re.split(r"['’]", word)[0]
    return (bare[:1].isupper() and bare.lower() not in _STOP | NOT_NAMES | JARGON and not _is_acronym(bare)
            and not is_common_noun(bare))


def name_around(text: str, start: int, end: int) -> tuple[int, int]:
    """The span grown over the name-like capitalised words right beside it on its line: "Plumbing" of
    "company Riverbend Plumbing" is the end of a company's name the model did not see, not a common noun."""
    for _ in range(2):
        m = _WORD_AT.match(text, end + 1) if text[end : end + 1] == " " else None
        if not (m and _name_like(m.group())):
            break
        end = m.end()
    for _ in range(2):
        before = re.search(r"([^\W\d_][\w'’-]*) $", text[max(0, start - 40) : start])
        if not (before and _name_like(before.group(1))):
            break
        start -= len(before.group(1)) + 1
    return start, end


# Public bodies, legal instruments and offices: written with capitals ("the District Court", "the
# Criminal Code", "the President of the Chamber", "the Home Office") but naming no customer and no
# person. What decides is the phrase's head, the noun that says what kind of thing it names: the last
# word, or the last before "of"/"for" ("Ministry of Justice", "Secretary of State"). A closed class of
# words of government and law, not names from any corpus. Left out on purpose: prisons, hospitals,
# schools and parties (where someone is, or what they believe), and states ("Czech Republic"), which
# stay places.
#
# Strong heads name a public body or instrument whatever stands before them ("Istanbul State Security
# Court", "the Turkish Government"). The others are also words of private firms ("Riverbend Travel
# Agency", "Baker Law", "Acme Legal Department"): the phrase is public only when every other word of
# it is a common word too ("the Social Insurance Office", "the Parole Board").
STRONG_HEADS = {
    "court", "courts", "tribunal", "government", "ministry", "commission", "chamber", "parliament", "senate",
    "congress", "judiciary", "gendarmerie", "prosecution", "prosecutor's", "ombudsman", "directorate", "inspectorate", "registry",
    "act", "convention", "constitution", "protocol", "treaty", "regulation", "regulations", "decree",
    "directive", "statute", "ordinance", "article", "articles",
}
PUBLIC_HEADS = STRONG_HEADS | {
    # bodies
    "office", "agency", "board", "council", "assembly", "police", "department",
    "section", "committee", "authority", "administration", "cabinet", "secretariat",
    # instruments
    "code", "rules", "rule", "law", "charter",
    # offices held
    "president", "vice-president", "mayor", "secretary", "minister", "chairman", "chairwoman", "chair",
    "agent", "delegate", "adviser", "advisor", "counsel", "registrar", "judge", "judges", "prosecutor",
    "chancellor", "constable", "governor", "commissioner", "rapporteur", "barrister", "barrister-at-law",
    "solicitor", "attorney", "deputy", "member", "members",
}
_DETERMINER = re.compile(r"^(?:the|The|THE)\s+")
_DETERMINER_AT = re.compile(r"(?:the|The|THE)\s+")  # for match(text, pos): "^" matches only at 0
_HEAD_CUT = re.compile(r"\s(?:of|for)\s")


def _head_phrase(value: str) -> str:
    """A capitalised phrase up to "of"/"for", without its "the" or bracketed tail ("the President of the
    Chamber (Rule 21" -> "President")."""
    return _HEAD_CUT.split(_DETERMINER.sub("", value.split("(")[0].strip()), maxsplit=1)[0]


def head_word(value: str) -> str:
    """The head of a capitalised phrase: the last word of its head phrase, lower case, no possessive."""
    return _last_word(_head_phrase(value))


def _last_word(phrase: str) -> str:
    """The last word, a year after it aside ("Act 1996"), lower case, no possessive."""
    words = [w for w in phrase.split() if not w.strip(",.").isdigit()]
    return re.sub(r"['’]s?$", "", words[-1]).lower() if words else ""


def public_body(value: str, kind: str) -> bool:
    """A body, instrument or office by its head word, or by its last word when the head is a
    nominalisation before "of" ("Misuse of Drugs Act", "Interception of Communications Tribunal"). Past
    a strong head, every word must be a common one (or a head, a stop word, a number): "Judge Hansen"
    is a person, "Riverbend Travel Agency" a firm."""
    words = _DETERMINER.sub("", value).split()
    if len(words) > 1 and words[0].lower().strip(".") in REFERENCE_WORDS and words[1][:1].isdigit():
        return True  # "Articles 44", "Rule 21": a reference to a text
    phrase = _head_phrase(value)  # "Mayor" of "Mayor of Warsaw"
    heads = {_last_word(phrase)} if kind == PERSON else {_last_word(phrase), _last_word(value.split("(")[0])}
    if not heads & PUBLIC_HEADS:
        return False
    if kind != PERSON and heads & STRONG_HEADS:
        return True
    return all(w.lower() in PUBLIC_HEADS | _STOP or is_common_noun(w) or w[:1].isdigit() for w in phrase.split())


_COURTESY_AT = re.compile(r"(?:(?:" + "|".join(sorted(COURTESIES, key=len, reverse=True)) + r")\b[\s,!]*)+",
                          re.IGNORECASE)


def without_courtesy(text: str, start: int, end: int) -> int:
    """Where a name finding starts once a greeting or courtesy before it is left out: "Sorry Marta" names
    Marta, and the reader keeps the "Sorry" ("Sorry [PERSON_1]")."""
    m = _COURTESY_AT.match(text, start, end)
    return m.end() if m and m.end() < end else start


def without_determiner(text: str, start: int, end: int) -> int:
    """Where a name finding starts once a leading "the" is left out: the article is not part of the name,
    and the reader keeps it ("the [ORG_1]")."""
    m = _DETERMINER_AT.match(text, start, end)
    return m.end() if m and m.end() < end else start
