"""A simulated active-learning loop with an oracle from known labels (demo and benchmarks)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.metrics import accuracy_score


@dataclass
class Curve:
    """Labeled-set sizes and the test score after training on each."""

    labels: list[int] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    query_seconds: float = 0.0
    #: per extra metric (``simulate(also=...)``), its score at each labeled-set size
    also: dict[str, list[float]] = field(default_factory=dict)


def initial_labeled_set(y: np.ndarray, n_initial: int, rng: np.random.Generator) -> np.ndarray:
    """``n_initial`` rows with at least one per class (while n_initial allows), the rest random."""
    classes = np.unique(y)
    picks = [int(rng.choice(np.flatnonzero(y == c))) for c in classes[:n_initial]]
    rest = np.setdiff1d(np.arange(y.shape[0]), picks)
    picks += rng.choice(rest, size=max(0, n_initial - len(picks)), replace=False).tolist()
    return np.asarray(picks, dtype=np.int64)


def simulate(
    strategy: Any,
    model: Any,
    X_pool: np.ndarray,
    y_pool: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    *,
    initial: np.ndarray,
    batch_size: int,
    budget: int,
    seed: int,
    metric: Callable[[np.ndarray, np.ndarray], float] = accuracy_score,
    on_round: Callable[[int, float], None] | None = None,
    weak: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    semi: Any = None,
    also: dict[str, Callable[[np.ndarray, np.ndarray], float]] | None = None,
) -> Curve:
    """Run select -> label (oracle) -> retrain until ``budget`` labels; score on the test set.
    ``weak``: (pool rows, labels, weights) of weak labels, trained on beside the oracle's
    wherever no oracle label exists yet; ``semi``: a :class:`tasks.model.semi.SelfTraining`,
    each fit refit with the model's confident pseudo-labels on the unlabeled rows; ``also``:
    more metrics scored on the same test predictions (e.g. the minority class's recall)."""
    import time

    rng = np.random.default_rng(seed)
    semi_rng = np.random.default_rng([seed, 7])  # its own draws: the strategy's stay the same
    labeled = np.zeros(X_pool.shape[0], dtype=bool)
    labeled[initial] = True
    curve = Curve(also={name: [] for name in also or {}})
    while True:
        fitted = fit_labeled(model, X_pool, y_pool, labeled, weak)
        if semi is not None:
            from tasks.model.semi import pseudo_labels

            pseudo = pseudo_labels(fitted, X_pool, np.flatnonzero(~labeled), semi, semi_rng)
            fitted = fit_labeled(model, X_pool, y_pool, labeled, with_pseudo(weak, pseudo))
        n = int(labeled.sum())
        predicted = fitted.predict(X_test)
        score = float(metric(y_test, predicted))
        curve.labels.append(n)
        curve.scores.append(score)
        for name, scorer in (also or {}).items():
            curve.also[name].append(float(scorer(y_test, predicted)))
        if on_round is not None:
            on_round(n, score)
        if n >= budget or labeled.all():
            return curve
        start = time.perf_counter()
        picks = strategy.select(
            fitted,
            X_pool,
            min(batch_size, budget - n),
            X_labeled=X_pool[labeled],
            y_labeled=y_pool[labeled],
            random_state=rng,
            exclude=labeled,
        )
        curve.query_seconds += time.perf_counter() - start
        labeled[picks] = True
        strategy.observe(picks, y_pool[picks])  # the oracle's answers (a bandit learns from them)


def with_pseudo(
    weak: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    pseudo: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weak labels and pseudo-labels as one set of extra rows; a row with a weak label keeps it."""
    if weak is None:
        return pseudo
    fresh = ~np.isin(pseudo[0], weak[0])
    rows, labels, weights = (
        np.concatenate([w, p[fresh]]) for w, p in zip(weak, pseudo, strict=True)
    )
    return rows, labels, weights


def fit_labeled(
    model: Any,
    X_pool: Any,
    y_pool: np.ndarray,
    labeled: np.ndarray,
    weak: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> Any:
    """A clone of ``model`` fit on the labeled rows, and on ``weak`` (rows, labels, weights)
    where a row has no label of its own."""
    if weak is None:
        return clone(model).fit(X_pool[labeled], y_pool[labeled])
    from tasks.model.build import fit_model

    rows, labels, weights = weak
    extra = ~labeled[rows]
    human = np.flatnonzero(labeled)
    index = np.concatenate([human, rows[extra]])
    y = np.concatenate([y_pool[human], labels[extra]])
    sample_weight = np.concatenate([np.ones(human.shape[0]), weights[extra]])
    return fit_model(model, X_pool[index], y, sample_weight=sample_weight)
