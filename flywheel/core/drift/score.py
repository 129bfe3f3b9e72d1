"""Station 5: coverage drift, calibrated so that a climb is a signal and not noise.

For each of the month's production traces, distance = 1 - the highest cosine similarity to any active
eval row (exact, by blocked matrix products: an approximate index's misses would add noise to the
score). The drift score is the mean distance. The baseline is last month's traces rescored against the
*current* eval set, so refreshing the eval set is never read as drift; a one-sided permutation test of
"this month is further from the eval set than last month" gives the p-value, and the alert fires when
p < alpha (0.01 by default: testing monthly at 0.05 raises a false alarm about every other year). A
bootstrap gives a 95% interval on the score; the tail share is the share of traces beyond the
baseline's 95th-percentile distance; reverse coverage is the share of eval rows no trace came near.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

BLOCK = 4096


def nearest(queries: np.ndarray, corpus: np.ndarray, block: int = BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """(highest similarity, index of it) of each query row in corpus; rows are L2-normalised vectors.
    Exact, in blocks of queries so memory stays at block x len(corpus)."""
    best = np.full(len(queries), -np.inf, dtype=np.float32)
    where = np.zeros(len(queries), dtype=np.int64)
    if len(corpus) == 0:
        return best, where
    for start in range(0, len(queries), block):
        sims = queries[start : start + block] @ corpus.T
        where[start : start + block] = sims.argmax(axis=1)
        best[start : start + block] = sims[np.arange(len(sims)), where[start : start + block]]
    return best, where


@dataclass
class DriftResult:
    score: float
    ci_low: float
    ci_high: float
    tail_share: float | None
    p_value: float | None
    alert: bool
    reverse_coverage: float
    n_current: int
    n_eval: int

    def to_json(self) -> dict:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def permutation_p_value(current: np.ndarray, baseline: np.ndarray, n_permutations: int, rng: np.random.Generator) -> float:
    """One-sided: the chance, were both months from one distribution, of a mean difference at least
    as large as the one seen. (1 + hits) / (1 + permutations), so it is never exactly 0."""
    observed = current.mean() - baseline.mean()
    pooled = np.concatenate([current, baseline])
    n = len(current)
    hits = 0
    for _ in range(n_permutations):
        rng.shuffle(pooled)
        hits += int(pooled[:n].mean() - pooled[n:].mean() >= observed)
    return (1 + hits) / (1 + n_permutations)


def drift(
    eval_vectors: np.ndarray, current_vectors: np.ndarray, baseline_vectors: np.ndarray | None = None, *,
    alpha: float = 0.01, n_permutations: int = 2000, n_bootstrap: int = 1000, coverage_distance: float = 0.5,
    seed: int = 0, current_rows: np.ndarray | None = None, baseline_rows: np.ndarray | None = None,
) -> tuple[DriftResult, np.ndarray]:
    """The drift result and each current trace's distance to its nearest eval row.

    `current_rows` / `baseline_rows` are masks over the eval rows each month may be measured against
    (default: all). The station leaves out the rows folded in from that same month's traffic: last
    month's most distant traces go to review through the drift-focus stratum and come back as rows
    aimed at exactly them, so rescored against those rows last month looks closer than any fresh month
    could, and an unchanged month reads as drift."""
    if len(eval_vectors) == 0 or len(current_vectors) == 0:
        raise ValueError("drift needs at least one eval row and one current trace")
    rng = np.random.default_rng(seed)
    sim, _ = nearest(current_vectors, eval_vectors if current_rows is None else eval_vectors[current_rows])
    distances = (1.0 - sim).astype(np.float64)
    score = float(distances.mean())
    boot = distances[rng.integers(0, len(distances), size=(n_bootstrap, len(distances)))].mean(axis=1)
    ci_low, ci_high = (float(x) for x in np.percentile(boot, [2.5, 97.5]))
    # Reverse coverage: eval rows with no current trace within coverage_distance.
    row_sim, _ = nearest(eval_vectors, current_vectors)
    reverse = float(np.mean(1.0 - row_sim > coverage_distance))
    p_value = tail = None
    alert = False
    if baseline_vectors is not None and len(baseline_vectors):
        base_sim, _ = nearest(baseline_vectors, eval_vectors if baseline_rows is None else eval_vectors[baseline_rows])
        base = (1.0 - base_sim).astype(np.float64)
        p_value = permutation_p_value(distances, base, n_permutations, rng)
        alert = bool(p_value < alpha)
        tail = float(np.mean(distances > np.percentile(base, 95)))
    result = DriftResult(score, ci_low, ci_high, tail, p_value, alert, reverse, len(current_vectors), len(eval_vectors))
    return result, distances
