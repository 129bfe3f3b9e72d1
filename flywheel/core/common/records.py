"""Numbered records from a small user file (CSV or JSON Lines), for imports that report by row/line."""

from __future__ import annotations

import csv
import json
from pathlib import Path


def numbered_records(path: str | Path) -> list[tuple[int, dict | str]]:
    """(number, record) pairs: CSV rows numbered as a spreadsheet shows them (header is row 1), JSON
    Lines by line. A line that is not JSON comes back as its error text, for the caller to report."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as fh:
            return list(enumerate(csv.DictReader(fh), start=2))
    out: list[tuple[int, dict | str]] = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if line.strip():
                try:
                    out.append((number, json.loads(line)))
                except json.JSONDecodeError as exc:
                    out.append((number, f"not valid JSON ({exc.msg})"))
    return out
