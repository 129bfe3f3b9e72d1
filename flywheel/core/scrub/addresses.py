"""Postal addresses, found from their shape rather than from a list of places.

An address is a street line followed by what usually follows it: units ("Apt. 12", "Suite 300"), then
city, state, country and postcode, separated by commas, line breaks or spaces. Street lines come in the
shapes postal formats use worldwide:

* number first: "1234 Maple Street", "17151 2450 Crown St", "74678 midtvollen 130";
* number last: "Villacher Strasse 89", "Rua do Arenque 1634", "ul. Chrzanowska 61" (after a cue such
  as "at", "on", "lives at", or with a street word in it);
* post boxes and military addresses: "P.O. Box 104", "PSC 1437, Box 3833 APO AA 66791";
* street corners: "the corner of Alsova 408 and Vedzizhev Greens".

The whole block becomes one STREET_ADDRESS span: a city or postcode left beside a redacted street still
locates the person.
"""

from __future__ import annotations

import re

STREET_ADDRESS = "STREET_ADDRESS"

# Words that end (or, in Romance and Slavic languages, start) a street name. Short on purpose: the
# number-first and number-last shapes do most of the work, these only vouch for the weaker shapes.
STREET_WORDS = {
    "street", "st", "str", "road", "rd", "avenue", "ave", "av", "avda", "drive", "dr", "lane", "ln", "way",
    "close", "court", "courts", "ct", "terrace", "place", "pl", "square", "squares", "sq", "boulevard",
    "blvd", "highway", "hwy", "parkway", "pkwy", "crescent", "row", "walk", "alley", "trail", "turnpike",
    "bypass", "circle", "cir", "grove", "gardens", "green", "greens", "park", "parks", "hill", "hills",
    "point", "mall", "loop", "pike", "plaza", "port", "ridge", "rapids", "island", "islands", "cliffs",
    "crossing", "dam", "extensions", "extension", "flat", "flats", "forge", "forges", "gateway", "harbor",
    "heights", "junction", "mews", "mill", "mills", "pass", "path", "route", "union", "valley", "view",
    "villa", "ville", "wells", "rue", "rua", "rúa", "via", "viale", "vicolo", "piazza", "piazzetta",
    "calle", "avenida", "camino", "ul", "ulica", "u", "utca", "út", "útja", "tér", "gata", "gate", "gatan",
    "vej", "vei", "veien", "vägen", "väg", "weg", "gasse", "strasse", "straße", "allee", "platz", "laan",
    "straat", "tee", "tie", "katu", "kuja", "stræde",
}
# Endings of compound street names ("Magasinsgatan", "Wingertweg", "Kiannonkatu").
STREET_ENDINGS = ("gata", "gatan", "gate", "vej", "veien", "vegen", "vägen", "weg", "gasse", "strasse",
                  "straße", "straat", "laan", "allee", "platz", "katu", "kuja", "tie", "stræde", "gade",
                  "braut", "straeti")
UNIT_WORDS = {"apt", "apartment", "suite", "ste", "unit", "flat", "floor", "fl", "room", "rm", "bldg",
              "building", "box", "no"}
# A number-last street needs one of these just before it, or a street word inside it.
CUES = {"at", "on", "to", "of", "in", "address", "addresses", "is"}
# Lower-case words that may sit inside a place name ("Mora de Rubielos", "Chiclana de la Frontera").
PARTICLES = {"de", "la", "del", "do", "da", "di", "dei", "der", "den", "van", "von", "le", "les", "e", "y",
             "am", "im", "upon", "sur", "el"}
# Lower-case words that end a street line: an address never runs through them.
FUNCTION_WORDS = {
    "the", "a", "an", "and", "or", "for", "to", "of", "in", "on", "at", "is", "are", "was", "were", "be",
    "with", "from", "by", "my", "your", "his", "her", "our", "their", "this", "that", "it", "i", "please",
    "but", "so", "if", "as", "me", "we", "you", "he", "she", "they", "will", "can", "has", "have", "had",
    "not", "no", "all", "any", "some", "then", "than", "when", "where", "which", "who", "what", "there",
}

