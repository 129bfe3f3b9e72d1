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
)
from flywheel.settings import IntakeSettings


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the machine-readable report instead of a summary.")
@click.option("--max-line-bytes", type=click.IntRange(min=1), default=IntakeSettings().max_line_bytes,
              show_default=True, help="Records larger than this (in bytes, at least 1) are quarantined unread.")
@data_dir_option
def ingest(paths: tuple[Path, ...], as_json: bool, max_line_bytes: int, data_dir: Path | None) -> None:
    """Load trace files (JSON Lines, Parquet, CSV) or folders of them into raw/traces.

    Every record is checked against the trace contract. Bad records go to raw/quarantine with their
    file, line and reason; traces already loaded (same trace_id) are counted as duplicates. Each file
    must add up (loaded + duplicates + quarantined = its records). Exits 1 only when a file cannot be
    read at all or does not add up.
    """
    from flywheel.core.common.db import connect
    from flywheel.core.intake.ingest import ingest_paths

    paths_ = paths_for(data_dir, need_warehouse=False)
    settings = IntakeSettings(max_line_bytes=max_line_bytes)
    with connect(paths_.warehouse) as conn, progress("ingest", unit="rec") as bar:
        report = ingest_paths(conn, paths, settings, on_progress=bar.update)
    for batch in report.recovered:
        click.echo(f"note: {batch.file}: {batch.rows} traces an interrupted ingest loaded are now in the manifest.",
                   err=True)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        files = len(report.files) - len(report.errors)
        click.echo(
            f"Ingested {report.ingested} traces from {files} file(s): "
            f"{report.duplicates} duplicates, {report.quarantined} quarantined."
        )
        for q in report.quarantine[:MAX_PRINTED_ERRORS]:
            click.echo(f"  {q['file']}:{q['line']}: {q['reason']}", err=True)
        if report.quarantined > MAX_PRINTED_ERRORS:
            click.echo(f"  ... and {report.quarantined - MAX_PRINTED_ERRORS} more, all in raw.quarantine.", err=True)
        if report.quarantined:
            click.echo(f"Quarantined records are kept in raw.quarantine in {paths_.warehouse}.", err=True)
    for error in report.errors:
        click.echo(f"Error: {error['error']}", err=True)
    sys.exit(1 if report.errors else 0)


