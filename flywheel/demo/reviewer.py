"""SIMULATION. A reviewer who labels the review queue from the generator's answer file.

Recorded as reviewer `demo-simulated`. Like a person with a Monday hour to spare, it looks at the top
of each week's queue only (anomalies first) and labels what it sees: a failure of a known code, a
failure nobody has named yet (the enterprise SLA misses: it opens the taxonomy entry the first time),
or not a bug. Attacks follow the essay's rule: an injection becomes an adversarial row only when the
queue flags its prompt as unlike every adversarial row already in the set (an adversarial
candidate); a repeat of a known attack is skimmed and skipped. It also checks the scrubbed text against the PII it knows the trace held, so a scrubber
miss becomes a residue entry, as a careful reviewer's would. Where the loop suggested a label, the
suggestion is recorded with the label (which the truth decides), so the story counts how often it was right.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from pathlib import Path

import duckdb
import polars as pl

from flywheel.core.common import keys
from flywheel.core.drift.embeddings import Embedder
from flywheel.core.labeling import labels, taxonomy
from flywheel.core.labeling.queue import mark_adversarial_candidates, review_queue
from flywheel.core.labeling.siblings import find_siblings
from flywheel.core.labeling.suggestions import suggestions_for
from flywheel.demo.generator import FAILURE_TRUTH

REVIEWER = "demo-simulated"
NEW_MODE = taxonomy.TaxonomyEntry(
    code="enterprise_sla_ignored",
    name="Enterprise SLA ignored",
    definition=(
        "An enterprise customer cites their contract, SLA or a priority incident and the assistant answers with "
        "the standard SMB response time and no escalation. The tell is SLA, P1 or Sev wording in the request and "
        "a generic 2-3 business days in the reply."
    ),
)


def load_truth(answers: Path, key: bytes) -> dict[str, dict]:
    """The generator's answer file, by the trace_ref the warehouse knows traces by."""
    truth = {}
    with open(answers, encoding="utf-8") as fh:
        for line in fh:
            a = json.loads(line)
            truth[keys.keyed_hash(key, a["trace_id"])] = a
    return truth


def _pii_left(messages: list[dict], pii: list[dict]) -> str | None:
    text = "\n".join(m["content"] for m in messages)
    for p in pii:
        if re.search(r"(?<!\w)" + re.escape(p["value"]) + r"(?!\w)", text, flags=re.IGNORECASE):
            return p["type"]
    return None


def review_weeks(conn: duckdb.DuckDBPyConnection, truth: dict[str, dict], *, week: dt.datetime | None = None,
                 per_week: int = 8, embedder: Embedder | None = None) -> Counter:
    """Label up to `per_week` traces of one week's queue (or every week's); returns counts per bucket.

    The reviewer reads the queue in order and skips what is plainly fine, as people do; of what it
    opens and labels, about a third turns out not to be a bug (the essay's figure)."""
    queue = review_queue(conn, week)
    if embedder is not None and queue.height:
        queue = mark_adversarial_candidates(conn, queue, embedder)
    candidates = set(queue.filter(pl.col("adversarial_candidate"))["trace_ref"]) if embedder is not None else set()
    done: Counter = Counter()
    labels.ensure_tables(conn)
    # The suggestion on screen (label/suggestions, trained on the weeks before): recorded with the label,
    # which follows the truth whatever it says, so the story can count how often it was right.
    suggested = suggestions_for(conn)
    # A rerun continues the same weekly budget instead of labelling further down the queue.
    already = dict(((w, b), n) for w, b, n in conn.execute(
        """SELECT a.week_start, l.bucket = 'not_a_bug', count(*) FROM label.current_labels l
           JOIN scrub.anonymized_traces a USING (trace_ref) WHERE l.reviewer = ? GROUP BY ALL""", [REVIEWER]
    ).fetchall())
    for (week_start,), week_queue in queue.group_by(["week_start"], maintain_order=True):
        failures, not_bugs = already.get((week_start, False), 0), already.get((week_start, True), 0)
        for row in week_queue.iter_rows(named=True):
            t = truth.get(row["trace_ref"])
            if t is None or failures + not_bugs >= per_week:
                continue
            if not t["failure"] and not_bugs >= (failures + 1) // 2:
                continue  # skimmed and skipped: not labelled
            if t["adversarial"] and embedder is not None and row["trace_ref"] not in candidates:
                continue  # an attack the eval set already holds: nothing new to add
            failures += t["failure"]
            not_bugs += not t["failure"]
            leaked = _pii_left(row["messages"], t["pii"])
            label = labels.Label(trace_ref=row["trace_ref"], bucket="not_a_bug", reviewer=REVIEWER,
                                 adversarial=t["adversarial"], pii_ok=leaked is None, pii_issue_class=leaked,
                                 pii_note="scrubbed text still held a value of this class" if leaked else None,
                                 source="demo")
            shown = suggested.get(row["trace_ref"])
            if shown and shown["suggested_bucket"]:
                label.suggested_bucket, label.suggested_code = shown["suggested_bucket"], shown["suggested_code"]
                label.suggestion_confidence = shown["suggestion_confidence"]
            if t["failure"]:
                code = t["failure_code"]
                discovered = code not in taxonomy.codes(conn)
                if discovered:
                    if code != NEW_MODE.code:
                        raise KeyError(f"the seed taxonomy lacks {code!r}; only {NEW_MODE.code!r} is left to discover")
                    taxonomy.add(conn, taxonomy.TaxonomyEntry(NEW_MODE.code, NEW_MODE.name, NEW_MODE.definition,
                                                              created_from=row["trace_ref"]))
                    label.bucket = "new_failure"
                else:
                    label.bucket = "known_failure"
                label.taxonomy_code = code
                expected, criterion = FAILURE_TRUTH[code]
                label.expected_behaviour = expected
                label.criterion_type, label.criterion_value = labels.parse_criterion(criterion)
            if labels.record(conn, label):
                done[label.bucket] += 1
            if label.bucket == "new_failure" and embedder is not None:
                done["sibling"] += _accept_siblings(conn, embedder, label, truth)
    return done


def _accept_siblings(conn, embedder: Embedder, label: labels.Label, truth: dict[str, dict]) -> int:
    """Look at the 5 nearest traces of the last 30 days and accept those that truly fail the same way
    (a person would read each one)."""
    accepted = 0
    for sibling in find_siblings(conn, embedder, label.trace_ref, k=5):
        t = truth.get(sibling["trace_ref"])
        if t and t["failure_code"] == label.taxonomy_code:
            accepted += labels.record(conn, labels.Label(
                sibling["trace_ref"], "known_failure", REVIEWER, label.taxonomy_code, label.expected_behaviour,
                label.criterion_type, label.criterion_value, t["adversarial"], source="sibling"))
    return accepted
