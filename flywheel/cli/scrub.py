"""flywheel scrub (stateless) and flywheel residue."""

from __future__ import annotations

import json
from pathlib import Path

import click

from flywheel.cli.common import data_dir_option, main, output_file, paths_for, progress

SCRUB_BATCH = 256


@main.command()
@click.option("--input", "input_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help='JSON Lines: {"id", "text"} records or traces ({"trace_id", "messages"}).')
@click.option("--output", "output_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              callback=output_file, help="Where the scrubbed JSON Lines go.")
@click.option("--vocabulary", type=click.Path(dir_okay=False, path_type=Path),
              help="Customer vocabulary CSV (a CRM export with contact_name / company columns).")
@data_dir_option
def scrub(input_path: Path, output_path: Path, vocabulary: Path | None, data_dir: Path | None) -> None:
    """Scrub customer data out of texts or traces; stateless (touches no warehouse).

    Each output line keeps its id and gives the scrubbed `text` (or `messages`) and `spans`
    ([{start, end, entity_type, layer}], offsets into the original text; one list per message for
    traces). Bad lines are reported by number on stderr and skipped. A throughput line goes to stderr.
    """
    import time

    from flywheel.core.scrub import Scrubber
    from flywheel.core.scrub.vocabulary import CustomerVocabulary, VocabularyError

    try:
        vocab = CustomerVocabulary.from_csv(vocabulary) if vocabulary else None
    except VocabularyError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        source = open(input_path, encoding="utf-8", errors="replace")
    except OSError as exc:
        raise click.ClickException(f"{input_path}: {exc.strerror}") from None
    scrubber = Scrubber(vocabulary=vocab)
    started, texts_done, records, bad = time.perf_counter(), 0, 0, 0
    with source, open(output_path, "w", encoding="utf-8") as out, progress("scrub", unit="rec") as bar:
        batch: list[tuple[dict, list[str]]] = []

        def flush():
            nonlocal texts_done
            for (record, _), scrubbed in zip(batch, scrubber.scrub_conversations(texts for _, texts in batch)):
                out.write(json.dumps(_scrub_output(record, scrubbed), ensure_ascii=False) + "\n")
                texts_done += len(scrubbed)
            bar.update(len(batch))
            batch.clear()

        for number, line in enumerate(source, 1):
            if not line.strip():
                continue
            parsed, reason = _scrub_input(line)
            if reason:
                bad += 1
                click.echo(f"{input_path}:{number}: {reason}; skipped", err=True)
                continue
            batch.append(parsed)
            records += 1
            if len(batch) >= SCRUB_BATCH:
                flush()
        flush()
    seconds = time.perf_counter() - started
    click.echo(
        f"scrubbed {records} records ({texts_done} texts) in {seconds:.1f} s: {texts_done / max(seconds, 1e-9):.1f} texts/s"
        + (f"; {bad} bad lines skipped" if bad else ""),
        err=True,
    )


def _scrub_input(line: str) -> tuple[tuple[dict, list[str]] | None, str | None]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON ({exc.msg} at column {exc.colno})"
    if not isinstance(record, dict):
        return None, "not a JSON object"
    if "messages" in record:
        msgs = record["messages"]
        if not isinstance(msgs, list) or not all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in msgs):
            return None, 'field "messages" must be a list of {role, content} with string content'
        if "trace_id" not in record:
            return None, 'a trace needs "trace_id"'
        return (record, [m["content"] for m in msgs]), None
    if not isinstance(record.get("text"), str):
        return None, 'expected {"id", "text"} with a string text, or a trace with "messages"'
    if "id" not in record:
        return None, 'missing "id"'
    return (record, [record["text"]]), None


def _scrub_output(record: dict, scrubbed) -> dict:
    if "messages" in record:
        return {
            "trace_id": record["trace_id"],
            "messages": [{**m, "content": s.text} for m, s in zip(record["messages"], scrubbed)],
            "spans": [[span.to_json() for span in s.spans] for s in scrubbed],
        }
    return {"id": record["id"], "text": scrubbed[0].text, "spans": [span.to_json() for span in scrubbed[0].spans]}


@main.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON.")
@data_dir_option
@click.pass_context
def residue(ctx: click.Context, as_json: bool, data_dir: Path | None) -> None:
    """Misses per PII class: traces scrubbed, misses reviewers reported, miss rate.

    `flywheel residue add` records a miss; the review workflow records them too. Below the table, what
    the misses propose: for identifiers, the shape of what is still in those traces as a pattern
    (`flywheel residue approve-pattern` adds it to the next scrub); for names, the customer vocabulary.
    """
    if ctx.invoked_subcommand:
        return
    from flywheel.core.common.db import connect
    from flywheel.core.common.markdown import table
    from flywheel.core.scrub.residue import summary

    paths = paths_for(data_dir)
    with connect(paths.warehouse) as conn:
        rows = summary(conn)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("Nothing scrubbed yet: run the weekly loop (make demo, or flywheel sample + the scrub asset).")
        return
    click.echo(table(
        ["entity class", "traces scrubbed", "traces with findings", "findings", "misses reported", "miss rate"],
        [(r["entity_type"], r["traces_scrubbed"], r["traces_with_findings"], r["findings"], r["misses_reported"],
          f"{r['miss_rate']:.2%}") for r in rows],
    ))
    _miss_proposals(paths)


def _miss_proposals(paths) -> None:
    """What the reported misses propose: a pattern per identifier shape still in their traces, the
    customer vocabulary for names."""
    from flywheel.core.common.db import connect
    from flywheel.core.scrub import patterns

    with connect(paths.warehouse, read_only=True) as conn:
        found = patterns.propose(conn, _patterns(paths))
    if found.patterns:
        click.echo("\nPatterns proposed by reported misses (the shape of what is still in those traces, never a value):")
        for p in found.patterns:
            click.echo(f"  {p.entity_type:16} {p.regex}   {p.misses} miss(es) on {len(p.traces)} trace(s)")
        click.echo("Approve one with `flywheel residue approve-pattern --entity-type TYPE 'REGEX'`: the next scrub "
                   f"reads {paths.pii_patterns}.")
    if found.nothing_left:
        click.echo(f"{found.nothing_left} identifier miss(es) leave nothing identifier-like in their traces' scrubbed "
                   "text now (scrubbed again since, or only part of a value leaked): no pattern to propose.")
    for entity, n in sorted(found.names.items()):
        click.echo(f"{n} {entity} miss(es): a name is no pattern; add it to the customer vocabulary "
                   f"({paths.customer_vocabulary}, the CRM export) and the lookup layer finds it.")


@residue.command("approve-pattern")
@click.argument("regex")
@click.option("--entity-type", required=True, help="The class the pattern finds, e.g. ORDER_ID (its placeholder's name).")
@click.option("--by", help="Who approves (default: your login name).")
@data_dir_option
def residue_approve_pattern(regex: str, entity_type: str, by: str | None, data_dir: Path | None) -> None:
    """Add a pattern (one `flywheel residue` proposed, or your own) to the regex layer of the next scrub."""
    import getpass

    from flywheel.core.scrub import patterns

    paths = paths_for(data_dir)
    try:
        added = patterns.approve(paths.pii_patterns, entity_type, regex, by or getpass.getuser())
    except patterns.PatternError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(("Added to " if added else "Already in ") + f"{paths.pii_patterns}; the next scrub runs as scrubber "
               f"{_next_version(paths)}.")


@residue.command("add")
@click.option("--trace-ref", required=True, help="The scrubbed trace's reference (scrub.anonymized_traces.trace_ref).")
@click.option("--entity-type", required=True, help="Class of what leaked, e.g. PERSON, EMAIL_ADDRESS. Never the value.")
@click.option("--note", help="What kind of miss, in words (no customer data).")
@click.option("--reviewer", help="Who found it.")
@data_dir_option
def residue_add(trace_ref: str, entity_type: str, note: str | None, reviewer: str | None, data_dir: Path | None) -> None:
    """Record a scrubber miss found in a scrubbed trace."""
    from flywheel.core.common.db import connect
    from flywheel.core.scrub.residue import record_miss

    with connect(paths_for(data_dir).warehouse) as conn:
        try:
            version = record_miss(conn, trace_ref, entity_type, note=note, reported_by=reviewer)
        except KeyError as exc:
            raise click.ClickException(str(exc.args[0])) from None
    click.echo(f"Recorded a {entity_type.upper()} miss on {trace_ref} (scrubber version {version}).")




# ---------------------------------------------------------------------------------------------
# flywheel keep-terms
# ---------------------------------------------------------------------------------------------

def _min_customers_option(fn):
    from flywheel.core.scrub.keep_terms import DEFAULT_MIN_CUSTOMERS

    return click.option(
        "--min-customers", type=click.IntRange(min=2), default=DEFAULT_MIN_CUSTOMERS, show_default=True,
        help="A word is shown for approval only when the traces of this many different customers hold it; "
             "below that it may be one customer's, and is never shown.")(fn)


@main.group("keep-terms", invoke_without_command=True)
@_min_customers_option
@data_dir_option
@click.pass_context
def keep_terms_group(ctx: click.Context, min_customers: int, data_dir: Path | None) -> None:
    """Words reviewers marked as not personal data: see them, approve them into the scrubber's keep list, or reject them.

    A reviewer marks placeholders ("[NAME_3]") that hide the product's or the domain's words;
    this maps them back to their words by scrubbing the traces again from raw, and shows a word only
    when the traces of --min-customers different customers hold it. Approved words go into
    <data>/reference/keep_terms.txt, which the next scrub reads; its version names the keep list.
    """
    if ctx.invoked_subcommand is not None:
        return
    from flywheel.core.common.db import connect
    from flywheel.core.scrub import keep_terms
    from flywheel.core.scrub.vocabulary import read_lines

    paths = paths_for(data_dir)
    resolution, version = _resolve(paths, min_customers)
    with connect(paths.warehouse, read_only=True) as conn:
        changes = keep_terms.history(conn)
    click.echo(f"Keep list: {len(read_lines(paths.keep_terms))} words in {paths.keep_terms}; "
               f"scrubber version {version}.")
    ready = resolution.ready()
    held = [c for c in resolution.candidates if c.status == "held_back"]
    not_names = [c for c in resolution.candidates if c.status == "not_a_name"]
    decided = [c for c in resolution.candidates if c.status == "decided"]
    if not resolution.candidates and not resolution.unresolved:
        click.echo("No proposal: reviewers mark placeholders that hide no personal data in the not_personal "
                   "field (review page, spreadsheet or `flywheel review`), and the weekly scrub proposes words it "
                   f"hid for at least {keep_terms.DEFAULT_MIN_CUSTOMERS} customers.")
    if ready:
        click.echo(f"Ready for approval (in the traces of at least {min_customers} customers):")
        for c in ready:
            source = (f"{c.proposals} proposal(s) by {len(c.reviewers)} reviewer(s) on {len(c.traces)} trace(s)"
                      if c.proposals else "")
            if c.mined_weeks:
                source += ("; " if source else "") + f"hidden for many customers in {c.mined_weeks} week(s)"
            click.echo(f"  {c.term:30} {c.customers:5} customers  {source}")
        click.echo("Approve with `flywheel keep-terms approve WORD`, or `flywheel keep-terms reject WORD`.")
    if held:
        click.echo(f"Held back: {len(held)} word(s) found for fewer than {min_customers} customers; not shown, "
                   "as they may be a customer's (they come back when more customers use them).")
    if not_names:
        click.echo(f"Not names: {len(not_names)} placeholder(s) hide a pattern or customer-vocabulary finding "
                   "(an email, an id, a CRM name); the keep list does not apply to those.")
    if decided:
        click.echo(f"Decided before: {', '.join(f'{c.term} ({c.decision})' for c in decided)}.")
    for ref, placeholder, why in resolution.unresolved[:10]:
        click.echo(f"Unresolved: {placeholder} on {ref}: {why}.")
    if len(resolution.unresolved) > 10:
        click.echo(f"... and {len(resolution.unresolved) - 10} more unresolved.")
    if changes:
        click.echo("Changes:")
        for change in changes[-10:]:
            click.echo(f"  revision {change['revision']}: {change['decision']} {change['term']!r} by "
                       f"{change['decided_by']} on {change['decided_at']:%Y-%m-%d} -> scrubber {change['scrubber_version']}")


def _resolve(paths, min_customers: int):
    """(resolution of every proposal, the scrubber version with today's keep list)."""
    from flywheel.core.common.db import connect, table_exists
    from flywheel.core.scrub import keep_terms

    version = _next_version(paths)
    with connect(paths.warehouse, read_only=True) as conn:
        pending = conn.execute("SELECT count(DISTINCT trace_ref) FROM scrub.keep_proposals WHERE settled_revision IS NULL"
                               ).fetchone()[0] if table_exists(conn, "scrub", "keep_proposals") else 0
        if not pending:  # mined words only: nothing to scrub again
            return keep_terms.resolve(conn, None, min_customers=min_customers), version
    click.echo(f"Loading the scrubber to map {pending} trace(s)' placeholders back to their words ...", err=True)
    scrubber = data_scrubber(paths)
    with connect(paths.warehouse, read_only=True) as conn, progress("resolve", total=pending, unit="trace") as bar:
        return keep_terms.resolve(conn, scrubber, min_customers=min_customers, progress=bar.update), version


def _next_version(paths) -> str:
    """The version the next scrub records: the code's, with the data directory's keep terms and patterns."""
    from flywheel.core.scrub import keep_terms
    from flywheel.core.scrub.vocabulary import read_lines

    return keep_terms.version_with(keep_terms.SCRUBBER_VERSION, read_lines(paths.keep_terms), _patterns(paths))


def _patterns(paths) -> list[tuple[str, str]]:
    from flywheel.core.scrub.patterns import PatternError, load

    try:
        return load(paths.pii_patterns)
    except PatternError as exc:
        raise click.ClickException(str(exc)) from None


def data_scrubber(paths):
    """The scrubber the weekly loop runs: the data directory's customer vocabulary, keep terms and
    approved patterns; a file that cannot be read is one line naming it."""
    from flywheel.core.scrub import Scrubber
    from flywheel.core.scrub.patterns import PatternError
    from flywheel.core.scrub.vocabulary import VocabularyError

    try:
        return Scrubber.from_files(paths.customer_vocabulary, paths.keep_terms, paths.pii_patterns)
    except (VocabularyError, PatternError) as exc:
        raise click.ClickException(str(exc)) from None


def _decide(words: tuple[str, ...], decision: str, by: str | None, min_customers: int, data_dir: Path | None) -> None:
    import getpass

    from flywheel.core.common.db import connect, transaction
    from flywheel.core.scrub import keep_terms
    from flywheel.core.scrub.vocabulary import normalize

    paths = paths_for(data_dir)
    resolution, _ = _resolve(paths, min_customers)
    ready = {c.term: c for c in resolution.ready()}
    unknown = [w for w in words if normalize(w) not in ready]
    if unknown:
        raise click.ClickException(
            f"{', '.join(repr(w) for w in unknown)}: not a word ready for approval (see `flywheel keep-terms`); "
            "a word is shown only once the traces of enough customers hold it")
    who, patterns = by or getpass.getuser(), _patterns(paths)
    with connect(paths.warehouse) as conn, transaction(conn):
        for word in words:
            version = keep_terms.decide(conn, paths.keep_terms, ready[normalize(word)], decision, who,
                                        keep_terms.SCRUBBER_VERSION, patterns)
            click.echo(f"{decision.capitalize()} {normalize(word)!r}; the next scrub runs as scrubber {version}.")
    if decision == "approved":
        click.echo(f"Kept in {paths.keep_terms}: traces scrubbed from now on leave it in the text.")


@keep_terms_group.command("approve")
@click.argument("words", nargs=-1, required=True)
@click.option("--by", help="Who approves (default: your login name).")
@_min_customers_option
@data_dir_option
def keep_terms_approve(words: tuple[str, ...], by: str | None, min_customers: int, data_dir: Path | None) -> None:
    """Add words shown as ready to the keep list (<data>/reference/keep_terms.txt)."""
    _decide(words, "approved", by, min_customers, data_dir)


@keep_terms_group.command("reject")
@click.argument("words", nargs=-1, required=True)
@click.option("--by", help="Who rejects (default: your login name).")
@_min_customers_option
@data_dir_option
def keep_terms_reject(words: tuple[str, ...], by: str | None, min_customers: int, data_dir: Path | None) -> None:
    """Refuse words shown as ready: they stay redacted and are not shown again."""
    _decide(words, "rejected", by, min_customers, data_dir)
