"""Markdown tables for materialization metadata and CLI summaries."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

# Only a type here: `flywheel gate` and friends print tables without paying for polars' import.
if TYPE_CHECKING:
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


def bars(items: list[tuple[str, float]], width: int = 30) -> str:
    """A text bar chart (values 0-1) that reads in the UI's markdown and in a terminal alike."""
    lines = [f"{label:>12} {'█' * round(value * width):<{width}} {value:.0%}" for label, value in items]
    return "```\n" + "\n".join(lines) + "\n```" if lines else "_nothing to plot_"
