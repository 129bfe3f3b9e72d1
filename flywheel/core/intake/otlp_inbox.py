"""The OTLP endpoint's side of the inbox: every accepted batch appended, durably, to an hourly file.

`flywheel serve` answers an exporter only after its batch is written and fsynced (and, for a new
file, the folder too), so an acknowledged span survives a crash. One file per hour, one batch per
line, in OTLP JSON as the Collector's file exporter writes it; the intake reads them like any OTLP
file. A file is *open* until its hour has ended and a grace period passed: the weekly loop leaves open
files for its next run, so it never loads half of a file that is still growing.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import threading
from pathlib import Path

from flywheel.core.common.durable import fsync_path

FOLDER = "otlp"
NAME = re.compile(r"^otlp-(\d{8}T\d{2})\.jsonl$")
GRACE = dt.timedelta(minutes=5)
_lock = threading.Lock()


def folder(inbox_traces: Path) -> Path:
    return inbox_traces / FOLDER


def file_for(inbox_traces: Path, moment: dt.datetime) -> Path:
    return folder(inbox_traces) / f"otlp-{moment:%Y%m%dT%H}.jsonl"


def append(inbox_traces: Path, doc: dict, moment: dt.datetime) -> Path:
    """Append one OTLP document as one line, fsynced before returning."""
    path = file_for(inbox_traces, moment)
    line = (json.dumps(doc, separators=(",", ":"), ensure_ascii=False) + "\n").encode("utf-8")
    with _lock:
        new = not path.exists()
        if new:
            path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            written = 0
            while written < len(line):
                written += os.write(fd, line[written:])
            os.fsync(fd)
        finally:
            os.close(fd)
        if new:
            fsync_path(path.parent)
    return path


def closed(files: list[Path], now: dt.datetime) -> list[Path]:
    """The files that are not an endpoint hour still being written: what an ingest may read now."""
    return [f for f in files if not is_open(f, now)]


def is_open(path: Path, now: dt.datetime) -> bool:
    """An endpoint file whose hour (plus the grace period) has not ended yet."""
    found = NAME.match(path.name)
    if not found or path.parent.name != FOLDER:
        return False
    hour = dt.datetime.strptime(found.group(1), "%Y%m%dT%H")
    return now.replace(tzinfo=None) < hour + dt.timedelta(hours=1) + GRACE
