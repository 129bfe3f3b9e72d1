"""Markdown tables for materialization metadata and CLI summaries."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import polars as pl


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(header: Sequence[str], rows: Iterable[Sequence]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def frame(df: pl.DataFrame, limit: int = 10) -> str:
    if df.is_empty():
        return "_empty_"
    return table(df.columns, df.head(limit).iter_rows())
