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
ZIP_CODE = "ZIP_CODE"

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
YEAR = re.compile(r"(?:19|20)\d\d\.?")
STRONG_CUE = re.compile(r"(?i)(?:\b(?:live[sd]?|living|located|situated|address(?:es)?(?: is)?|corner of)\s+(?:\w+\s+)?"
                        r"(?:at|on|in|of)?|address(?:es)?\s*:)\s*$")
# Lower-case words that may sit inside a place name ("Mora de Rubielos", "Chiclana de la Frontera").
PARTICLES = {"de", "la", "del", "do", "da", "di", "dei", "der", "den", "van", "von", "le", "les", "e", "y",
             "am", "im", "upon", "sur", "el"}
# Lower-case words that end a street line: an address never runs through them.
FUNCTION_WORDS = {
    "the", "a", "an", "and", "or", "for", "to", "of", "in", "on", "at", "is", "are", "was", "were", "be",
    "with", "from", "by", "my", "your", "his", "her", "our", "their", "this", "that", "it", "i", "please",
    "but", "so", "if", "as", "me", "we", "you", "he", "she", "they", "will", "can", "has", "have", "had",
    "not", "no", "all", "any", "some", "then", "than", "when", "where", "which", "who", "what", "there",
    # Prepositions a street name never runs through ("the Court under Article 34").
    "under", "about", "after", "before", "since", "until", "within", "without", "between", "against", "during",
    "into", "over", "per", "through", "towards", "across", "among", "pursuant", "according",
}
# A number after these is a reference into a text or a list ("Article 34", "Rule 33 para. 3", "no. 12"),
# not a house number; month names make "6 November 2006" a date.
REFERENCE_WORDS = {"article", "art", "articles", "rule", "rules", "para", "paras", "paragraph", "paragraphs",
                   "section", "sec", "sections", "chapter", "chap", "protocol", "clause", "annex", "appendix",
                   "item", "page", "pages", "p", "pp", "step", "version", "v", "no", "nos", "number", "part",
                   "title", "schedule", "regulation", "directive", "act", "law", "§"}
MONTHS = {"january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
          "november", "december", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov",
          "dec"}

# Words may carry "∆", which some Greek exports use for "Δ".
TOKEN = re.compile(r"\d[\w\-]*\.?|[^\W\d_][\w'’\-∆]*\.?|\n|[^\w\s]")
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
        # In a text written all in lower case, capitals cannot mark names and places.
        self.lower_case = not any(c.isupper() for c in text)

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
        if self.lower_case:
            return self.is_word(i) and self.bare(i) not in FUNCTION_WORDS
        return self.is_word(i) and self.word(i)[0].isupper()

    def starts_fresh(self, i: int) -> bool:
        """Token i is not glued to the one before it ('96' in '41.173.96.26')."""
        before = self.word(i - 1)
        return i == 0 or self.gap(i - 1, i) != "" or not (before[-1].isalnum() or before[-1] in ".-")

    def is_state(self, i: int) -> bool:
        """'OR', 'NO', 'ON': a two- or three-letter region code, even when it spells a word."""
        w = self.word(i)
        return 2 <= len(w) <= 3 and w.isalpha() and w.isupper()

    def same_line(self, i: int, j: int) -> bool:
        return "\n" not in self.gap(i, j)

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
    if not t.is_num(i) or not t.starts_fresh(i) or (t.is_num(i - 1) and t.same_line(i - 1, i)):
        return None  # part of a phone number, an IP address or a decimal
    j = i + 1
    two_numbers = t.is_num(j) and t.gap(i, j) == " " and "." not in (t.word(i)[-1], t.word(j)[-1])
    if two_numbers:  # "<postcode or building> <house number> <street>"
        j += 1
    words_end = _street_words(t, j, limit=6)
    if words_end == j or t.bare(j) in MONTHS or t.bare(i - 1) in REFERENCE_WORDS | MONTHS:
        return None  # a date ("6 November 2006", "7 May 2004 State Security Courts"), or "para. 3 of the Rules"
    if t.is_num(words_end, 5) and t.same_line(words_end - 1, words_end):  # house number after the name
        return _tail(t, words_end + 1)
    street = [k for k in range(j, words_end) if t.is_street_word(k)]
    if street:
        # Keep the name up to its street word, and capitalised words after it ("Devon Street West"),
        # not the sentence that follows ("Main Street bridge").
        end = words_end
        while end - 1 > street[-1] and not t.is_cap(end - 1):
            end -= 1
        return end
    if (two_numbers and t.is_cap(j) and len(t.bare(j)) > 2) or _is_unit(t, words_end):
        return words_end
    return None


