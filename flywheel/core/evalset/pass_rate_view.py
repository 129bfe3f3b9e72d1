"""What the pass-rate page shows: one row per eval version and model version, and a small chart of
pass rate against eval version.

Pure functions over the rows of `regression.pass_rates()`; the Dagster asset turns them into a table
and an image. The chart is a hand-built SVG so that no plotting library and no network is needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from urllib.parse import quote

SHARED_NOW, SHARED_BEFORE = "shared with previous version: now", "shared with previous version: before"

# Dagster's asset page renders a Markdown metadata value inline only when it is shorter than 1000
# characters (longer ones hide behind "[Show Markdown]"), so the whole image link must fit in that.
INLINE_MARKDOWN_LIMIT = 1000
MIN_VERSIONS_SHOWN = 2

# The drawing, in SVG user units: the plot spans LEFT..RIGHT and TOP..BOTTOM, axis labels and the
# legend fill the margins (up to 3 digits per coordinate keeps the link short).
WIDTH, HEIGHT, LEFT, RIGHT, TOP, BOTTOM = 250, 124, 30, 244, 6, 86
# Short colour names: every character of the image counts against the inline limit.
GATED_COLOUR, OTHER_COLOUR, ADVERSARIAL_COLOUR, GATE_COLOUR = "teal", "gray", "orange", "red"


def per_version(rows: list[dict], threshold: float) -> list[dict]:
    """One record per (eval version, model version), newest version first: n and pass rate overall and
    on the adversarial slice, the rows shared with the previous version (before and now), and whether
    the pair meets the gate. A slice without results is None."""
    by_pair: dict[tuple[int, str], dict[str, dict]] = {}
    for r in rows:
        by_pair.setdefault((r["eval_version"], r["model_version"]), {})[r["slice"]] = r
    out = []
    for (version, model), slices in sorted(by_pair.items(), key=lambda item: (-item[0][0], item[0][1])):
        overall, adversarial = slices.get("overall"), slices.get("adversarial")
        now, before = slices.get(SHARED_NOW), slices.get(SHARED_BEFORE)
        record = {
            "eval_version": version, "model_version": model,
            "n": _n(overall), "pass_rate": _rate(overall),
            "adversarial_n": _n(adversarial), "adversarial_pass_rate": _rate(adversarial),
            "shared_n": _n(now), "shared_pass_rate_before": _rate(before), "shared_pass_rate_now": _rate(now),
        }
        record["meets_gate"] = meets_gate(record, threshold)
        out.append(record)
    return out


def _n(row: dict | None) -> int | None:
    return None if row is None else int(row["n"])


def _rate(row: dict | None) -> float | None:
    return None if row is None else float(row["pass_rate"])


def meets_gate(record: dict, threshold: float) -> bool | None:
    """The gate's rule on one record: overall and adversarial at the threshold, no asterisk."""
    if record["pass_rate"] is None:
        return None
    adversarial = record["adversarial_pass_rate"]
    return record["pass_rate"] >= threshold and (adversarial is None or adversarial >= threshold)


def gated_model(records: list[dict]) -> str | None:
    """The model the chart follows: the one with results on the newest version (ties: the greatest
    name, as `story.version_drop` picks), so its line spans the versions the gate has judged."""
    if not records:
        return None
    return max(records, key=lambda r: (r["eval_version"], r["model_version"]))["model_version"]


def chart_markdown(records: list[dict], threshold: float, limit: int = INLINE_MARKDOWN_LIMIT) -> str:
    """A Markdown image of pass rate against eval version that fits the inline limit: the newest
    versions, as many as fit (at least MIN_VERSIONS_SHOWN; below that it is returned anyway and the UI
    puts it behind a button)."""
    versions = sorted({r["eval_version"] for r in records if r["pass_rate"] is not None})
    if not versions:
        return "_no results to plot yet_"
    for start in range(len(versions)):
        shown = versions[start:]
        text = _image(chart_svg([r for r in records if r["eval_version"] in shown], threshold), _alt(shown))
        if len(text) < limit or len(shown) <= MIN_VERSIONS_SHOWN:
            return text
    raise AssertionError("unreachable: the loop returns at the last version")


def _alt(shown: list[int]) -> str:
    return f"pass rate by eval version v{shown[0]}-v{shown[-1]}"


def _image(svg: str, alt: str) -> str:
    # Percent-encode all but the characters SVG needs most (each %XX costs two more against the limit):
    # a bare Markdown link destination may not hold spaces or unbalanced parentheses, and '#' would
    # start a fragment. Dagster's Markdown sanitizer allows data: in an image's src.
    return f"![{alt}](data:image/svg+xml,{quote(svg, safe=chr(39) + '<>/=:,.-')})"


