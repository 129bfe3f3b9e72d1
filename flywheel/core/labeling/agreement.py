"""Agreement between two reviewers of the same traces: percent agreement and Cohen's kappa (chance-
corrected, scikit-learn's), on the bucket and on the taxonomy code, per week."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence

from flywheel.core.labeling.labels import Label


def _kappa(first: Sequence[str], second: Sequence[str]) -> float | None:
    """Cohen's kappa, or None where it is undefined (both reviewers used one and the same answer
    throughout: there is no disagreement that chance could explain)."""
    if len(set(first) | set(second)) < 2:
        return None
    from sklearn.metrics import cohen_kappa_score  # only the agreement page pays for scikit-learn

    value = float(cohen_kappa_score(list(first), list(second)))
    return None if math.isnan(value) else value


def summarise(pairs: Sequence[tuple[Label, Label]]) -> dict:
    buckets = ([a.bucket for a, _ in pairs], [b.bucket for _, b in pairs])
    codes = ([a.taxonomy_code or "-" for a, _ in pairs], [b.taxonomy_code or "-" for _, b in pairs])
    n = len(pairs)

    def share(x, y):
        return sum(p == q for p, q in zip(x, y)) / n if n else None

    return {"pairs": n, "bucket_agreement": share(*buckets), "bucket_kappa": _kappa(*buckets) if n else None,
            "code_agreement": share(*codes), "code_kappa": _kappa(*codes) if n else None}


def per_week(pairs: Sequence[tuple[str, Label, Label]], week_of: Callable[[str], dt.datetime | None]) -> list[dict]:
    """One summary per week (of the trace, not of the review), oldest first, then the overall one."""
    weeks: dict[dt.datetime | None, list[tuple[Label, Label]]] = {}
    for ref, first, second in pairs:
        weeks.setdefault(week_of(ref), []).append((first, second))
    out = [{"week": week, **summarise(found)} for week, found in sorted(weeks.items(), key=lambda w: str(w[0]))]
    if pairs:
        out.append({"week": "all", **summarise([(a, b) for _, a, b in pairs])})
    return out