def _number_last(t: _Tokens, i: int) -> int | None:
    """'Villacher Strasse 89', 'ul. Biskupa Bogedaina 118', 'hegyalja út 98.': the house number is
    token i; the street name is the run of words before it. Returns the start index or None."""
    if not t.is_num(i, 5) or t.is_num(i + 1) and t.same_line(i, i + 1) or t.bare(i - 1) in REFERENCE_WORDS \
            or t.bare(i - 1) in MONTHS or t.bare(i + 1) in MONTHS:
        return None  # "Article 34", "Rule 33", "para. 3", "November 2006", "Court dated 6 November"
    start = i
    while start > 0 and i - start < 4 and t.is_name_word(start - 1) and t.same_line(start - 1, start) \
            and t.bare(start - 1) not in CUES:
        start -= 1
    if start == i:
        return None
    has_street_word = any(t.is_street_word(k) for k in range(start, i))
    cued = t.bare(start - 1) in CUES or t.word(start - 1) == ":" or (
        t.bare(start - 1) == "and" and t.is_cap(start - 2)  # "Katrina and Rua do Paseo 46": a corner
    )
    # One capitalised word and a number after "to" is as often "Windows 10" as a street: a single
    # word needs a street word after the number or a cue that speaks of living or addresses.
    one_word_ok = (i - start > 1 or t.is_street_word(i + 1) or t.bare(start - 1) == "and"
                   or STRONG_CUE.search(t.text, 0, t.items[start][0]))
    # Without a street word the name must look like one: capitalised words ("Joaquin Suarez 2906"),
    # not "Denver since 2019".
    name_like = all((t.is_cap(k) and len(t.bare(k)) > 1) or t.bare(k) in PARTICLES for k in range(start, i)) \
        and not YEAR.fullmatch(t.word(i))
    if has_street_word or (cued and t.is_cap(start) and one_word_ok and name_like):
        return start
    return None


def _tail(t: _Tokens, j: int) -> int:
    """After a house number, a second street part ending in a street word: 'Opus 420 Gairbekov Rapids'."""
    k = j
    while k < len(t) and k - j < 3 and t.is_cap(k) and not t.is_label(k) and "\n" not in t.gap(k - 1, k):
        k += 1
        if t.is_street_word(k - 1):
            return k
    return j


def _lead(t: _Tokens, start: int) -> int:
    """Words that belong before a street line: 'Serenade Opus 420 Gairbekov Rapids' (a street name
    before the house number) and 'Katrina and Rua do Paseo 46' (two streets of a corner)."""
    k = start
    while k > 0 and start - k < 3 and t.is_cap(k - 1) and t.bare(k - 1) not in CUES | FUNCTION_WORDS \
            and t.same_line(k - 1, k) and not t.is_label(k - 1) and not t.word(k - 1).endswith("."):
        k -= 1
    if k == start and t.bare(start - 1) == "and" and t.is_cap(start - 2) and t.same_line(start - 2, start):
        k = start - 2
    return k


def _is_unit(t: _Tokens, i: int) -> bool:
    return (t.bare(i) in UNIT_WORDS and t.is_num(i + 1)) or (t.word(i) == "#" and t.is_num(i + 1))


def _separator(t: _Tokens, i: int) -> int | None:
    """Skip a comma and line breaks (and '>' quote marks) between address parts; None if none."""
    j, breaks, commas = i, 0, 0
    while j < len(t) and (t.word(j) in ("\n", ">") or (t.word(j) == "," and commas == 0)):
        breaks += t.word(j) == "\n"
        commas += t.word(j) == ","
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


# Digits ("97201", "53-320"), or the second half of a UK or Canadian postcode ("6XE", "2H0").
POSTCODE_NUMBER = re.compile(r"\d{1,6}(?:-\d{2,4})?\.?|\d[A-Z]{2}|\d[A-Z]\d")


def _place_words(t: _Tokens, k: int) -> int:
    """End of a place name starting at k: 'Mora de Rubielos', 'Ostrov nad Ohri', 'KRISTIANSUND N'."""
    m = k + 1
    while m < len(t) and t.same_line(m - 1, m) and t.gap(m - 1, m) == " " and not t.is_label(m):
        if t.word(m - 1).endswith(".") and len(t.word(m - 1)) > 4:
            break  # "New Zealand. Please call me": the sentence ended
        if t.is_cap(m):
            m += 1
        elif t.is_word(m) and len(t.bare(m)) <= 3 and t.bare(m) not in FUNCTION_WORDS and t.is_cap(m + 1):
            m += 2  # a short particle between two capitalised words
        else:
            break
    return m


