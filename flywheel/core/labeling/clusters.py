"""Clusters of the unexplained: "34 traces about SSO sign-in" instead of 34 separate traces.

Agglomerative clustering (average linkage, cosine distance) cut at a distance threshold, so the number
of clusters is found, not given; groups smaller than `min_size` are noise and reported as such. Each
cluster carries its size, the traces nearest its centre (the ones to read first), characteristic
terms (TF-IDF of the cluster against the rest) and, when the caller says which traces are covered by a
taxonomy code, the covered share.

A term must occur in at least MIN_TERM_TRACES traces, so a cluster is described by the vocabulary
several conversations share, never by one customer's string; placeholders ([PERSON_1]) are no terms.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

# Tuned on BANKING77's training split (benchmarks/assist.py --tune: best ARI of 0.30-0.60 on three
# 3,000-query subsamples); on its test split ARI 0.45 against 0.50 for k-means told the answer. A fixed
# cut over-splits broad intents (Bitext: 106 clusters for 27 intents) and finds more clusters in more traces.
DEFAULT_DISTANCE = 0.45
# Agglomerative clustering holds all n^2/2 distances: 10,000 traces peak at about 0.9 GB.
MAX_TRACES = 20_000
DEFAULT_MIN_SIZE = 3
TYPICAL = 3
TERMS = 5
MIN_TERM_TRACES = 3
PLACEHOLDER = re.compile(r"\[[A-Z][A-Z_]*(?:_\d+)?\]")


@dataclass
class Cluster:
    cluster_id: int
    members: list[int]  # indexes into the input, nearest the centre first
    terms: list[str]
    covered_share: float | None

    @property
    def size(self) -> int:
        return len(self.members)

    @property
    def typical(self) -> list[int]:
        return self.members[:TYPICAL]

    def to_json(self, ids: list[str]) -> dict:
        return {"cluster_id": self.cluster_id, "size": self.size, "trace_ids": [ids[i] for i in self.members],
                "typical": [ids[i] for i in self.typical], "terms": self.terms,
                "covered_share": None if self.covered_share is None else round(self.covered_share, 4)}


@dataclass
class Clustering:
    clusters: list[Cluster]
    noise: list[int]  # indexes of traces in no cluster

    def assignments(self, n: int) -> np.ndarray:
        """Cluster id per input (-1 for noise), for scoring against known classes."""
        out = np.full(n, -1, dtype=np.int64)
        for c in self.clusters:
            out[c.members] = c.cluster_id
        return out

    def summary(self) -> dict:
        return {"clusters": len(self.clusters), "clustered": sum(c.size for c in self.clusters),
                "noise": len(self.noise), "largest": max((c.size for c in self.clusters), default=0)}


def _labels(vectors: np.ndarray, distance: float) -> np.ndarray:
    from sklearn.cluster import AgglomerativeClustering

    if len(vectors) < 2:
        return np.zeros(len(vectors), dtype=np.int64)
    model = AgglomerativeClustering(n_clusters=None, distance_threshold=distance, metric="cosine", linkage="average")
    return model.fit_predict(vectors)


def characteristic_terms(texts: list[str], groups: list[list[int]], k: int = TERMS) -> list[list[str]]:
    """Per group, the k terms whose mean TF-IDF in the group most exceeds their mean elsewhere."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    cleaned = [PLACEHOLDER.sub(" ", t) for t in texts]
    try:
        vectorizer = TfidfVectorizer(stop_words="english", min_df=min(MIN_TERM_TRACES, len(texts)), sublinear_tf=True,
                                     token_pattern=r"(?u)\b[^\W\d_][^\W\d_]+\b", ngram_range=(1, 2))
        matrix = vectorizer.fit_transform(cleaned)
    except ValueError:  # no term occurs in enough traces
        return [[] for _ in groups]
    vocabulary = vectorizer.get_feature_names_out()
    total = np.asarray(matrix.sum(axis=0)).ravel()
    out = []
    for members in groups:
        inside = np.asarray(matrix[members].sum(axis=0)).ravel()
        outside_n = matrix.shape[0] - len(members)
        lift = inside / len(members) - ((total - inside) / outside_n if outside_n else 0.0)
        present = np.asarray((matrix[members] > 0).sum(axis=0)).ravel()
        lift[present < min(MIN_TERM_TRACES, len(members))] = -np.inf  # a term of one or two traces says nothing
        best = [int(i) for i in np.argsort(-lift, kind="stable")[: k * 3] if np.isfinite(lift[i]) and lift[i] > 0]
        terms: list[str] = []
        for i in best:  # "sso login" after "sso" and "login" adds nothing
            term = str(vocabulary[i])
            if not any(term in t or t in term for t in terms):
                terms.append(term)
            if len(terms) == k:
                break
        out.append(terms)
    return out


def find_clusters(vectors: np.ndarray, texts: list[str], *, covered: list[bool] | None = None,
                  distance: float = DEFAULT_DISTANCE, min_size: int = DEFAULT_MIN_SIZE) -> Clustering:
    """Clusters of L2-normalised vectors, largest first (ids 1, 2, ...), and the noise."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if len(vectors) > MAX_TRACES:
        raise ValueError(f"{len(vectors):,} traces to cluster; at most {MAX_TRACES:,} fit in memory (the distances "
                         "between every pair are kept): cluster a week or a sample")
    if len(vectors) < min_size:
        return Clustering([], list(range(len(vectors))))
    raw = _labels(vectors, distance)
    groups, noise = [], []
    for label in np.unique(raw):
        members = np.flatnonzero(raw == label)
        if len(members) < min_size:
            noise += members.tolist()
            continue
        centre = vectors[members].mean(axis=0)
        centre /= np.linalg.norm(centre) or 1.0
        order = np.argsort(-(vectors[members] @ centre), kind="stable")
        groups.append(members[order].tolist())
    groups.sort(key=lambda g: (-len(g), g[0]))
    terms = characteristic_terms(texts, groups) if groups else []
    clusters = [Cluster(i + 1, g, t, None if covered is None else float(np.mean([covered[j] for j in g])))
                for i, (g, t) in enumerate(zip(groups, terms))]
    return Clustering(clusters, sorted(noise))
