"""flywheel drift: station 5's calibrated coverage drift."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import click

from flywheel.cli.common import data_dir_option, main


@main.group("drift")
def drift_group() -> None:
    """Does the eval set still look like production?"""


# ---------------------------------------------------------------------------------------------
# Reading the files. A bad line is skipped and reported as `file:line: reason`, the rest is scored
# (as ingest quarantines). A reason names the field and the problem, never the value: traces hold
# customer data. A file with nothing usable in it is an error.
# ---------------------------------------------------------------------------------------------


@dataclass
class TextsRead:
    path: Path
    what: str  # "eval row" | "trace"
    texts: list[str] = field(default_factory=list)
    bad: list[tuple[int, str]] = field(default_factory=list)  # (line, reason)

    def check_usable(self) -> None:
        if self.texts:
            return
        if not self.bad:
            raise click.ClickException(f"{self.path}: empty: no {self.what}s in it")
        line, reason = self.bad[0]
        which = "its one line is" if len(self.bad) == 1 else f"all {len(self.bad)} lines are"
        raise click.ClickException(f"{self.path}: no usable {self.what}: {which} bad (line {line}: {reason})")


class _BadLine(ValueError):
    pass


def _messages_text(name: str, value) -> str:
    """The user turns of a list of {role, content}, or _BadLine naming what is wrong with it."""
    from flywheel.core.drift.embeddings import user_text

    if not isinstance(value, list):
        raise _BadLine(f'field "{name}" must be a list of {{role, content}}')
    if not value:
        raise _BadLine(f'field "{name}" must not be empty')
    for i, m in enumerate(value):
        if not isinstance(m, dict):
            raise _BadLine(f"{name}[{i}] must be a {{role, content}} object")
        if not isinstance(m.get("role"), str):
            raise _BadLine(f"{name}[{i}] has no role")
        if not isinstance(m.get("content"), str):
            raise _BadLine(f"{name}[{i}].content must be a string")
    text = user_text(value)
    if not text.strip():
        raise _BadLine(f'field "{name}" has no user turn to embed')
    return text


def _eval_row_text(rec) -> str:
    if not isinstance(rec, dict):
        raise _BadLine("record is not a JSON object")
    if rec.get("input") is None:
        hint = " (this looks like a trace, not an eval row)" if "messages" in rec else ""
        raise _BadLine(f'missing required field "input"{hint}')
    if isinstance(rec["input"], str):
        if not rec["input"].strip():
            raise _BadLine('field "input" must not be empty')
        return rec["input"]
    if not isinstance(rec["input"], list):
        raise _BadLine('field "input" must be a list of {role, content} or a string')
    return _messages_text("input", rec["input"])


def _trace_text(rec) -> str:
    if not isinstance(rec, dict):
        raise _BadLine("record is not a JSON object")
    if rec.get("messages") is None:
        hint = " (this looks like an eval row, not a trace)" if "input" in rec else ""
        raise _BadLine(f'missing required field "messages"{hint}')
    return _messages_text("messages", rec["messages"])


def _json_lines(path: Path) -> Iterator[tuple[int, object]]:
    """(line, record) for each non-blank line; _BadLine in place of a record that cannot be parsed."""
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            if number == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                yield number, _BadLine(f"not valid UTF-8 (byte {exc.start})")
                continue
            if not text.strip():
                continue
            try:
                yield number, json.loads(text.rstrip("\r\n"))
            except json.JSONDecodeError as exc:
                yield number, _BadLine(f"not valid JSON: {exc.msg} at column {exc.colno}")
            except RecursionError:
                yield number, _BadLine("not valid JSON: nested too deeply")


def _csv_inputs(path: Path) -> Iterator[tuple[int, object]]:
    """(line, input text) per non-blank CSV row; _BadLine in place of a row without a usable input."""
    # surrogateescape: a row with bytes that are not UTF-8 is one bad row, not an unreadable file.
    with open(path, newline="", encoding="utf-8-sig", errors="surrogateescape") as fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            return
        except csv.Error as exc:
            raise click.ClickException(f"{path}:1: cannot read the CSV header ({exc})") from None
        if "input" not in header:
            raise click.ClickException(f"{path}:1: no `input` column: an eval-row CSV needs one")
        column = header.index("input")
        while True:
            line = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise click.ClickException(f"{path}:{line}: cannot read the CSV from here on ({exc})") from None
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                yield line, _BadLine(f"row has {len(row)} cells, header has {len(header)}")
                continue
            cell = row[column]
            try:
                cell.encode("utf-8")
            except UnicodeEncodeError:
                yield line, _BadLine('field "input" is not valid UTF-8')
                continue
            yield line, cell if cell.strip() else _BadLine('field "input" must not be empty')


def read_texts(path: Path, what: str, option: str) -> TextsRead:
    """What to embed from an eval-row file (JSONL, or CSV with an `input` column) or a trace file (JSONL)."""
    suffix = path.suffix.lower()
    if suffix == ".parquet" or (what == "trace" and suffix == ".csv"):
        raise click.BadParameter(f"{path}: {what}s must be JSON Lines, one per line"
                                 + (" (or a CSV with an `input` column)" if what == "eval row" else ""),
                                 param_hint=option)
    out = TextsRead(path, what)
    try:
        if suffix == ".csv":
            for line, text in _csv_inputs(path):
                if isinstance(text, _BadLine):
                    out.bad.append((line, str(text)))
                else:
                    out.texts.append(text)
        else:
            parse = _eval_row_text if what == "eval row" else _trace_text
            for line, rec in _json_lines(path):
                try:
                    if isinstance(rec, _BadLine):
                        raise rec
                    out.texts.append(parse(rec))
                except _BadLine as exc:
                    out.bad.append((line, str(exc)))
    except OSError as exc:
        raise click.ClickException(f"{path}: cannot read it ({exc.strerror or exc})") from None
    return out


def _report_skipped(files: list[TextsRead]) -> None:
    for f in files:
        for line, reason in f.bad:
            click.echo(f"{f.path}:{line}: {reason}", err=True)
    for f in files:
        if f.bad:
            click.echo(f"{f.path}: {len(f.bad)} bad line(s) skipped, {len(f.texts)} {f.what}(s) scored", err=True)


@drift_group.command("score")
@click.option("--eval", "eval_path", type=click.Path(dir_okay=False, exists=True, path_type=Path), required=True,
              help="Eval rows: eval-row JSONL, or a CSV with an `input` column.")
@click.option("--current", type=click.Path(dir_okay=False, exists=True, path_type=Path), required=True,
              help="This month's traces (trace JSONL).")
@click.option("--baseline", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Last month's traces (trace JSONL); without it there is no p-value and no alert.")
@click.option("--alpha", type=click.FloatRange(0, 1), default=0.01, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON, with the bad lines skipped per file.")
@data_dir_option
def drift_score(eval_path: Path, current: Path, baseline: Path | None, alpha: float, as_json: bool,
                data_dir: Path | None) -> None:
    """Score how far a month of traces sits from an eval set; stateless (touches no warehouse).

    Texts are the traces' user turns and the rows' inputs, embedded with all-MiniLM-L6-v2. A bad line
    is skipped and reported on stderr as file:line: reason (never its content), and the rest is scored;
    a file with no usable line is an error.
    """
    files = {"eval": read_texts(eval_path, "eval row", "--eval"), "current": read_texts(current, "trace", "--current")}
    if baseline:
        files["baseline"] = read_texts(baseline, "trace", "--baseline")
    for f in files.values():
        f.check_usable()  # before the model loads: a wrong file fails in a moment
    _report_skipped(list(files.values()))

    from flywheel.core.drift.score import drift
    from flywheel.resources.embedder import load_embedder

    embedder = load_embedder()
    eval_v = embedder.encode(files["eval"].texts)
    current_v = embedder.encode(files["current"].texts)
    baseline_v = embedder.encode(files["baseline"].texts) if baseline else None
    try:
        result, _ = drift(eval_v, current_v, baseline_v, alpha=alpha)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        skipped = {name: (len(files[name].bad) if name in files else None) for name in ("eval", "current", "baseline")}
        click.echo(json.dumps({**result.to_json(), "skipped_lines": skipped}))
        return
    click.echo(f"drift score {result.score:.3f} (95% CI {result.ci_low:.3f}-{result.ci_high:.3f}) over "
               f"{result.n_current} traces against {result.n_eval} eval rows")
    if result.p_value is not None:
        click.echo(f"vs baseline: p = {result.p_value:.4f} -> {'ALERT: the eval set has fallen behind' if result.alert else 'no alert'}; "
                   f"{result.tail_share:.0%} of traces beyond the baseline's 95th percentile")
    click.echo(f"reverse coverage: {result.reverse_coverage:.0%} of eval rows had no trace near them")