TOKEN = re.compile(r"\d[\w\-]*\.?|[^\W\d_][\w'’\-]*\.?|\n|[^\w\s]")
MILITARY = re.compile(
    r"(?i)\b(?:(?:PSC|CMR|Unit)\s+\d{3,5},?\s+Box\s+\d{3,5}|(?:USNS|USS|USNV|USCGC)\s+[^\W\d_][\w'-]*)"
    r"\s*\n?\s*[ADF]PO\s+A[AEP]\s+\d{5}\b"
)
PO_BOX = re.compile(r"(?i)\b(?:P\.?\s?O\.?\s?Box|Post\s?(?:Office\s)?Box|Postbox|Postfach)\s+\d{1,6}\b")
CORNER = re.compile(r"(?i)\b(?:the\s+)?corner\s+of\s+")


class _Tokens:
    """The text as words, numbers, line breaks and punctuation, with offsets."""

    def __init__(self, text: str):
        self.text = text
        self.items = [(m.start(), m.end(), m.group()) for m in TOKEN.finditer(text)]

    def __len__(self) -> int:
        return len(self.items)

    def word(self, i: int) -> str:
        return self.items[i][2] if 0 <= i < len(self.items) else ""

    def bare(self, i: int) -> str:
        return self.word(i).rstrip(".").lower()

    def is_num(self, i: int, max_digits: int = 6) -> bool:
        w = self.word(i)
        return bool(w) and w[0].isdigit() and sum(c.isdigit() for c in w) <= max_digits

    def is_word(self, i: int) -> bool:
        w = self.word(i)
        return bool(w) and w[0].isalpha()

    def is_cap(self, i: int) -> bool:
        return self.is_word(i) and self.word(i)[0].isupper()

    def is_label(self, i: int) -> bool:
        """'Mobile' in 'Mobile: 555...' starts a new field, not a place."""
        return self.word(i + 1) == ":"

    def is_street_word(self, i: int) -> bool:
        b = self.bare(i)
        return self.is_word(i) and (b in STREET_WORDS or (len(b) > 6 and b.endswith(STREET_ENDINGS)))

    def is_name_word(self, i: int) -> bool:
        """A word that can be part of a street name: not a function word, not a field label."""
        return self.is_word(i) and self.bare(i) not in FUNCTION_WORDS and not self.is_label(i)

    def gap(self, i: int, j: int) -> str:
        """The text between token i and token j."""
        return self.text[self.items[i][1] : self.items[j][0]]


def _street_words(t: _Tokens, i: int, limit: int = 5) -> int:
    """Index after a run of up to `limit` street-name words starting at i, on one line."""
    j = i
    while j < len(t) and j - i < limit and t.is_name_word(j):
        if j > i and "\n" in t.gap(j - 1, j):
            break
        j += 1
    return j


def _number_first(t: _Tokens, i: int) -> int | None:
    """'1234 Maple Street', '17151 2450 Crown St', '28245 Puruntie 82': end index or None."""
    if not t.is_num(i):
        return None
    j = i + 1
    if t.is_num(j) and t.word(j)[-1] != ".":
        j += 1
    words_end = _street_words(t, j)
    if words_end == j:
        return None
    has_street_word = any(t.is_street_word(k) for k in range(j, words_end))
    if t.is_num(words_end, 5):  # house number after the street name
        return _tail(t, words_end + 1)
    if has_street_word:
        # Stop at the last street word: "Avenue Teboulbi St. the first..." keeps "Avenue Teboulbi St."
        last = max(k for k in range(j, words_end) if t.is_street_word(k))
        if all(t.is_cap(k) for k in range(j, words_end)):
            last = words_end - 1
        return last + 1
    if _is_unit(t, words_end):
        return words_end
    return None


def _number_last(t: _Tokens, i: int) -> int | None:
    """'Villacher Strasse 89', 'ul. Biskupa Bogedaina 118' after a cue, or with a street word."""
    if not (t.is_cap(i) or t.is_street_word(i)):
        return None
    words_end = _street_words(t, i, limit=4)
    if words_end == i or not t.is_num(words_end, 5) or t.is_num(words_end + 1):
        return None
    has_street_word = any(t.is_street_word(k) for k in range(i, words_end))
    cued = t.bare(i - 1) in CUES or t.word(i - 1) == ":"
    if not (has_street_word or (cued and words_end - i >= 1)):
        return None
    return _tail(t, words_end + 1)


def _tail(t: _Tokens, j: int) -> int:
    """After a house number, a second street part ending in a street word: 'Opus 420 Gairbekov Rapids'."""
    k = j
    while k < len(t) and k - j < 3 and t.is_cap(k) and not t.is_label(k) and "\n" not in t.gap(k - 1, k):
        k += 1
        if t.is_street_word(k - 1):
            return k
    return j


