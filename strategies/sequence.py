"""Token tagging and detection: item scores from ragged per-token (or per-box) probabilities.

An item (a sentence, an image) has a variable number of units, each with a class distribution;
the item's score aggregates the units' uncertainty by ``max``, ``mean`` or ``sum``. Everything is
computed on the concatenated units with ``reduceat``, with no Python loop over items.

References
----------
Settles, B. & Craven, M. (2008). An analysis of active learning strategies for sequence labeling
tasks. EMNLP.
Shen, Y. et al. (2017). Deep active learning for named entity recognition. RepL4NLP.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from strategies.base import QueryContext, ScoreStrategy
from strategies.density import UNCERTAINTY

AGGREGATES = ("max", "mean", "sum")


def aggregate_ragged(values: np.ndarray, lengths: np.ndarray, how: str) -> np.ndarray:
    """Aggregate per-unit ``values`` into per-item scores; items with no units score 0.

    Parameters
    ----------
    values : ndarray of shape (n_units,)
        Concatenated unit scores of all items, item by item.
    lengths : ndarray of shape (n_items,)
        Units per item; sums to ``n_units``.
    how : {"max", "mean", "sum"}

    Returns
    -------
    scores : ndarray of shape (n_items,)
    """
    if how not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {AGGREGATES}, got {how!r}")
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.sum() != values.shape[0]:
        raise ValueError(
            f"lengths sum to {lengths.sum()} but there are {values.shape[0]} unit values"
        )
    out = np.zeros(lengths.shape[0])
    nonempty = lengths > 0
    if not nonempty.any():
        return out
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])[nonempty]
    if how == "max":
        out[nonempty] = np.maximum.reduceat(values, starts)
    else:
        sums = np.add.reduceat(values, starts)
        out[nonempty] = sums / lengths[nonempty] if how == "mean" else sums
    return out


def sequence_scores(
    unit_probas: Sequence[np.ndarray], measure: str = "entropy", aggregate: str = "max"
) -> np.ndarray:
    """Per-item scores from a list of (n_units_i, n_classes) probability arrays.

    Returns
    -------
    scores : ndarray of shape (n_items,), higher is more informative.
    """
    if measure not in UNCERTAINTY:
        raise ValueError(f"measure must be one of {sorted(UNCERTAINTY)}, got {measure!r}")
    lengths = np.array([np.shape(p)[0] for p in unit_probas], dtype=np.int64)
    if lengths.sum() == 0:
        return np.zeros(len(unit_probas))
    stacked = np.concatenate([np.asarray(p, dtype=np.float64) for p in unit_probas if len(p)])
    return aggregate_ragged(UNCERTAINTY[measure](stacked), lengths, aggregate)


class SequenceUncertainty(ScoreStrategy):
    """Items (sentences, images) scored by aggregated token/box uncertainty.

    The model's ``predict_proba(items)`` returns one (n_units, n_classes) array per item (as
    CRF marginals or per-box class scores do). Cost: one predict pass + O(total units x K).
    """

    name = "sequence_uncertainty"
    tasks: ClassVar[frozenset[str]] = frozenset({"sequence"})
    cost: ClassVar[str] = "1 predict_proba pass + O(total units x K)"

    def __init__(self, measure: str = "entropy", aggregate: str = "max") -> None:
        self.measure = measure
        self.aggregate = aggregate

    def chunk_scores(self, ctx: QueryContext, state: Any, X_chunk: Any) -> np.ndarray:
        return sequence_scores(ctx.model.predict_proba(X_chunk), self.measure, self.aggregate)
