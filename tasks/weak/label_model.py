"""Label models: one probabilistic label per item from its labeling functions' votes.

All three take the vote matrix of :class:`tasks.weak.functions.Votes` (class indices, ``-1``
abstain), fit without any human label, and give class probabilities per item (NaN rows for an
item no function voted on) and an estimate of each function's accuracy:

- ``majority``: each item's vote shares (ties split evenly); accuracies not estimated.
- ``dawid_skene``: Dawid & Skene's EM with abstain as an answer of its own, so a function that
  only ever votes one class still tells the model something (how often it fires for each true
  class); our code, no extra dependency.
- ``snorkel``: Snorkel's ``LabelModel`` (matrix completion over the functions' agreements;
  the ``snorkel`` package, with the CPU torch).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from tasks.weak.functions import ABSTAIN

LABEL_MODELS = ("majority", "dawid_skene", "snorkel")


class LabelModel(Protocol):
    """Fit on votes, then class probabilities per item and accuracy per function."""

    def fit(self, votes: np.ndarray, n_classes: int) -> LabelModel: ...

    def predict_proba(self, votes: np.ndarray) -> np.ndarray: ...

    def accuracies(self) -> np.ndarray | None: ...


def _counts(votes: np.ndarray, n_answers: int, abstain_as: int | None = None) -> np.ndarray:
    """One-hot votes ``(n, m, n_answers)``; an abstain is answer ``abstain_as`` (or nothing)."""
    votes = np.asarray(votes, dtype=np.int64)
    counts = np.zeros((*votes.shape, n_answers))
    rows, functions = np.nonzero(votes != ABSTAIN)
    counts[rows, functions, votes[rows, functions]] = 1.0
    if abstain_as is not None:
        rows, functions = np.nonzero(votes == ABSTAIN)
        counts[rows, functions, abstain_as] = 1.0
    return counts


def _unvoted_nan(votes: np.ndarray, proba: np.ndarray) -> np.ndarray:
    proba = np.array(proba, dtype=np.float64)
    proba[(np.asarray(votes) == ABSTAIN).all(axis=1)] = np.nan
    return proba


class MajorityLabelModel:
    """Vote shares per item (ties split evenly)."""

    def fit(self, votes: np.ndarray, n_classes: int) -> MajorityLabelModel:
        self.n_classes = n_classes
        return self

    def predict_proba(self, votes: np.ndarray) -> np.ndarray:
        counts = _counts(votes, self.n_classes).sum(axis=1)
        total = counts.sum(axis=1, keepdims=True)
        return _unvoted_nan(votes, counts / np.maximum(total, 1.0))

    def accuracies(self) -> np.ndarray | None:
        return None


class DawidSkeneLabelModel:
    """Dawid-Skene EM over the functions, abstain an answer of its own."""

    def __init__(self, smoothing: float = 0.01, max_iter: int = 200) -> None:
        self.smoothing, self.max_iter = smoothing, max_iter

    def fit(self, votes: np.ndarray, n_classes: int) -> DawidSkeneLabelModel:
        from tasks.annotation.aggregate import dawid_skene_em

        self.n_classes = n_classes
        # every item, also those all functions abstain on: how often a function stays silent
        # on each true class is half of what it tells
        counts = _counts(votes, n_classes + 1, abstain_as=n_classes)
        _, self.priors, self.confusion, self.n_iter = dawid_skene_em(
            counts, n_classes, max_iter=self.max_iter, smoothing=self.smoothing
        )
        return self

    def predict_proba(self, votes: np.ndarray) -> np.ndarray:
        counts = _counts(votes, self.n_classes + 1, abstain_as=self.n_classes)
        log_post = np.log(self.priors)[None, :] + np.einsum(
            "iar,ajr->ij", counts, np.log(self.confusion)
        )
        proba = np.exp(log_post - log_post.max(axis=1, keepdims=True))
        return _unvoted_nan(votes, proba / proba.sum(axis=1, keepdims=True))

    def accuracies(self) -> np.ndarray | None:
        """P(a function's vote is right | it votes), per function."""
        k = self.n_classes
        right = np.einsum("ajj->aj", self.confusion[:, :, :k]) @ self.priors
        fires = self.confusion[:, :, :k].sum(axis=2) @ self.priors
        return right / np.maximum(fires, 1e-12)


class SnorkelLabelModel:
    """Snorkel's ``LabelModel`` (``pip install snorkel``; imported only when chosen)."""

    def __init__(self, seed: int = 0, n_epochs: int = 500) -> None:
        self.seed, self.n_epochs = seed, n_epochs

    def fit(self, votes: np.ndarray, n_classes: int) -> SnorkelLabelModel:
        try:
            from snorkel.labeling.model import LabelModel as Snorkel
        except ImportError as exc:
            raise ImportError(
                f"weak.label_model: snorkel needs the snorkel package ({exc}); install the "
                "weak extra (pip install 'labelwise[weak]') or use dawid_skene"
            ) from exc
        self.model = Snorkel(cardinality=n_classes, verbose=False)
        self.model.fit(
            L_train=np.asarray(votes, dtype=np.int64),
            n_epochs=self.n_epochs,
            seed=self.seed,
            progress_bar=False,
        )
        return self

    def predict_proba(self, votes: np.ndarray) -> np.ndarray:
        return _unvoted_nan(votes, self.model.predict_proba(np.asarray(votes, dtype=np.int64)))

    def accuracies(self) -> np.ndarray | None:
        return np.asarray(self.model.get_weights())


def make_label_model(name: str, seed: int = 0) -> Any:
    """The label model called ``name`` (``LABEL_MODELS``)."""
    if name == "majority":
        return MajorityLabelModel()
    if name == "dawid_skene":
        return DawidSkeneLabelModel()
    if name == "snorkel":
        return SnorkelLabelModel(seed=seed)
    raise ValueError(f"unknown label model {name!r}; use one of {', '.join(LABEL_MODELS)}")


def confident_labels(
    name: str, matrix: np.ndarray, n_classes: int, min_probability: float, seed: int = 0
) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray]:
    """Fit label model ``name`` on the votes ``matrix`` and keep the rows it labels with a top
    probability of at least ``min_probability`` (rows no function voted on never): (the fitted
    model, those rows, their class indices, their probabilities)."""
    model = make_label_model(name, seed=seed).fit(matrix, n_classes)
    proba = model.predict_proba(matrix)
    voted = ~np.isnan(proba).any(axis=1)
    top = np.where(voted, np.nan_to_num(proba).max(axis=1), 0.0)
    rows = np.flatnonzero(voted & (top >= min_probability))
    return model, rows, np.nan_to_num(proba[rows]).argmax(axis=1), top[rows]
