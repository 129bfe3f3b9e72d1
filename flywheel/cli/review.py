"""`flywheel review`: label the queue from a terminal, over SSH if need be.

Plain line prompts (a letter and Enter), no full-screen UI: it works in any terminal, in tmux, and when
driven by a script. Every label is stored the moment it is given, so quitting loses nothing and the
next session starts where this one stopped (the queue only holds unlabelled traces).
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from dataclasses import dataclass

import click
import duckdb

from flywheel.core.labeling import labels, taxonomy
from flywheel.core.labeling.queue import review_queue, with_candidate_flags

PRIORITY_NAMES = ("anomaly", "stratified", "random")
CRITERION_KEYS = {"c": "contains", "n": "not_contains", "r": "regex", "e": "equals", "f": "refusal", "u": "rubric"}


@dataclass
class Session:
    conn: duckdb.DuckDBPyConnection
    reviewer: str
    siblings: Callable[[str, int], list[dict]] | None = None  # (trace_ref, k) -> nearest scrubbed traces


def _show(row: dict, position: int, total: int, reviewed: int) -> None:
    click.clear()
    click.secho(f"{reviewed}/{total} reviewed  ·  trace {position + 1} of {total}  ·  {row['trace_ref']}", bold=True)
    reasons = ", ".join(row["reasons"] or [])
    click.echo(f"sampled as {PRIORITY_NAMES[row['priority']]} ({reasons})  ·  judge score {row['judge_score']}"
               f"  ·  intent {row['intent']}  ·  cohort {row['cohort']}")
    if row.get("adversarial_candidate"):
        click.secho("adversarial candidate: a guardrail tripped on a prompt unlike every adversarial row in the eval "
                    "set. If it is an attack, label it adversarial: it belongs in the same gate.", fg="red", bold=True)
    click.echo("-" * 78)
    for m in row["messages"]:
        colour = {"user": "cyan", "assistant": "green"}.get(m["role"], "yellow")
        click.secho(f"{m['role']:>9}: ", fg=colour, nl=False, bold=True)
        click.echo(m["content"])
    click.echo("-" * 78)


def _choose_code(conn: duckdb.DuckDBPyConnection) -> str:
    """Pick a code by number, or type text to narrow the list."""
    entries = taxonomy.entries(conn)
    shown = entries
    while True:
        for i, e in enumerate(shown, 1):
            click.echo(f"  {i:>2}. {e['code']}: {e['name']}")
        answer = click.prompt("code (number, or text to search)").strip()
        if answer.isdigit() and 1 <= int(answer) <= len(shown):
            return shown[int(answer) - 1]["code"]
        if answer in {e["code"] for e in entries}:
            return answer
        shown = [e for e in entries if answer.lower() in (e["code"] + " " + e["name"] + " " + e["definition"]).lower()]
        if not shown:
            click.echo(f"  nothing matches {answer!r}")
            shown = entries


def _criterion() -> tuple[str, str | None]:
    keys = " ".join(f"[{k}]{v[len(k):] if v.startswith(k) else ' ' + v}" for k, v in CRITERION_KEYS.items())
    while True:
        kind = CRITERION_KEYS.get(click.prompt(f"pass criterion {keys}").strip().lower())
        if not kind:
            continue
        if kind in labels.CRITERIA_WITHOUT_VALUE:
            return kind, None
        value = click.prompt(f"{kind} value" if kind != "rubric" else "rubric (what a judge checks)").strip()
        probe = labels.Label("x", "known_failure", "x", "x", "x", kind, value)
        errors = labels.criterion_errors(probe)
        if not errors:
            return kind, value
        click.echo(f"  {errors[0]}")


def _pii(label: labels.Label) -> None:
    label.pii_ok = click.confirm("is the scrubbed text clean of customer data?", default=True)
    if not label.pii_ok:
        label.pii_issue_class = click.prompt("which class leaked (e.g. PERSON, EMAIL_ADDRESS; never the value)").strip().upper()
        label.pii_note = click.prompt("note", default="", show_default=False).strip() or None


def _new_mode(session: Session, trace_ref: str) -> str:
    while True:
        code = click.prompt("new code (snake_case)").strip()
        name = click.prompt("name").strip()
        definition = click.prompt("two-sentence definition").strip()
        try:
            taxonomy.add(session.conn, taxonomy.TaxonomyEntry(code, name, definition, created_from=trace_ref))
            return code
        except taxonomy.TaxonomyError as exc:
            click.echo(f"  {exc}")


def _offer_siblings(session: Session, trace_ref: str, label: labels.Label) -> int:
    """Offer the nearest scrubbed traces of the last 30 days; each accepted one is a known failure of
    the new code, with the same expected behaviour and criterion."""
    if session.siblings is None:
        return 0
    accepted = 0
    for sibling in session.siblings(trace_ref, 5):
        click.echo("-" * 78)
        click.echo(f"sibling {sibling['trace_ref']} (similarity {sibling['similarity']:.2f}):")
        for m in sibling["messages"]:
            click.echo(f"{m['role']:>9}: {m['content']}")
        if click.confirm(f"label it {label.taxonomy_code} too?", default=False):
            labels.record(session.conn, labels.Label(
                sibling["trace_ref"], "known_failure", session.reviewer, label.taxonomy_code, label.expected_behaviour,
                label.criterion_type, label.criterion_value, label.adversarial, source="sibling"))
            accepted += 1
    return accepted


def _ask(session: Session, row: dict) -> str | labels.Label:
    """One trace: returns a label, or 'skip' / 'back' / 'quit'."""
    action = click.prompt("[k]nown failure  [n]ew failure  n[o]t a bug  [s]kip  [b]ack  [q]uit",
                          type=click.Choice(["k", "n", "o", "s", "b", "q"]), show_choices=False)
    if action in ("s", "b", "q"):
        return {"s": "skip", "b": "back", "q": "quit"}[action]
    label = labels.Label(row["trace_ref"], {"k": "known_failure", "n": "new_failure", "o": "not_a_bug"}[action],
                         session.reviewer, source="review")
    if label.bucket == "known_failure":
        label.taxonomy_code = _choose_code(session.conn)
    elif label.bucket == "new_failure":
        label.taxonomy_code = _new_mode(session, row["trace_ref"])
    if label.bucket != "not_a_bug":
        label.expected_behaviour = click.prompt("expected behaviour").strip()
        label.criterion_type, label.criterion_value = _criterion()
    label.adversarial = click.confirm("adversarial?", default=bool(row.get("adversarial_candidate"))
                                      or "guardrail_tripped" in (row["reasons"] or []))
    _pii(label)
    return label


def run(session: Session) -> int:
    """Review the queue in order; returns how many labels were stored."""
    rows = list(with_candidate_flags(session.conn, review_queue(session.conn)).iter_rows(named=True))
    total, position, stored = len(rows), 0, 0
    refs = [r["trace_ref"] for r in rows]
    if not rows:
        click.echo("Nothing to review: every scrubbed trace has a label.")
        return 0
    while 0 <= position < total:
        row = rows[position]
        reviewed = len(labels.labelled(session.conn, refs))
        _show(row, position, total, reviewed)
        current = labels.current_label(session.conn, row["trace_ref"])
        if current:
            click.echo(f"(labelled {current['bucket']} {current['taxonomy_code'] or ''}; a new label supersedes it)")
        answer = _ask(session, row)
        if answer == "quit":
            break
        if answer == "back":
            position = max(0, position - 1)
            continue
        if answer != "skip":
            try:
                if labels.record(session.conn, answer):
                    stored += 1
                if answer.bucket == "new_failure":
                    stored += _offer_siblings(session, row["trace_ref"], answer)
            except labels.LabelError as exc:
                click.echo(f"not stored: {exc}")
                click.pause()
                continue
        position += 1
    done = len(labels.labelled(session.conn, refs))
    click.echo(f"{done}/{total} reviewed; {stored} labels stored this session. Run flywheel review again to go on.")
    return stored


def default_reviewer() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in some containers
        return "reviewer"
