"""flywheel drift: station 5's calibrated coverage drift."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import click

from flywheel.cli.common import data_dir_option, main


@main.group("drift")
def drift_group() -> None:
    """Does the eval set still look like production?"""


def _eval_texts(path: Path) -> list[str]:
    """Eval-row JSONL (input messages) or a CSV with an `input` column."""
    from flywheel.core.drift.embeddings import user_text
    from flywheel.core.common.records import numbered_records

    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            if "input" not in (reader.fieldnames or []):
                raise click.ClickException(f"{path}:1: no `input` column")
            return [r["input"] for r in reader if (r.get("input") or "").strip()]
    texts = []
    for number, rec in numbered_records(path):
        if isinstance(rec, str) or not isinstance(rec.get("input"), (list, str)):
            raise click.ClickException(f"{path}:{number}: expected an eval row with an `input`")
        texts.append(rec["input"] if isinstance(rec["input"], str) else user_text(rec["input"]))
    return texts


def _trace_texts(path: Path) -> list[str]:
    from flywheel.core.drift.embeddings import user_text
    from flywheel.core.common.records import numbered_records

    texts = []
    for number, rec in numbered_records(path):
        if isinstance(rec, str) or not isinstance(rec.get("messages"), list):
            raise click.ClickException(f"{path}:{number}: expected a trace with `messages`")
        texts.append(user_text(rec["messages"]))
    return texts


@drift_group.command("score")
@click.option("--eval", "eval_path", type=click.Path(dir_okay=False, exists=True, path_type=Path), required=True,
              help="Eval rows: eval-row JSONL, or a CSV with an `input` column.")
@click.option("--current", type=click.Path(dir_okay=False, exists=True, path_type=Path), required=True,
              help="This month's traces (trace JSONL).")
@click.option("--baseline", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Last month's traces (trace JSONL); without it there is no p-value and no alert.")
@click.option("--alpha", type=click.FloatRange(0, 1), default=0.01, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@data_dir_option
def drift_score(eval_path: Path, current: Path, baseline: Path | None, alpha: float, as_json: bool,
                data_dir: Path | None) -> None:
    """Score how far a month of traces sits from an eval set; stateless (touches no warehouse).

    Texts are the traces' user turns and the rows' inputs, embedded with all-MiniLM-L6-v2.
    """
    from flywheel.core.drift.score import drift
    from flywheel.resources.embedder import load_embedder

    embedder = load_embedder()
    eval_v = embedder.encode(_eval_texts(eval_path))
    current_v = embedder.encode(_trace_texts(current))
    baseline_v = embedder.encode(_trace_texts(baseline)) if baseline else None
    try:
        result, _ = drift(eval_v, current_v, baseline_v, alpha=alpha)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(result.to_json()))
        return
    click.echo(f"drift score {result.score:.3f} (95% CI {result.ci_low:.3f}-{result.ci_high:.3f}) over "
               f"{result.n_current} traces against {result.n_eval} eval rows")
    if result.p_value is not None:
        click.echo(f"vs baseline: p = {result.p_value:.4f} -> {'ALERT: the eval set has fallen behind' if result.alert else 'no alert'}; "
                   f"{result.tail_share:.0%} of traces beyond the baseline's 95th percentile")
    click.echo(f"reverse coverage: {result.reverse_coverage:.0%} of eval rows had no trace near them")