def _postcode(t: _Tokens, k: int, loose: bool) -> int | None:
    """End of a postcode or state number at k ('97201', '53-320', '394 13', ', 32'), else None."""
    if not (t.is_num(k, 6) and POSTCODE_NUMBER.fullmatch(t.word(k))):
        return None
    digits = sum(c.isdigit() for c in t.word(k))
    if loose and digits < 3 and not t.word(k)[-1].isalpha():
        return None
    nxt = k + 1
    if t.is_num(nxt) and t.same_line(k, nxt):
        # "394 13" and "840 24" are postcodes; "21 253 109 8211" is a phone number, not ours.
        if digits == 3 and len(t.word(nxt)) == 2 and not t.is_num(nxt + 1):
            return nxt + 1
        if digits <= 3 and not (t.is_num(nxt + 1) and t.same_line(nxt, nxt + 1)):  # ", 43 73313"
            return nxt + 1
        return None
    return nxt


def _locality(t: _Tokens, j: int) -> int:
    """City, state, country and postcode after a street line: 'Portland, OR 97201', '\\n LONDON\\n
    United Kingdom 75419', ', nan\\n 51971'. Returns the end index of what belongs to the address."""
    end = j
    for _ in range(6):
        sep = _separator(t, end)
        k = sep if sep is not None else end
        loose = sep is None  # only a space: accept only clearly place-like parts
        if k >= len(t) or (loose and t.word(end - 1).endswith(".") and len(t.word(end - 1)) > 4):
            break
        if (t.is_cap(k) and not t.is_label(k) and t.bare(k) not in FUNCTION_WORDS) or t.is_state(k):
            end = _place_words(t, k)
        elif _postcode(t, k, loose):
            end = _postcode(t, k, loose)
        elif t.word(k) == "nan":  # an empty field in exported data
            end = k + 1
        elif t.word(k) == "(" and t.is_cap(k + 1) and t.word(k + 2) == ")":  # "Cyprus (Greek)"
            end = k + 3
        else:
            break
    return end


def _corner(t: _Tokens, start: int) -> tuple[int, int] | None:
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


# "in Bjert 6091", "in OVERTURINGEN 840 24": a postcode right after a place name. Years are left alone.
PLACE_POSTCODE = re.compile(r"\bin\s+(?:[^\W\d_][\w'-]*\s+){1,3}?((?!19\d\d\b|20\d\d\b)\d{4,5}|\d{3}\s\d{2})(?![\w.,-]?\d)")


def find_postcodes(text: str) -> list[tuple[int, int, str]]:
    """(start, end, ZIP_CODE) of postcodes that follow a place name after "in"."""
    return [(m.start(1), m.end(1), ZIP_CODE) for m in PLACE_POSTCODE.finditer(text)
            if all(w[0].isupper() or text.islower() for w in m.group(0).split()[1:-1] if w[0].isalpha())]


def find_addresses(text: str) -> list[tuple[int, int, str]]:
    """(start, end, STREET_ADDRESS) for each address block in text, and (start, end, ZIP_CODE) for
    postcodes standing after a place name."""
    if not any(c.isdigit() for c in text):
        return []
    t = _Tokens(text)
    found: list[tuple[int, int]] = []
    for m in MILITARY.finditer(text):
        found.append((m.start(), m.end()))
    for m in CORNER.finditer(text):
        corner = _corner(t, m.end())
        if corner:
            found.append((m.start(), corner[1]))
    for m in PO_BOX.finditer(text):
        k = next((idx for idx, (_, e, _) in enumerate(t.items) if e >= m.end()), None)
        if k is not None:
            end = _locality(t, _units(t, _tail(t, k + 1)))
            found.append((m.start(), t.items[end - 1][1]))
    i = 0
    while i < len(t):
        # A number ending a street name wins over the same number starting one: in "Via Tasso 129
        # street" the address is "Via Tasso 129", not "129 street".
        start, end = _number_last(t, i), i + 1
        if start is not None:
            end = _tail(t, end)
        else:
            start, end = i, _number_first(t, i)
            if end is None:
                i += 1
                continue
        start = _lead(t, start)
        end = _locality(t, _units(t, end))
        found.append((t.items[start][0], t.items[end - 1][1]))
        i = end
    return [(s, e, STREET_ADDRESS) for s, e in found] + find_postcodes(text)