def chart_svg(records: list[dict], threshold: float) -> str:
    """Pass rate (y) against eval version (x): the gate threshold dashed red under the lines, other
    models' overall lines in grey, the gated model's adversarial slice and, on top, its overall line.
    Compact on purpose: relative path steps and merged straight runs keep the image link under the
    inline limit."""
    plotted = [r for r in records if r["pass_rate"] is not None]
    model = gated_model(plotted)
    others = sorted({r["model_version"] for r in plotted} - {model})
    lines = [*((m, "pass_rate", OTHER_COLOUR) for m in others), (model, "adversarial_pass_rate", ADVERSARIAL_COLOUR),
             (model, "pass_rate", GATED_COLOUR)]  # the gated model's overall line last, drawn on top
    series = [([(r["eval_version"], r[key]) for r in plotted if r["model_version"] == m and r[key] is not None], colour)
              for m, key, colour in lines]
    frame = _Frame.around([point for points, _ in series for point in points], threshold)
    paths = "".join(_path([(frame.x(v), frame.y(rate)) for v, rate in points], colour) for points, colour in series)
    gate = f"<path d='M{LEFT},{frame.y(threshold)}H{frame.x(frame.last)}' stroke='{GATE_COLOUR}' stroke-dasharray='3'/>"
    # Drawn at 1.76 times its user units (the height follows the viewBox): a 9-unit font reads at 16px,
    # and 440px fits the value column of Dagster's metadata table.
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='440' viewBox='0 0 {WIDTH} {HEIGHT}' "
            f"font-family='sans-serif' font-size='9'><g fill='none' stroke-width='2'>{gate}{paths}</g>"
            f"{_axes(frame, threshold)}{_legend(model, bool(others))}</svg>")


@dataclass(frozen=True)
class _Frame:
    """Where a (version, rate) lands: versions a whole number of units apart (short path steps), rates
    from `low` (a whole 10%, at or under the lowest rate and under the gate, so the gate line has room
    below it) to 100%. Rounding first: 0.7 * 10 is 7.000000000000001."""

    first: int
    last: int
    step: int
    low: float

    @classmethod
    def around(cls, points: list[tuple[int, float]], threshold: float) -> _Frame:
        first, last = min(v for v, _ in points), max(v for v, _ in points)
        tenths = min(math.floor(round(min(r for _, r in points) * 10, 6)), math.ceil(round(threshold * 10, 6)) - 1)
        return cls(first, last, (RIGHT - LEFT) // max(last - first, 1), max(tenths, 0) / 10)

    def x(self, version: int) -> int:
        return LEFT + (version - self.first) * self.step

    def y(self, rate: float) -> int:
        return round(BOTTOM - (rate - self.low) / (1 - self.low) * (BOTTOM - TOP))


def _axes(frame: _Frame, threshold: float) -> str:
    """Rates on the left (the gate's in red; 100% left out when the gate is too close to it to read),
    the first and last version below."""
    top = _text(LEFT - 2, frame.y(1.0) + 3, "100%") if frame.y(threshold) - frame.y(1.0) >= 9 else ""
    last = _text(frame.x(frame.last), BOTTOM + 12, f"v{frame.last}") if frame.last != frame.first else ""
    return (f"<g text-anchor='end'>{top}{_text(LEFT - 2, frame.y(threshold) + 3, f'{threshold:.0%}', GATE_COLOUR)}"
            f"{_text(LEFT - 2, frame.y(frame.low) + 3, f'{frame.low:.0%}')}{last}</g>"
            f"{_text(LEFT, BOTTOM + 12, f'v{frame.first}')}")


def _legend(model: str, has_others: bool) -> str:
    line = (f"<text x='4' y='{HEIGHT - 12}'>{_escape(_short(model))}: <tspan fill='{GATED_COLOUR}'>overall</tspan>, "
            f"<tspan fill='{ADVERSARIAL_COLOUR}'>adversarial</tspan></text>")
    return line + (_text(4, HEIGHT - 2, "other builds", OTHER_COLOUR) if has_others else "")


def _text(x: int, y: int, text: str, colour: str | None = None) -> str:
    fill = f" fill='{colour}'" if colour else ""
    return f"<text x='{x}' y='{y}'{fill}>{_escape(text)}</text>"


def _path(points: list[tuple[int, int]], colour: str) -> str:
    """A polyline as 'M x,y l dx,dy ...' with runs of equal steps merged into one (a flat line is one step)."""
    points = sorted(points)
    if not points:
        return ""
    if len(points) == 1:  # a single version is a dot: a zero-length line would not show
        (px, py), = points
        return f"<circle cx='{px}' cy='{py}' r='3' fill='{colour}'/>"
    steps: list[list[int]] = []
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        dx, dy = x1 - x0, y1 - y0
        if steps and steps[-1][0] * dy == steps[-1][1] * dx and steps[-1][0] > 0:
            steps[-1] = [steps[-1][0] + dx, steps[-1][1] + dy]  # same direction: one longer step
        else:
            steps.append([dx, dy])
    return f"<path d='M{points[0][0]},{points[0][1]}l{_numbers(n for s in steps for n in s)}' stroke='{colour}'/>"


def _numbers(numbers) -> str:
    """SVG number list without needless separators: '9-1,9,2' (a minus sign separates by itself)."""
    out = ""
    for n in numbers:
        out += ("" if not out or n < 0 else ",") + str(n)
    return out


def _short(model: str) -> str:
    """The model name without a trailing parenthesis ('relay-assist-2026.04 (simulated)'), to save room."""
    return model.split(" (")[0]


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
