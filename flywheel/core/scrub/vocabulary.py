"""The lookup layer: known customer names and companies from a CRM export.

Matching is case-insensitive on word boundaries: "ACME", "acme" and "Acme's" match the vocabulary
entry "Acme", "Acmeville" does not. Company names also match without their legal suffix ("Globex" for
"Globex Corporation"), since that is how people write them.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

PERSON_COLUMNS = ("contact_name", "name", "person", "full_name", "customer_name")
COMPANY_COLUMNS = ("company", "organization", "organisation", "org", "account_name", "company_name")
PRODUCT_COLUMNS = ("product", "product_name")
LEGAL_SUFFIXES = {
    "inc", "inc.", "llc", "ltd", "ltd.", "limited", "corp", "corp.", "corporation", "co", "co.", "gmbh", "ag",
    "plc", "sa", "s.a.", "bv", "b.v.", "holdings", "group", "international", "company",
}
# Entries shorter than this are skipped: two-letter "names" match too much ordinary text.
MIN_ENTRY_CHARS = 3
WORD = re.compile(r"\w+")

# Entity types the lookup layer emits.
CUSTOMER = "CUSTOMER"
CUSTOMER_ORG = "CUSTOMER_ORG"
CUSTOMER_PRODUCT = "CUSTOMER_PRODUCT"


class VocabularyError(ValueError):
    pass


def read_lines(path: str | Path) -> set[str]:
    """Non-empty lines of a plain list file (canaries, keep terms); '#' starts a comment line."""
    path = Path(path)
    if not path.exists():
        return set()
    lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    return {line for line in lines if line and not line.startswith("#")}


def normalize(text: str) -> str:
    return " ".join(text.split()).casefold()


@dataclass
class CustomerVocabulary:
    entries: dict[str, str] = field(default_factory=dict)  # normalized text -> entity type
    max_words: int = 0

    def add(self, text: str, entity_type: str) -> None:
        key = normalize(text)
        if len(key) < MIN_ENTRY_CHARS or not WORD.search(key):
            return
        # A person wins over a company of the same spelling: the stricter placeholder.
        if self.entries.get(key) != CUSTOMER:
            self.entries[key] = entity_type
        self.max_words = max(self.max_words, len(WORD.findall(key)))

    def add_company(self, name: str) -> None:
        self.add(name, CUSTOMER_ORG)
        words = name.split()
        while len(words) > 1 and words[-1].casefold().strip(",") in LEGAL_SUFFIXES:
            words = words[:-1]
            self.add(" ".join(words).rstrip(","), CUSTOMER_ORG)

    def __len__(self) -> int:
        return len(self.entries)

    @classmethod
    def from_csv(cls, path: str | Path) -> CustomerVocabulary:
        path = Path(path)
        vocab = cls()
        try:
            with open(path, newline="", encoding="utf-8-sig") as fh:
                reader = csv.DictReader(fh)
                header = [h.strip().lower() for h in (reader.fieldnames or [])]
                columns = {h: k for h, k in zip(header, reader.fieldnames or [])}
                persons = [columns[c] for c in PERSON_COLUMNS if c in columns]
                companies = [columns[c] for c in COMPANY_COLUMNS if c in columns]
                products = [columns[c] for c in PRODUCT_COLUMNS if c in columns]
                if not (persons or companies or products):
                    raise VocabularyError(
                        f"{path}:1: no name column; expected one of "
                        f"{', '.join(PERSON_COLUMNS + COMPANY_COLUMNS + PRODUCT_COLUMNS)}"
                    )
                for row in reader:
                    for col in persons:
                        vocab.add(row.get(col) or "", CUSTOMER)
                    for col in companies:
                        vocab.add_company(row.get(col) or "")
                    for col in products:
                        vocab.add(row.get(col) or "", CUSTOMER_PRODUCT)
        except OSError as exc:
            raise VocabularyError(f"{path}: cannot read the vocabulary: {exc.strerror or exc}") from exc
        except (csv.Error, UnicodeDecodeError) as exc:
            raise VocabularyError(f"{path}: not a readable CSV: {exc}") from exc
        return vocab

    def find(self, text: str) -> list[tuple[int, int, str]]:
        """(start, end, entity_type) of every entry in text, longest match first, no overlaps."""
        if not self.entries:
            return []
        words = [(m.start(), m.end()) for m in WORD.finditer(text)]
        found, i = [], 0
        while i < len(words):
            for n in range(min(self.max_words, len(words) - i), 0, -1):
                start, end = words[i][0], words[i + n - 1][1]
                kind = self.entries.get(normalize(text[start:end]))
                if kind:
                    found.append((start, end, kind))
                    i += n
                    break
            else:
                i += 1
        return found
