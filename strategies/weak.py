"""Weak-supervision disagreement: ask a human where the labeling functions are silent or split.

Labeling functions (``tasks.weak``) vote a class per pool row or abstain. Where they agree, a
human label adds little; where all abstain, or votes conflict, it adds most (ActiveDP, Guan et
al. 2024, and Nashaat et al. 2018 combine active learning and weak supervision this way). The
score mixes that vote disagreement with the model's margin uncertainty.

The votes are a matrix bound to the pool's rows (``votes[i, j]``: the class index function ``j``
gave row ``i``, ``ABSTAIN`` = -1): :func:`with_votes` gives them to a strategy (and to a
``hybrid`` whose prefilter is this score) just before the query.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from strategies.base import QueryContext, ScoreStrategy
from strategies.uncertainty import margin

#: a labeling function's vote for "no opinion"
ABSTAIN = -1


def vote_counts(votes: np.ndarray, n_classes: int) -> np.ndarray:
    """Counts of each class among a row's non-abstaining votes: shape (n_rows, n_classes)."""
    votes = np.asarray(votes)
    if votes.ndim != 2:
        raise ValueError(f"votes must have shape (n_rows, n_functions), got {votes.shape}")
    if votes.size and (votes.max() >= n_classes or votes.min() < ABSTAIN):
        raise ValueError(f"votes must be class indices 0..{n_classes - 1} or {ABSTAIN} (abstain)")
    counts = np.zeros((votes.shape[0], n_classes))
    for j in range(votes.shape[1]):  # a loop over functions (few), vectorised over rows
        voted = votes[:, j] != ABSTAIN
        np.add.at(counts, (np.flatnonzero(voted), votes[voted, j]), 1.0)
    return counts


def vote_disagreement(votes: np.ndarray, n_classes: int) -> np.ndarray:
    """How unsettled the functions leave each row, in [0, 1]: ``1 - max_k (c_k + 1) / (n + K)``
    (the top class's share under a uniform prior, ``c_k`` votes for class k out of ``n``),
    divided by its maximum ``1 - 1/K``. 1 where every function abstains or the votes tie;
    falls towards 0 as more functions agree."""
    if n_classes < 2:
        raise ValueError(f"vote disagreement needs 2+ classes, got {n_classes}")
    counts = vote_counts(votes, n_classes)
    n = counts.sum(axis=1)
    top = (counts.max(axis=1) + 1.0) / (n + n_classes)
    return (1.0 - top) / (1.0 - 1.0 / n_classes)


class WeakDisagreement(ScoreStrategy):
    """``(1 - w) x vote disagreement + w x margin uncertainty`` per row (``w``: ``model_weight``).

    Cost: one ``predict_proba`` pass (none with ``model_weight=0``) + O(n x n_functions).

    Parameters
    ----------
    votes : ndarray of shape (n_pool, n_functions), optional
        Class indices voted per pool row, ``-1`` for abstain (:func:`with_votes`). Without votes
        every row counts as one where all functions abstain, so the score is the margin's.
    n_classes : int, optional
        Number of classes the votes index (default: the model's).
    model_weight : float, default=0.5
        Share of the model's margin uncertainty in the score, in [0, 1].
    """

    name = "weak_disagreement"
    cost: ClassVar[str] = "1 predict_proba pass + O(n x n_functions)"
    not_distributable: ClassVar[str | None] = (
        "weak_disagreement reads the votes by pool row, which workers do not have"
    )

    def __init__(
        self, votes: Any = None, n_classes: int | None = None, model_weight: float = 0.5
    ) -> None:
        self.votes = votes
        self.n_classes = n_classes
        self.model_weight = model_weight

    def prepare(self, ctx: QueryContext) -> np.ndarray | None:
        if not 0.0 <= self.model_weight <= 1.0:
            raise ValueError(
                f"weak_disagreement: model_weight must be in [0, 1], got {self.model_weight}"
            )
        if self.votes is None:
            return None
        votes = np.asarray(self.votes)
        if votes.shape[0] != ctx.pool.n_rows:
            raise ValueError(
                f"weak_disagreement: votes for {votes.shape[0]} rows, the pool has {ctx.pool.n_rows}"
            )
        k = self.n_classes or len(getattr(ctx.model, "classes_", [])) or int(votes.max()) + 1
        return vote_disagreement(votes, max(k, 2))

    def chunk_scores(self, ctx: QueryContext, state: Any, X_chunk: Any) -> np.ndarray:
        n = X_chunk.shape[0]
        weak = np.ones(n) if state is None else state[ctx.offset : ctx.offset + n]
        if self.model_weight == 0.0:
            return weak
        return (1.0 - self.model_weight) * weak + self.model_weight * margin(
            ctx.predict_proba(X_chunk)
        )


def with_votes(name: str, params: dict[str, Any], votes: np.ndarray, n_classes: int) -> dict:
    """``params`` of strategy ``name`` with ``votes`` given to its weak-disagreement score: the
    strategy itself, a ``hybrid`` / ``cluster_margin`` whose ``informativeness`` it is, or the
    bandit ``auto`` with it among its ``arms`` (any other strategy: ``params`` unchanged)."""
    if name == WeakDisagreement.name:
        return {**params, "votes": votes, "n_classes": n_classes}
    if params.get("informativeness") == WeakDisagreement.name:
        return {**params, "informativeness": WeakDisagreement(votes, n_classes)}
    if WeakDisagreement.name in (params.get("arms") or ()):  # an arm of the bandit ``auto``
        arms = dict(params.get("arm_params") or {})
        arms[WeakDisagreement.name] = {
            **arms.get(WeakDisagreement.name, {}),
            "votes": votes,
            "n_classes": n_classes,
        }
        return {**params, "arm_params": arms}
    return dict(params)


def uses_votes(name: str, params: dict[str, Any]) -> bool:
    """Whether strategy ``name`` with ``params`` scores with labeling-function votes (itself,
    as ``hybrid``'s prefilter, or as an arm of ``auto``)."""
    return (
        name == WeakDisagreement.name
        or params.get("informativeness") == WeakDisagreement.name
        or WeakDisagreement.name in (params.get("arms") or ())
    )
