"""`flywheel review`: label the queue from a terminal, over SSH if need be.

Plain line prompts (a key and Enter), no full-screen UI: it works in any terminal, in tmux, and when
driven by a script. Every label is stored the moment it is given, so quitting loses nothing and the
next session starts where this one stopped (the queue only holds unlabelled traces).

One key means one thing at every prompt, and each prompt lists the keys it takes:

- y / n answer yes-or-no questions, and nothing else;
- s skips the trace, b goes back to the previous one, q quits: at every lettered prompt, and at the
  code prompt (a one-letter search would be no search);
- the bucket (k, w, o) and the pass criterion (c, x, r, e, f, u) use letters that mean nothing else;
- a accepts the suggestion shown above the conversation (bucket, code, expected behaviour and
  criterion of the most similar labelled trace), offered only when there is one;
- Ctrl-C or Ctrl-D quits at any prompt, free text included. The label being typed is dropped, the
  ones already stored are kept.
"""

from __future__ import annotations

import contextlib
import getpass
import select
import sys
from collections.abc import Callable, Iterator
import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import click
import duckdb

from flywheel.core.common.db import connect, transaction
from flywheel.core.labeling import labels, taxonomy
from flywheel.core.labeling.queue import review_queue, with_candidate_flags
from flywheel.core.labeling.suggestions import describe, suggestions_for
from flywheel.core.scrub import keep_terms

PRIORITY_NAMES = ("anomaly", "stratified", "random")
YES_NO = {"y": "yes", "n": "no"}
NAVIGATION = {"s": "skip", "b": "back", "q": "quit"}
BUCKET_KEYS = {"k": "known failure", "w": "new failure", "o": "not a bug"}
BUCKETS = {"k": "known_failure", "w": "new_failure", "o": "not_a_bug"}
CRITERION_KEYS = {"c": "contains", "x": "not_contains", "r": "regex", "e": "equals", "f": "refusal", "u": "rubric"}
EXIT_INTERRUPTED = 130  # what a shell reports for a command stopped by Ctrl-C (128 + SIGINT)