def _is_unit(t: _Tokens, i: int) -> bool:
    return (t.bare(i) in UNIT_WORDS and t.is_num(i + 1)) or (t.word(i) == "#" and t.is_num(i + 1))


def _separator(t: _Tokens, i: int) -> int | None:
    """Skip a comma or line breaks (and '>' quote marks) between address parts; None if none."""
    j, breaks = i, 0
    while j < len(t) and (t.word(j) in ("\n", ">") or (t.word(j) == "," and j == i)):
        breaks += t.word(j) == "\n"
        j += 1
    if breaks > 2:
        return None
    return j if j > i else None


def _units(t: _Tokens, j: int) -> int:
    """'Apt. 12', ', Suite 300', '\\n Suite 680', '#4', possibly several."""
    while True:
        k = _separator(t, j) or j
        if _is_unit(t, k):
            j = k + 2
        else:
            return j


def _locality(t: _Tokens, j: int) -> int:
    """City, state, country and postcode after a street line: 'Portland, OR 97201', '\\n LONDON\\n
    United Kingdom 75419', ', nan\\n 51971'. Returns the end index of what belongs to the address."""
    end = j
    for _ in range(6):
        sep = _separator(t, end)
        k = sep if sep is not None else end
        loose = sep is None  # only a space: accept only clearly place-like parts
        if k >= len(t):
            break
        if t.is_cap(k) and not t.is_label(k) and t.bare(k) not in FUNCTION_WORDS:
            m = k + 1
            while m < len(t) and (t.is_cap(m) or t.bare(m) in PARTICLES) and not t.is_label(m) and \
                    "\n" not in t.gap(m - 1, m) and t.gap(m - 1, m) in (" ", ""):
                m += 1
            while t.bare(m - 1) in PARTICLES:
                m -= 1
            end = m
        elif t.is_num(k, 6) and (not loose or sum(c.isdigit() for c in t.word(k)) >= 3):
            end = k + 1
            if t.is_num(end, 3) and t.gap(k, end) == " ":  # "394 13", "840 24"
                end += 1
        elif t.word(k) == "nan" and not loose:
            end = k + 1
        elif t.word(k) == "(" and t.is_cap(k + 1) and t.word(k + 2) == ")":  # "Cyprus (Greek)"
            end = k + 3
        else:
            break
    return end


def _street_end(t: _Tokens, i: int) -> int | None:
    return _number_first(t, i) or _number_last(t, i)


def _corner(t: _Tokens, text: str, start: int) -> tuple[int, int] | None:
    """'the corner of X and Y': both street names, up to the end of the second one."""
    i = next((k for k, (s, _, _) in enumerate(t.items) if s >= start), None)
    if i is None:
        return None
    j = i
    while j < len(t) and j - i < 7 and t.bare(j) != "and" and t.word(j) not in ("\n", ",", "?", "!"):
        j += 1
    if t.bare(j) != "and" or j == i:
        return None
    k = j + 1
    while k < len(t) and k - j <= 5 and (t.is_num(k) or t.is_name_word(k)) and "\n" not in t.gap(k - 1, k):
        k += 1
        if t.is_street_word(k - 1) and not t.is_street_word(k):
            break
    if k == j + 1:
        return None
    return t.items[i][0], t.items[k - 1][1]


def find_addresses(text: str) -> list[tuple[int, int, str]]:
    """(start, end, STREET_ADDRESS) for each address block in text."""
    if not any(c.isdigit() for c in text):
        return []
    found: list[tuple[int, int]] = []
    for m in MILITARY.finditer(text):
        found.append((m.start(), m.end()))
    for m in CORNER.finditer(text):
        corner = _corner(_Tokens(text), text, m.end())
        if corner:
            found.append((m.start(), corner[1]))
    t = _Tokens(text)
    for m in PO_BOX.finditer(text):
        k = next((idx for idx, (_, e, _) in enumerate(t.items) if e >= m.end()), None)
        if k is not None:
            end = _locality(t, _units(t, _tail(t, k + 1)))
            found.append((m.start(), t.items[end - 1][1]))
    i = 0
    while i < len(t):
        end = _street_end(t, i)
        if end is None:
            i += 1
            continue
        end = _locality(t, _units(t, end))
        found.append((t.items[i][0], t.items[end - 1][1]))
        i = end
    return [(s, e, STREET_ADDRESS) for s, e in found]
