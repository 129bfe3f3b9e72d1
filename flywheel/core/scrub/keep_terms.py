"""Keep terms from reviewers: a placeholder that hid no personal data becomes a word the scrubber keeps.

A reviewer who reads "[NAME_3] under [ORG_2]" and knows the hidden words are the
product's or the domain's ("Convention", "Settings") marks those placeholders "not personal data" on
the label (terminal, spreadsheet, review page). That is a proposal, stored by placeholder: the reviewer
never sees the word, and nothing outside `raw` ever holds it unchecked.

An admin resolves the proposals (`flywheel keep-terms`): the trace is scrubbed again from raw, the
placeholder mapped back to the words under it, and each word counted across customers. A word found
in the traces of at least `min_customers` different customers is vocabulary, not one customer's value:
it is shown for approval. A word seen for fewer is held back and never shown (a reviewer may be wrong,
and a name is personal data). Only name findings (the NER layer) can be kept; an email or an id found
by a pattern, or a word of the customer vocabulary, stays redacted whatever a reviewer says.

The scrub station proposes words too: each week it counts, for every organisation or proper-noun
finding, the customers whose sampled traces hold it; a word hidden for at least min_customers customers
in one week is the product's or the domain's vocabulary ("Quantum Ledger", "Convention"), and is stored
in scrub.keep_candidates for the admin to approve like a reviewer's.

An approved word goes into <data>/reference/keep_terms.txt, which the next scrub reads. The scrubber
version every scrubbed trace and scrub/scrub_report record names the keep list it ran with
(version_with), and scrub.keep_term_changes keeps each decision with the version it led to.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from flywheel.core.common import clock
from flywheel.core.common.db import table_exists
from flywheel.core.scrub import vocabulary as vocab_mod

# The scrubber's own version (here, not in scrubber.py, so that reading it imports no Presidio); bump it
# when what the scrubber redacts changes.
SCRUBBER_VERSION = "7"  # 7: courtesies before a name stay readable, "I'm X" names a person; 6: public bodies, calendar dates, reference lists (5: common nouns with a capital, references, headings; 4: any-TLD emails)
PLACEHOLDER = re.compile(r"\[[A-Z][A-Z0-9_]*\]")
DEFAULT_MIN_CUSTOMERS = 5


def parse(text: str | None) -> tuple[list[str], list[str]]:
    """(placeholders, problems) from what a reviewer typed: placeholders such as [NAME_3],
    separated by spaces or commas."""
    if not text or not text.strip():
        return [], []
    tokens = [t for t in re.split(r"[\s,;]+", text.strip()) if t]
    bad = [t for t in tokens if not PLACEHOLDER.fullmatch(t)]
    found = list(dict.fromkeys(t for t in tokens if PLACEHOLDER.fullmatch(t)))
    return found, [f"{t!r} is not a placeholder such as [NAME_3]" for t in bad[:3]]


def ensure_tables(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute("CREATE SCHEMA IF NOT EXISTS scrub")
    conn.execute(
        """CREATE TABLE IF NOT EXISTS scrub.keep_proposals (
             label_id VARCHAR NOT NULL, trace_ref VARCHAR NOT NULL, placeholder VARCHAR NOT NULL,
             reviewer VARCHAR, proposed_at TIMESTAMP NOT NULL, scrubber_version VARCHAR,
             settled_revision INTEGER)"""
    )
    conn.execute(
        """CREATE TABLE IF NOT EXISTS scrub.keep_term_changes (
             revision INTEGER NOT NULL, term VARCHAR NOT NULL, decision VARCHAR NOT NULL,
             decided_by VARCHAR, decided_at TIMESTAMP NOT NULL, customers INTEGER, proposals INTEGER,
             scrubber_version VARCHAR NOT NULL)"""
    )


def propose(conn: duckdb.DuckDBPyConnection, label_id: str, trace_ref: str, placeholders: Iterable[str],
            reviewer: str | None) -> int:
    """Store a reviewer's "not personal data" placeholders on one scrubbed trace; returns how many."""
    ensure_tables(conn)
    version = None
    if table_exists(conn, "scrub", "anonymized_traces"):
        row = conn.execute("SELECT scrubber_version FROM scrub.anonymized_traces WHERE trace_ref = ? LIMIT 1",
                           [trace_ref]).fetchone()
        version = row[0] if row else None
    rows = [(label_id, trace_ref, p, reviewer, clock.now(), version, None) for p in dict.fromkeys(placeholders)]
    if rows:
        conn.executemany("INSERT INTO scrub.keep_proposals VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    return len(rows)


# ---------------------------------------------------------------------------------------------
# Mining: words the scrubber hides for many customers (run inside the scrub station)
# ---------------------------------------------------------------------------------------------

MINED_TYPES = ("ORGANIZATION", "PROPER_NOUN")


class Miner:
    """Collects, while a week is scrubbed, which customers' traces each name-like finding hid. Persons
    and places are never collected: a person's name is personal data however many people share it."""

    def __init__(self) -> None:
        self.customers: dict[str, set[str]] = {}
        self.traces: dict[str, int] = {}

    def observe(self, customer_ref: str | None, originals: list[str], scrubbed: list) -> None:
        if not customer_ref:
            return
        seen = set()
        for original, text in zip(originals, scrubbed):
            for span in text.spans:
                if span.layer == "ner" and span.entity_type in MINED_TYPES:
                    term = _term(original[span.start : span.end])
                    if term and term not in seen:
                        seen.add(term)
                        self.customers.setdefault(term, set()).add(customer_ref)
                        self.traces[term] = self.traces.get(term, 0) + 1

    def rows(self, week_start, min_customers: int = DEFAULT_MIN_CUSTOMERS) -> list[tuple]:
        """(week_start, term, customers, traces) of the words hidden for at least min_customers
        customers; the others are dropped here, never stored."""
        return sorted((week_start, term, len(refs), self.traces[term]) for term, refs in self.customers.items()
                      if len(refs) >= min_customers)


def store_mined(conn: duckdb.DuckDBPyConnection, week_start, rows: list[tuple]) -> None:
    """The week's mined words (a rerun of the week replaces them)."""
    conn.execute("CREATE SCHEMA IF NOT EXISTS scrub")
    conn.execute("""CREATE TABLE IF NOT EXISTS scrub.keep_candidates (
                      week_start TIMESTAMP NOT NULL, term VARCHAR NOT NULL, customers INTEGER NOT NULL,
                      traces INTEGER NOT NULL)""")
    conn.execute("DELETE FROM scrub.keep_candidates WHERE week_start = ?", [week_start])
    if rows:
        conn.executemany("INSERT INTO scrub.keep_candidates VALUES (?, ?, ?, ?)", rows)


def missing_in(messages: list[dict], placeholders: list[str]) -> list[str]:
    """The placeholders that appear in none of a scrubbed trace's messages (a typo, another trace's)."""
    shown = "\n".join(m["content"] or "" for m in messages)
    return [p for p in placeholders if p not in shown]


def missing_placeholders(conn: duckdb.DuckDBPyConnection, trace_ref: str, placeholders: list[str]) -> list[str]:
    """missing_in, for a trace of the warehouse."""
    if not placeholders or not table_exists(conn, "scrub", "anonymized_traces"):
        return []
    row = conn.execute("SELECT messages FROM scrub.anonymized_traces WHERE trace_ref = ? LIMIT 1", [trace_ref]).fetchone()
    return missing_in(row[0] if row else [], placeholders)


# ---------------------------------------------------------------------------------------------
# Resolving proposals (the only part that reads raw text; run by an admin)
# ---------------------------------------------------------------------------------------------

@dataclass
class Candidate:
    """One word behind proposed placeholders. `term` is None unless it may be shown: found for at
    least min_customers customers."""

    term: str | None
    status: str  # ready | held_back | not_a_name | decided
    customers: int = 0
    proposals: int = 0
    reviewers: set[str] = field(default_factory=set)
    traces: set[str] = field(default_factory=set)
    decision: str | None = None  # approved | rejected, for status "decided"
    sources: list[tuple[str, str]] = field(default_factory=list)  # (trace_ref, placeholder) proposals behind it
    mined_weeks: int = 0  # weeks in which the scrub station saw it hidden for many customers


@dataclass
class Resolution:
    candidates: list[Candidate] = field(default_factory=list)
    unresolved: list[tuple[str, str, str]] = field(default_factory=list)  # (trace_ref, placeholder, why)

    def ready(self) -> list[Candidate]:
        return [c for c in self.candidates if c.status == "ready"]


def resolve(conn: duckdb.DuckDBPyConnection, scrubber, *, min_customers: int = DEFAULT_MIN_CUSTOMERS,
            progress: Callable[[int], None] | None = None) -> Resolution:
    """Map every proposed placeholder back to its words by scrubbing its trace again from raw (the
    placeholders must come out as they were stored), and count each word's customers. `scrubber` may
    be None when no proposal waits (the mined words need none)."""
    out = Resolution()
    proposals, gone = [], []
    if table_exists(conn, "scrub", "keep_proposals") and table_exists(conn, "scrub", "anonymized_traces"):
        # A proposal settled by a decision is not read again: its trace may be scrubbed differently now.
        proposals = conn.execute(
            """SELECT p.trace_ref, p.placeholder, p.reviewer, a.messages FROM scrub.keep_proposals p
               JOIN scrub.anonymized_traces a USING (trace_ref) WHERE p.settled_revision IS NULL
               ORDER BY p.proposed_at, p.trace_ref""").fetchall()
        gone = conn.execute("""SELECT DISTINCT trace_ref, placeholder FROM scrub.keep_proposals
                               WHERE settled_revision IS NULL
                                 AND trace_ref NOT IN (SELECT trace_ref FROM scrub.anonymized_traces)""").fetchall()
    out.unresolved += [(ref, p, "the scrubbed trace is gone (erased or past retention)") for ref, p in gone]
    by_trace: dict[str, list[tuple[str, str | None]]] = {}
    stored: dict[str, list[str]] = {}
    for ref, placeholder, reviewer, messages in proposals:
        by_trace.setdefault(ref, []).append((placeholder, reviewer))
        stored[ref] = [m["content"] for m in messages]
    raw = {}
    if by_trace:
        from flywheel.core.scrub import station  # it imports the scrubber: Presidio and spaCy, seconds

        raw = station.raw_conversations(conn, list(by_trace))
    refs = [r for r in by_trace if r in raw]
    out.unresolved += [(ref, p, "its raw trace is gone (erased or past retention)")
                       for ref in by_trace if ref not in raw for p, _ in by_trace[ref]]
    words: dict[str, Candidate] = {}
    not_names: list[Candidate] = []
    texts = ([m["content"] for m in raw[ref][0]] for ref in refs)
    for ref, scrubbed in zip(refs, scrubber.scrub_conversations(texts) if refs else []):
        if progress:
            progress(1)
        if [s.text for s in scrubbed] != stored[ref]:
            why = ("scrubbed differently now (the scrubber or its lists changed since): ask for it again on the "
                   "trace's next scrub")
            out.unresolved += [(ref, p, why) for p, _ in by_trace[ref]]
            continue
        originals = [m["content"] for m in raw[ref][0]]
        for placeholder, reviewer in by_trace[ref]:
            hidden = [(original[s.start:s.end], s.layer) for original, text in zip(originals, scrubbed)
                      for s, name in zip(text.spans, text.placeholders) if name == placeholder]
            if not hidden:
                out.unresolved.append((ref, placeholder, "not in the trace's scrubbed text"))
                continue
            for value, layer in hidden:
                if layer != "ner":
                    not_names.append(Candidate(None, "not_a_name", proposals=1, reviewers={reviewer or "?"}, traces={ref}))
                    continue
                term = _term(value)
                if not term:
                    continue
                found = words.setdefault(term, Candidate(term, "held_back"))
                found.proposals += 1
                found.reviewers.add(reviewer or "?")
                found.traces.add(ref)
                found.sources.append((ref, placeholder))
    if table_exists(conn, "scrub", "keep_candidates"):
        for term, weeks, most in conn.execute(
                "SELECT term, count(*), max(customers) FROM scrub.keep_candidates GROUP BY term").fetchall():
            found = words.setdefault(term, Candidate(term, "held_back"))
            found.mined_weeks, found.customers = weeks, most
    decided = _decisions(conn)
    for term, candidate in words.items():
        if term in decided:
            candidate.status, candidate.decision = "decided", decided[term]
        if candidate.proposals:  # a reviewer's word is counted over all raw traces; a mined one was counted
            candidate.customers = customers_using(conn, term)  # by the station over its week's sample
        if candidate.customers >= min_customers:
            if candidate.status != "decided":
                candidate.status = "ready"
        else:
            candidate.term = None  # held back: never shown, never stored
            if candidate.status == "decided":
                candidate.status = "held_back"
    out.candidates = sorted(words.values(), key=lambda c: (c.status != "ready", -c.customers, c.term or "")) + not_names
    return out


ARTICLES = ("the ", "a ", "an ")


def _term(value: str) -> str:
    """The word(s) a finding hid, as the keep list holds them: "the Quantum Ledger" -> "quantum ledger"
    (an article the finding took in is not part of the name, and kept alone it would keep every "The")."""
    term = vocab_mod.normalize(value)
    for article in ARTICLES:
        term = term.removeprefix(article)
    return term.strip(" .,;:!?'\"()[]")


def customers_using(conn: duckdb.DuckDBPyConnection, term: str) -> int:
    """Distinct customers whose raw traces hold the term as whole words, in any case."""
    pattern = r"(^|[^\w])" + re.escape(term) + r"($|[^\w])"
    return conn.execute(
        """SELECT count(DISTINCT customer_id) FROM raw.traces
           WHERE customer_id IS NOT NULL AND contains(lower(CAST(messages AS VARCHAR)), ?)
             AND regexp_matches(lower(CAST(messages AS VARCHAR)), ?)""", [term, pattern]).fetchone()[0]


def waiting(conn: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """How much waits for an admin, without reading raw: mined words not decided yet, and placeholders
    reviewers marked that no decision settled."""
    decided = set(_decisions(conn))
    mined = {t for (t,) in conn.execute("SELECT DISTINCT term FROM scrub.keep_candidates").fetchall()} \
        if table_exists(conn, "scrub", "keep_candidates") else set()
    marked = conn.execute("SELECT count(*) FROM scrub.keep_proposals WHERE settled_revision IS NULL").fetchone()[0] \
        if table_exists(conn, "scrub", "keep_proposals") else 0
    return {"mined": len(mined - decided), "marked": marked}


def _decisions(conn: duckdb.DuckDBPyConnection) -> dict[str, str]:
    if not table_exists(conn, "scrub", "keep_term_changes"):
        return {}
    return dict(conn.execute(
        """SELECT term, decision FROM scrub.keep_term_changes
           QUALIFY row_number() OVER (PARTITION BY term ORDER BY revision DESC) = 1""").fetchall())


# ---------------------------------------------------------------------------------------------
# Decisions and the keep list's version
# ---------------------------------------------------------------------------------------------

def digest(terms: Iterable[str]) -> str:
    """A short fingerprint of a keep list: the same words in any order or case give the same one."""
    words = sorted({vocab_mod.normalize(t) for t in terms if t.strip()})
    return hashlib.sha256("\n".join(words).encode()).hexdigest()[:8] if words else ""


def decide(conn: duckdb.DuckDBPyConnection, keep_file: Path, candidate: Candidate, decision: str, by: str,
           base_version: str, patterns: Iterable[tuple[str, str]] = ()) -> str:
    """Approve (add to keep_file) or reject a ready candidate; returns the scrubber version the next
    scrub records."""
    if candidate.status != "ready" or not candidate.term:
        raise ValueError("only a candidate shown for approval can be decided")
    if decision not in ("approved", "rejected"):
        raise ValueError(f"decision is approved or rejected, not {decision!r}")
    ensure_tables(conn)
    terms = vocab_mod.read_lines(keep_file)
    if decision == "approved" and vocab_mod.normalize(candidate.term) not in {vocab_mod.normalize(t) for t in terms}:
        keep_file.parent.mkdir(parents=True, exist_ok=True)
        with open(keep_file, "a", encoding="utf-8") as fh:
            if keep_file.stat().st_size and not keep_file.read_text(encoding="utf-8").endswith("\n"):
                fh.write("\n")
            fh.write(candidate.term + "\n")
        terms = vocab_mod.read_lines(keep_file)
    version = version_with(base_version, terms, patterns)
    revision = conn.execute("SELECT coalesce(max(revision), 0) + 1 FROM scrub.keep_term_changes").fetchone()[0]
    conn.execute("INSERT INTO scrub.keep_term_changes VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                 [revision, candidate.term, decision, by, clock.now(), candidate.customers, candidate.proposals, version])
    conn.executemany("UPDATE scrub.keep_proposals SET settled_revision = ? WHERE trace_ref = ? AND placeholder = ?",
                     [(revision, ref, placeholder) for ref, placeholder in candidate.sources])
    return version


def version_with(base_version: str, keep_terms: Iterable[str], patterns: Iterable[tuple[str, str]] = ()) -> str:
    """The scrubber's version with the lists it runs with: "6", "6+keep.1a2b3c4d", and "+patterns.…"
    when approved patterns (flywheel.core.scrub.patterns) are in use."""
    version = base_version
    fingerprint = digest(keep_terms)
    if fingerprint:
        version += f"+keep.{fingerprint}"
    patterns = sorted(f"{entity}\t{regex}" for entity, regex in patterns)
    if patterns:
        version += "+patterns." + hashlib.sha256("\n".join(patterns).encode()).hexdigest()[:8]
    return version


def history(conn: duckdb.DuckDBPyConnection) -> list[dict]:
    if not table_exists(conn, "scrub", "keep_term_changes"):
        return []
    cols = ["revision", "term", "decision", "decided_by", "decided_at", "customers", "proposals", "scrubber_version"]
    return [dict(zip(cols, r)) for r in conn.execute(
        f"SELECT {', '.join(cols)} FROM scrub.keep_term_changes ORDER BY revision").fetchall()]
