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

    `flywheel residue add` records a miss; the review workflow records them too.
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


