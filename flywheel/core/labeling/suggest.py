"""Label suggestions: a calibrated scikit-learn classifier over the cached sentence embeddings.

A suggestion is never a label. It tells the reviewer which bucket and taxonomy code the labelled
traces most like this one got, with a calibrated probability, and the three labelled traces it is
most like, so the common case is one keypress; the reviewer still decides, and nothing enters the
eval set unreviewed.

Two stages, as a reviewer decides: failure or not a bug (`known_failure` and `new_failure` labels both
count as failures: a code that exists now is a known failure of it), then, for a failure, which code.
Each stage is a logistic regression calibrated by `CalibratedClassifierCV` (sigmoid, 3-fold), and
the suggestion's confidence is the product: P(failure) x P(code | failure), or P(not a bug).
Below `min_confidence` the suggester abstains: it shows the similar traces but suggests nothing.

Features are two normalised embeddings side by side, what the user asked and what the assistant
answered: whether a reply is a failure is in the reply, which failure is mostly in the question.
A class with fewer than MIN_EXAMPLES labels is not suggested until it has more (calibration needs a
few examples per fold); until both failures and non-bugs have that many, the suggester abstains.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field

import numpy as np

FAILURE, NOT_A_BUG = "failure", "not_a_bug"
MIN_EXAMPLES = 3  # per class, before it can be suggested
MAX_FOLDS = 3  # calibration folds: more cost a refit each and barely move the estimate at a few hundred labels
SIMILAR = 3  # labelled traces shown beside each suggestion


@dataclass(frozen=True)
class Suggestion:
    bucket: str | None  # known_failure or not_a_bug; None when the suggester abstains
    code: str | None
    confidence: float  # calibrated probability of (bucket, code); for an abstention, of the best guess
    similar: list[tuple[int, float]] = field(default_factory=list)  # (index into the training labels, cosine)

    @property
    def abstained(self) -> bool:
        return self.bucket is None


def _calibrated(features: np.ndarray, targets: np.ndarray, seed: int):
    """A logistic regression calibrated by k-fold sigmoid scaling, or None with fewer than two classes."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression

    classes, counts = np.unique(targets, return_counts=True)
    if len(classes) < 2:
        return None
    folds = int(min(MAX_FOLDS, counts.min()))
    model = CalibratedClassifierCV(LogisticRegression(C=4.0, max_iter=2000, random_state=seed),
                                   method="sigmoid", cv=folds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)  # a fold without a rare class is expected
        model.fit(features, targets)
    return model


def _frequent(targets: list[str | None]) -> np.ndarray:
    """Mask of the rows whose class has at least MIN_EXAMPLES examples."""
    values, counts = np.unique(np.array([t or "" for t in targets], dtype=object), return_counts=True)
    keep = {v for v, c in zip(values, counts) if c >= MIN_EXAMPLES and v}
    return np.array([(t or "") in keep for t in targets], dtype=bool)


class Suggester:
    """Trained on the labels in force; `suggest` is cheap (two predict_proba and one matrix product)."""

    def __init__(self, features: np.ndarray, buckets: list[str], codes: list[str | None], *,
                 min_confidence: float, seed: int = 0):
        self.features = np.asarray(features, dtype=np.float32)
        self.buckets, self.codes = list(buckets), list(codes)
        self.min_confidence = min_confidence
        failure = np.array([b != NOT_A_BUG for b in buckets])
        stage = np.where(failure, FAILURE, NOT_A_BUG)
        keep = _frequent(list(stage))
        # Until both failures and non-bugs have a few labels there is nothing to tell apart: abstain.
        self.bucket_model = _calibrated(self.features[keep], stage[keep], seed) if keep.any() else None
        coded = failure & _frequent([c if f else None for c, f in zip(codes, failure)])
        code_targets = np.array([codes[i] for i in np.flatnonzero(coded)], dtype=object)
        self.code_model = _calibrated(self.features[coded], code_targets.astype(str), seed) if coded.any() else None
        self.single_code = str(code_targets[0]) if coded.any() and self.code_model is None else None

    @property
    def trained_on(self) -> int:
        return len(self.buckets)

    def _bucket_probability(self, features: np.ndarray) -> np.ndarray:
        """P(failure) per row."""
        classes = list(self.bucket_model.classes_)
        return self.bucket_model.predict_proba(features)[:, classes.index(FAILURE)]

    def _code_probabilities(self, features: np.ndarray) -> tuple[list[str], np.ndarray]:
        if self.code_model is not None:
            return [str(c) for c in self.code_model.classes_], self.code_model.predict_proba(features)
        if self.single_code is not None:
            return [self.single_code], np.ones((len(features), 1))
        return [], np.zeros((len(features), 0))

    def suggest(self, features: np.ndarray) -> list[Suggestion]:
        features = np.asarray(features, dtype=np.float32)
        if not len(features):
            return []
        similar = self.similar(features)
        if self.bucket_model is None:
            return [Suggestion(None, None, 0.0, s) for s in similar]
        p_failure = self._bucket_probability(features)
        code_names, p_code = self._code_probabilities(features)
        out = []
        for i, pf in enumerate(p_failure):
            options = [(NOT_A_BUG, None, 1.0 - pf)]
            if code_names:
                best = int(np.argmax(p_code[i]))
                options.append(("known_failure", code_names[best], pf * float(p_code[i, best])))
            bucket, code, confidence = max(options, key=lambda o: o[2])
            if confidence < self.min_confidence:
                out.append(Suggestion(None, None, float(confidence), similar[i]))
            else:
                out.append(Suggestion(bucket, code, float(confidence), similar[i]))
        return out

    def similar(self, features: np.ndarray, k: int = SIMILAR) -> list[list[tuple[int, float]]]:
        """The k labelled traces most like each row (cosine over both halves of the features)."""
        sims = (features @ self.features.T) / 2.0  # two unit vectors side by side: a dot product of 2 at most
        order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        return [[(int(j), float(sims[i, j])) for j in row] for i, row in enumerate(order)]


def features(user_vectors: np.ndarray, assistant_vectors: np.ndarray) -> np.ndarray:
    """What the user asked beside what the assistant answered (each already L2-normalised)."""
    return np.hstack([user_vectors, assistant_vectors]).astype(np.float32)


def fingerprint(label_ids: list[str]) -> str:
    """Which labels a suggester was trained on: the same labels, the same model."""
    return hashlib.sha256("\n".join(sorted(label_ids)).encode()).hexdigest()[:16]