@dataclass
class Session:
    warehouse: Path  # opened for each read or write and closed before the next prompt (see db())
    reviewer: str
    siblings: Callable[[str, int], list[dict]] | None = None  # (trace_ref, k) -> nearest scrubbed traces
    stored: int = 0  # labels stored this session, siblings included
    suggestions: dict[str, dict] = field(default_factory=dict)  # label.suggestions by trace_ref
    cluster: list[str] | None = None  # review only these traces (a cluster, nearest its centre first)
    week: dt.date | None = None  # review only this week's queue

    @contextlib.contextmanager
    def db(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The warehouse for one read or write. DuckDB lets one process write the file at a time; a
        reviewer thinking at a prompt must not hold it, or runs, sensors and every other verb wait."""
        with connect(self.warehouse) as conn:
            yield conn


class _Leave(Exception):
    """s, b or q at a prompt: leave the trace being labelled (its unfinished label is dropped)."""

    def __init__(self, action: str):
        super().__init__(action)
        self.action = action


def _menu(keys: dict[str, str]) -> str:
    return " ".join(f"[{k}] {what}" for k, what in keys.items())


def _key(question: str, keys: dict[str, str], *, default: str | None = None,
         navigation: dict[str, str] = NAVIGATION) -> str:
    """One key from `keys`, listed in the prompt with the navigation keys; a navigation key raises _Leave."""
    text = f"{question} {_menu(keys)}" + (f" (Enter: {default})" if default else "")
    if navigation:
        text += f" · {_menu(navigation)}"
    while True:
        answer = click.prompt(text, default=default or "", show_default=False).strip().lower()
        if answer in keys:
            return answer
        if answer in navigation:
            raise _Leave(navigation[answer])
        click.echo(f"  type one of {', '.join([*keys, *navigation])}")


def _yes(question: str, default: bool, *, navigation: dict[str, str] = NAVIGATION) -> bool:
    return _key(question, YES_NO, default="y" if default else "n", navigation=navigation) == "y"


def _show(row: dict, position: int, total: int, reviewed: int, suggestion: dict | None = None) -> None:
    click.clear()
    click.secho(f"{reviewed}/{total} reviewed  ·  trace {position + 1} of {total}  ·  {row['trace_ref']}", bold=True)
    reasons = ", ".join(row["reasons"] or [])
    click.echo(f"sampled as {PRIORITY_NAMES[row['priority']]} ({reasons})  ·  judge score {row['judge_score']}"
               f"  ·  intent {row['intent']}  ·  cohort {row['cohort']}")
    if row.get("adversarial_candidate"):
        click.secho("adversarial candidate: a guardrail tripped on a prompt unlike every adversarial row in the eval "
                    "set. If it is an attack, label it adversarial: it belongs in the same gate.", fg="red", bold=True)
    if suggestion:
        accepted = " (a accepts it)" if suggestion["suggested_bucket"] else ""
        click.secho(describe(suggestion) + accepted, fg="magenta")
        similar = ", ".join(f"{ref[:12]} ({score:.2f})" for ref, score in
                            zip(suggestion["similar_refs"] or [], suggestion["similar_scores"] or []))
        if similar:
            click.echo(f"most like labelled: {similar}")
    click.echo("-" * 78)
    for m in row["messages"]:
        colour = {"user": "cyan", "assistant": "green"}.get(m["role"], "yellow")
        click.secho(f"{m['role']:>9}: ", fg=colour, nl=False, bold=True)
        click.echo(m["content"])
    click.echo("-" * 78)


def _choose_code(session: Session) -> str:
    """Pick a code by number, or type text to narrow the list."""
    with session.db() as conn:
        entries = taxonomy.entries(conn)
    shown = entries
    while True:
        for i, e in enumerate(shown, 1):
            click.echo(f"  {i:>2}. {e['code']}: {e['name']}")
        answer = click.prompt(f"code (number, or text to search) · {_menu(NAVIGATION)}").strip()
        if answer.lower() in NAVIGATION:
            raise _Leave(NAVIGATION[answer.lower()])
        if answer.isdigit() and 1 <= int(answer) <= len(shown):
            return shown[int(answer) - 1]["code"]
        if answer in {e["code"] for e in entries}:
            return answer
        shown = [e for e in entries if answer.lower() in (e["code"] + " " + e["name"] + " " + e["definition"]).lower()]
        if not shown:
            click.echo(f"  nothing matches {answer!r}")
            shown = entries


def _criterion() -> tuple[str, str | None]:
    while True:
        kind = CRITERION_KEYS[_key("pass criterion", CRITERION_KEYS)]
        if kind in labels.CRITERIA_WITHOUT_VALUE:
            return kind, None
        value = click.prompt(f"{kind} value" if kind != "rubric" else "rubric (what a judge checks)").strip()
        probe = labels.Label("x", "known_failure", "x", "x", "x", kind, value)
        errors = labels.criterion_errors(probe)
        if not errors:
            return kind, value
        click.echo(f"  {errors[0]}")


# The clean-text question's third answer: clean, and some placeholders hid no personal data (asked only
# then, so a trace without such a placeholder costs no extra key).
PII_KEYS = {"y": "yes", "n": "no", "k": "yes, but a placeholder hides no personal data"}


def _pii(label: labels.Label) -> None:
    answer = _key("is the scrubbed text clean of customer data?", PII_KEYS, default="y")
    label.pii_ok = answer != "n"
    if not label.pii_ok:
        label.pii_issue_class = click.prompt("which class leaked (e.g. PERSON, EMAIL_ADDRESS; never the value)").strip().upper()
        label.pii_note = click.prompt("note", default="", show_default=False).strip() or None
    if answer != "k":
        return
    while True:
        typed = click.prompt("which placeholders hide the product's or the domain's words (e.g. [NAME_3])").strip()
        found, problems = keep_terms.parse(typed)
        if found and not problems:
            label.not_personal = " ".join(found)
            return
        click.echo(f"  {problems[0] if problems else 'type one placeholder or more, as the trace shows them'}")


def _new_mode(session: Session, trace_ref: str) -> taxonomy.TaxonomyEntry:
    """A new taxonomy entry, checked now and added only with its label (a label given up leaves no code)."""
    while True:
        code = click.prompt("new code (snake_case)").strip()
        name = click.prompt("name").strip()
        definition = click.prompt("two-sentence definition").strip()
        entry = taxonomy.TaxonomyEntry(code, name, definition, created_from=trace_ref)
        problems = entry.problems()
        with session.db() as conn:
            taken = code in taxonomy.codes(conn)
        if taken:
            problems.append(f"code {code!r} already exists")
        if not problems:
            return entry
        click.echo(f"  {'; '.join(problems)}")


def _offer_siblings(session: Session, trace_ref: str, label: labels.Label) -> None:
    """Offer the nearest scrubbed traces of the last 30 days; each accepted one is a known failure of
    the new code, with the same expected behaviour and criterion. s moves on without the rest."""
    if session.cluster is not None:
        found = _cluster_members(session, trace_ref)
    elif session.siblings is None:
        return
    else:
        found = session.siblings(trace_ref, 5)
    for sibling in found:
        click.echo("-" * 78)
        why = "in the same cluster" if sibling.get("similarity") is None else f"similarity {sibling['similarity']:.2f}"
        click.echo(f"sibling {sibling['trace_ref']} ({why}):")
        for m in sibling["messages"]:
            click.echo(f"{m['role']:>9}: {m['content']}")
        try:
            accepted = _yes(f"label it {label.taxonomy_code} too?", default=False,
                            navigation={"s": "skip the rest", "q": "quit"})
        except _Leave as leave:
            if leave.action == "quit":
                raise
            return
        if not accepted:
            continue
        with session.db() as conn:
            stored = labels.record(conn, labels.Label(
                sibling["trace_ref"], "known_failure", session.reviewer, label.taxonomy_code, label.expected_behaviour,
                label.criterion_type, label.criterion_value, label.adversarial, source="sibling"))
        session.stored += bool(stored)


def _cluster_members(session: Session, trace_ref: str) -> list[dict]:
    """The cluster's other members nobody has labelled yet, as siblings of the new mode, in cluster order."""
    others = [ref for ref in session.cluster or [] if ref != trace_ref]
    with session.db() as conn:
        done = labels.labelled(conn, others)
        rows = dict(conn.execute(
            "SELECT trace_ref, any_value(messages) FROM scrub.anonymized_traces WHERE list_contains(?, trace_ref) "
            "GROUP BY 1", [others]).fetchall()) if others else {}
    return [{"trace_ref": ref, "messages": rows[ref], "similarity": None} for ref in others
            if ref in rows and ref not in done]


def _label(session: Session, row: dict) -> tuple[labels.Label, taxonomy.TaxonomyEntry | None]:
    """One trace's label, and the taxonomy entry it opens if it is a new failure."""
    suggestion = session.suggestions.get(row["trace_ref"])
    offered = suggestion if suggestion and suggestion["suggested_bucket"] else None
    key = _key("label", {**BUCKET_KEYS, **({"a": "accept suggestion"} if offered else {})})
    bucket = offered["suggested_bucket"] if key == "a" else BUCKETS[key]
    label = labels.Label(row["trace_ref"], bucket, session.reviewer, source="review")
    if offered:  # recorded whether taken or not, so agreement with suggestions can be measured
        label.suggested_bucket, label.suggested_code = offered["suggested_bucket"], offered["suggested_code"]
        label.suggestion_confidence = offered["suggestion_confidence"]
    entry = None
    if key == "a":
        label.taxonomy_code = offered["suggested_code"]
        label.expected_behaviour = offered["suggested_expected_behaviour"]
        label.criterion_type = offered["suggested_criterion_type"]
        label.criterion_value = offered["suggested_criterion_value"]
        if label.bucket != "not_a_bug":
            click.echo(f"  {label.taxonomy_code}: expect {label.expected_behaviour!r}, {label.pass_criterion}")
    elif label.bucket == "known_failure":
        label.taxonomy_code = _choose_code(session)
    elif label.bucket == "new_failure":
        entry = _new_mode(session, row["trace_ref"])
        label.taxonomy_code = entry.code
    if label.bucket != "not_a_bug" and not (key == "a" and label.expected_behaviour and label.criterion_type):
        label.expected_behaviour = click.prompt("expected behaviour").strip()
        label.criterion_type, label.criterion_value = _criterion()
    label.adversarial = _yes("adversarial?", default=bool(row.get("adversarial_candidate"))
                             or "guardrail_tripped" in (row["reasons"] or []))
    _pii(label)
    return label, entry


def _ask(session: Session, row: dict) -> str | tuple[labels.Label, taxonomy.TaxonomyEntry | None]:
    """One trace: a label (with the new taxonomy entry, if any), or 'skip' / 'back' / 'quit'."""
    try:
        return _label(session, row)
    except _Leave as leave:
        return leave.action


def _store(session: Session, label: labels.Label, entry: taxonomy.TaxonomyEntry | None) -> None:
    # The new code and its first label land together or not at all.
    with session.db() as conn, transaction(conn):
        if entry is not None:
            taxonomy.add(conn, entry)
        if labels.record(conn, label):
            session.stored += 1


def _review(session: Session, rows: list[dict]) -> None:
    total, position, forward = len(rows), 0, True
    refs = [r["trace_ref"] for r in rows]
    while 0 <= position < total:
        row = rows[position]
        with session.db() as conn:
            reviewed = len(labels.labelled(conn, refs))
            current = labels.current_label(conn, row["trace_ref"])
        if current and forward and session.cluster is not None:
            position += 1  # accepted as a sibling of the cluster's new mode a moment ago
            continue
        forward = True
        _show(row, position, total, reviewed, session.suggestions.get(row["trace_ref"]))
        if current:
            click.echo(f"(labelled {current['bucket']} {current['taxonomy_code'] or ''}; a new label supersedes it)")
        answer = _ask(session, row)
        if answer == "quit":
            return
        if answer == "back":
            position, forward = max(0, position - 1), False
            continue
        if answer != "skip":
            label, entry = answer
            try:
                _store(session, label, entry)
            except (labels.LabelError, taxonomy.TaxonomyError) as exc:
                click.echo(f"not stored: {exc}")
                click.pause()
                continue
            if label.bucket == "new_failure":
                try:
                    _offer_siblings(session, row["trace_ref"], label)
                except _Leave:
                    return
        position += 1


@contextlib.contextmanager
def _prompts_that_ctrl_c_interrupts() -> Iterator[None]:
    """Ctrl-C must end the review at once, not after the next Enter.

    Python runs its SIGINT handler in the main thread, but the kernel hands the signal to any thread
    that does not block it, and DuckDB and Polars keep worker threads. When one of those takes it, the
    main thread stays blocked in read() and the KeyboardInterrupt waits for the next line. So a prompt
    on a terminal waits for its line in short select() slices, between which the handler runs. Only on
    a terminal: it hands over one line per read, so nothing can sit unseen in a buffer while we wait.
    click reads every prompt through `termui.visible_prompt_func` (its test runner swaps it the same way)."""
    try:
        fd = sys.stdin.fileno()
        terminal = sys.stdin.isatty()
    except (AttributeError, OSError, ValueError):
        terminal = False
    if not terminal:
        yield
        return
    read = click.termui.visible_prompt_func

    def prompt(text: str) -> str:
        click.echo(text, nl=False)
        while not select.select([fd], [], [], 0.1)[0]:
            pass
        return read("")

    click.termui.visible_prompt_func = prompt
    try:
        yield
    finally:
        click.termui.visible_prompt_func = read


def _interrupted_by_ctrl_c(exc: BaseException) -> bool:
    # click.prompt turns Ctrl-C and Ctrl-D alike into Abort; the key pressed is the exception it replaced.
    return isinstance(exc, KeyboardInterrupt) or isinstance(exc.__context__, KeyboardInterrupt)


def run(session: Session) -> int:
    """Review the queue in order; returns how many labels were stored. Ctrl-C or Ctrl-D at any prompt
    ends the session with the labels stored so far kept: Ctrl-D as q does, Ctrl-C with exit status 130."""
    with session.db() as conn:
        week = dt.datetime.combine(session.week, dt.time()) if session.week else None
        queue = with_candidate_flags(conn, review_queue(conn, week))
        session.suggestions = suggestions_for(conn)
    rows = list(queue.iter_rows(named=True))
    if session.cluster is not None:  # the cluster's unlabelled members, nearest its centre first
        by_ref = {r["trace_ref"]: r for r in rows}
        rows = [by_ref[ref] for ref in session.cluster if ref in by_ref]
    if not rows:
        click.echo("Nothing to review: every scrubbed trace " + ("of the cluster " if session.cluster is not None else "")
                   + "has a label.")
        return 0
    refs = [r["trace_ref"] for r in rows]
    try:
        with _prompts_that_ctrl_c_interrupts():
            _review(session, rows)
    except (click.Abort, KeyboardInterrupt, EOFError) as exc:
        ctrl_c = _interrupted_by_ctrl_c(exc)
        click.echo()  # the prompt's line has no newline yet
        click.echo(f"{'Interrupted' if ctrl_c else 'End of input'}: {_tally(session, refs)}")
        if ctrl_c:
            raise click.exceptions.Exit(EXIT_INTERRUPTED) from None
        return session.stored
    click.echo(_tally(session, refs))
    return session.stored


def _tally(session: Session, refs: list[str]) -> str:
    with session.db() as conn:
        done = len(labels.labelled(conn, refs))
    return (f"{done}/{len(refs)} reviewed; {session.stored} labels stored this session. "
            "Run flywheel review again to go on.")


def default_reviewer() -> str:
    try:
        return getpass.getuser()
    except Exception:  # noqa: BLE001 - no login name in some containers
        return "reviewer"
