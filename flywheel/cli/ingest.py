"""flywheel ingest: trace files into raw/traces, bad records to raw/quarantine."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from flywheel.cli.common import (
    MAX_PRINTED_ERRORS,
    data_dir_option,
    main,
    paths_for,
    progress,
    quarantined_line,
)
from flywheel.settings import IntakeSettings

FORMATS = ("auto", "flywheel", "otel", "openinference", "langfuse", "langsmith", "openai-chat")
# The names a user may know a source by: Phoenix writes OpenInference, an OTLP file is OpenTelemetry.
ALIASES = {"phoenix": "openinference", "otlp": "otel", "opentelemetry": "otel", "openai": "openai-chat"}


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "source_format", type=click.Choice([*FORMATS, *ALIASES]), default="auto", show_default=True,
              callback=lambda ctx, param, value: ALIASES.get(value, value),
              help="Which source wrote the files: auto decides per file and says what it chose. phoenix is "
                   "openinference, otlp and opentelemetry are otel, openai is openai-chat.")
@click.option("--dry-run", is_flag=True, help="Show how the first records map onto the trace contract, and what "
              "was left unmapped; load nothing.")
@click.option("--timestamp", help="For openai-chat logs, which carry no time: ISO 8601 (default: the file's time).")
@click.option("--json", "as_json", is_flag=True, help="Print the machine-readable report instead of a summary.")
@click.option("--max-line-bytes", type=click.IntRange(min=1), default=IntakeSettings().max_line_bytes,
              show_default=True, help="Records larger than this (in bytes, at least 1) are quarantined unread.")
@data_dir_option
def ingest(paths: tuple[Path, ...], source_format: str, dry_run: bool, timestamp: str | None, as_json: bool,
           max_line_bytes: int, data_dir: Path | None) -> None:
    """Load trace files (JSON Lines, Parquet, CSV) or folders of them into raw/traces.

    Files in flywheel's trace contract, or exports of OpenTelemetry (OTLP JSON, GenAI conventions),
    OpenInference (Phoenix), Langfuse, LangSmith and OpenAI-style chat logs, mapped onto the contract;
    <data>/reference/trace_mapping.yaml says where cohort, intent, judge score and the other
    flywheel-only fields come from. Every record is checked against the trace contract. Bad records
    go to raw/quarantine with their file, line and reason; spans that are not LLM calls are counted by
    reason; traces already loaded (same trace_id) are counted as duplicates. Each file must add up
    (loaded + duplicates + quarantined = its records). Exits 1 only when a file cannot be read at all
    or does not add up.
    """
    paths_ = paths_for(data_dir, need_warehouse=False)
    _some_path_exists_or_fail(paths)
    mapping = _mapping(paths_)
    if timestamp:
        _check_timestamp(timestamp)
    if dry_run:
        _dry_run(paths, source_format, mapping, timestamp)
        return
    from flywheel.core.common.db import connect
    from flywheel.core.intake.ingest import ingest_paths

    settings = IntakeSettings(max_line_bytes=max_line_bytes)
    paths = _without_open_endpoint_hours(paths)
    first_bar = "ingest" if source_format == "flywheel" else "read"
    with connect(paths_.warehouse) as conn, progress(first_bar, unit="rec") as bar:
        # One bar: the other sources' records as they are read and mapped, then the records loaded.
        loading = []

        def loaded(n: int) -> None:
            if not loading:
                loading.append(True)
                bar.reset()
                bar.set_description_str("ingest")
            bar.update(n)

        report = ingest_paths(conn, paths, settings, on_progress=loaded, on_read=bar.update,
                              source_format=source_format, mapping=mapping, timestamp=timestamp)
    for batch in report.recovered:
        click.echo(f"note: {batch.file}: {batch.rows} traces an interrupted ingest loaded are now in the manifest.",
                   err=True)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        _summary(report, paths_)
        if source_format != "auto":
            _hint_other_format(report, source_format)
    for error in report.errors:
        click.echo(f"Error: {error['error']}", err=True)
    sys.exit(1 if report.errors else 0)


def _without_open_endpoint_hours(paths: tuple[Path, ...]) -> list[Path]:
    """The files to read, less the endpoint's file of the hour still being written (`flywheel serve`
    appends to it until its hour and five minutes are over): read now, its conversations' later turns
    would come in a later read, and the same file read again as it grows. The weekly loop waits too."""
    from flywheel.core.common import clock
    from flywheel.core.intake import otlp_inbox
    from flywheel.core.intake.ingest import expand_paths

    files = expand_paths(paths)
    closed = otlp_inbox.closed(files, clock.now())
    for f in files:
        if f not in closed:
            click.echo(f"Left for later: {f} (the endpoint is still writing this hour; it is read once the hour and "
                       f"{int(otlp_inbox.GRACE.total_seconds() // 60)} minutes are over)", err=True)
    return closed


def _some_path_exists_or_fail(paths: tuple[Path, ...]) -> None:
    """Nothing to read at all is a typo (or the wrong folder): named before a warehouse is created or a
    summary of nothing printed. (Of several paths, the missing ones are reported after the others load.)"""
    shown = ", ".join(str(p) for p in paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
    if not any(p.exists() for p in paths):
        raise click.ClickException(f"{shown}: no such file or folder (give trace files, or folders of them)")
    from flywheel.core.intake.ingest import SUFFIXES, expand_paths

    if not expand_paths(paths):  # only folders, and no trace file in them
        kinds = ", ".join(sorted(SUFFIXES))
        raise click.ClickException(f"{shown}: no trace file in it (flywheel reads {kinds} files, and .gz of them)")


def _namer(names: list[str]):
    """How to name these files to a person: by file name, or by path when names repeat (an export's
    traces/, observations/ ... folders hold files of one name)."""
    bases = [Path(n).name for n in names]
    return (lambda n: n) if len(set(bases)) < len(bases) else (lambda n: Path(n).name)


def _summary(report, paths_) -> None:
    chosen = {}
    for name, fmt in report.formats.items():
        chosen.setdefault(fmt, []).append(name)
    if any(fmt != "flywheel" for fmt in chosen):
        for fmt, names in sorted(chosen.items()):
            name_of = _namer(names)
            shown = ", ".join(name_of(n) for n in names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            click.echo(f"Read as {fmt}: {shown}")
    files = len(report.files) - len(report.errors)
    click.echo(f"Ingested {report.ingested} traces from {files} file(s): "
               f"{report.duplicates} duplicates, {report.quarantined} quarantined.")
    if report.skipped_spans:
        total = sum(report.skipped_spans.values())
        click.echo(f"Not LLM calls, counted and left out: {total} span(s) or run(s):")
        for reason, n in report.skipped_spans.most_common():
            click.echo(f"  {n:>7}  {reason}")
    for q in report.quarantine[:MAX_PRINTED_ERRORS]:
        click.echo(f"  {quarantined_line(q['file'], q['line'], q['reason'])}", err=True)
    if report.quarantined > MAX_PRINTED_ERRORS:
        click.echo(f"  ... and {report.quarantined - MAX_PRINTED_ERRORS} more, all in raw.quarantine.", err=True)
    if report.quarantined:
        click.echo(f"Quarantined records are kept in raw.quarantine in {paths_.warehouse}.", err=True)


def _hint_other_format(report, forced: str) -> None:
    """A file forced into the wrong format quarantines every record: say which format it looks like."""
    from flywheel.core.intake.sources.files import UnknownFormat, detect

    for result in report.files:
        if result.error or result.ingested or result.duplicates or not result.quarantined:
            continue
        try:
            looks = detect(Path(result.file))
        except (UnknownFormat, OSError):
            continue
        if looks != forced:
            click.echo(f"hint: every record of {result.file} was quarantined as {forced}, but it looks like {looks}: "
                       "try --format auto (the default)", err=True)


def _mapping(paths_):
    from flywheel.core.intake.sources.mapping import Mapping, MappingError

    try:
        return Mapping.load(paths_.trace_mapping)
    except MappingError as exc:
        raise click.ClickException(str(exc)) from None


def _check_timestamp(text: str) -> None:
    import datetime as dt

    try:
        dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO 8601 time, e.g. 2026-11-16T09:00:00Z",
                                 param_hint="--timestamp") from None


def _dry_run(paths: tuple[Path, ...], source_format: str, mapping, timestamp: str | None, shown: int = 3) -> None:
    """How the first records map. Message text and ids are customer data: shown as roles and lengths."""
    from flywheel.core.intake.ingest import expand_paths
    from flywheel.core.intake.sources import reader

    files = [f for f in expand_paths(paths) if f.is_file()]
    missing = [str(p) for p in paths if not Path(p).exists()]
    if missing:
        raise click.ClickException(f"{missing[0]}: no such file or folder")
    read = reader.read(files, source_format, mapping, timestamp=timestamp, keep_groups=shown)
    place = _namer(list(read.formats))
    for name, fmt in read.formats.items():
        click.echo(f"{name}: {fmt}" + (" (flywheel's own contract: loaded as it is)" if fmt == "flywheel" else ""))
    for name, error in read.unreadable.items():
        click.echo(f"{name}: cannot be read: {error}")
    for calls, record in read.groups:
        click.echo("-" * 72)
        if not isinstance(record, dict):
            click.echo(f"quarantined: {record.reason}")
            continue
        read_calls = [c for c in calls if not c.fallback] or calls  # a root run or trace row around them aside
        click.echo(f"trace from {len(read_calls)} LLM call(s), first at {place(read_calls[0].file)}:{read_calls[0].line}")
        click.echo(f"  timestamp      {record['timestamp']}")
        roles = ", ".join(f"{m['role']} ({len(m['content'])} chars)" for m in record["messages"])
        click.echo(f"  messages       {len(record['messages'])}: {roles}")
        used = reader.mapped_sources(calls, mapping)
        for name in ("customer_id", "cohort", "intent", "judge_score", "guardrail_tripped", "retried", "handed_off",
                     "csat", "model_version"):
            if name in record:
                value = "(present)" if name == "customer_id" else str(record[name])[:40]
                click.echo(f"  {name:<14} {value}  <- {used.get(name, 'the model the call reports')}")
            else:
                places = ", ".join(mapping.sources.get(name, ()))
                click.echo(f"  {name:<14} -  " + (f"(none of: {places})" if places else "(the source does not give one)"))
        left = reader.unmapped_keys(calls, mapping)
        if left:
            click.echo(f"  unmapped       {', '.join(left[:20])}" + (f" and {len(left) - 20} more" if len(left) > 20 else ""))
    if read.skipped:
        click.echo("-" * 72)
        click.echo("Not LLM calls, would be counted and left out:")
        for reason, n in read.skipped.most_common():
            click.echo(f"  {n:>7}  {reason}")
    # What the load would quarantine, by file and line; the reasons never quote the record.
    bad = [(name, line, record.reason) for name, items in read.prepared.items()
           for line, record in items if not isinstance(record, dict)]
    if bad:
        click.echo("-" * 72)
        click.echo(f"Would be quarantined: {len(bad)}")
        for name, line, reason in bad[:shown * 3]:
            click.echo(f"  {quarantined_line(name, line, reason)}")
        if len(bad) > shown * 3:
            click.echo(f"  and {len(bad) - shown * 3} more")
    traces = sum(len(v) for v in read.prepared.values()) - len(bad)
    click.echo(f"Dry run: {traces} trace(s) and {len(bad)} bad record(s) from {len(read.prepared)} file(s) of other "
               "sources; nothing loaded.")
    if read.unreadable:  # as the ingest itself would
        sys.exit(1)
