"""Scores to indices: exact top-k with deterministic ties, and a running top-k for chunked pools.

Ties are broken by the lower row index, so selecting from chunks gives exactly the rows that
selecting from the whole array gives.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from strategies._pool import take_rows


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores, highest first, ties by lower index.

    Cost: O(n) with ``np.argpartition`` plus O(k log k) for the final order.

    Parameters
    ----------
    scores : ndarray of shape (n,)
        Informativeness, higher is better. ``-inf`` marks rows that must not be chosen unless
        nothing else is left; NaN is rejected.
    k : int
        Number of indices wanted; fewer are returned when ``n < k``.
    """
    scores = np.asarray(scores)
    if scores.ndim != 1:
        raise ValueError(f"scores must be 1-D, got shape {scores.shape}")
    n = scores.shape[0]
    if k <= 0 or n == 0:
        return np.empty(0, dtype=np.int64)
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN: check the model's probabilities for this pool")
    if k >= n:
        candidates = np.arange(n)
    else:
        kth = np.argpartition(-scores, k - 1)[k - 1]
        threshold = scores[kth]
        above = np.flatnonzero(scores > threshold)
        ties = np.flatnonzero(scores == threshold)[: k - above.shape[0]]
        candidates = np.concatenate([above, ties])
    order = np.lexsort((candidates, -scores[candidates]))
    return candidates[order][:k].astype(np.int64, copy=False)


class RunningTopK:
    """Keeps the ``k`` best (score, row) pairs seen so far across chunks, optionally with the rows.

    Memory is O(k) plus, with ``keep_rows``, O(k x n_features): the pool itself is never held.
    """

    def __init__(self, k: int, keep_rows: bool = False) -> None:
        self.k = k
        self.keep_rows = keep_rows
        self.scores = np.empty(0, dtype=np.float64)
        self.indices = np.empty(0, dtype=np.int64)
        self.rows: Any = None

    def push(
        self, scores: np.ndarray, offset: int, chunk: Any = None, eligible: np.ndarray | None = None
    ) -> None:
        """Offer a chunk's scores; chunk row ``i`` is global row ``offset + i``. Only rows listed in
        ``eligible`` (chunk-local indices; all when None) can enter."""
        if eligible is not None and eligible.shape[0] != scores.shape[0]:
            local = eligible[top_k(scores[eligible], self.k)]
        else:
            local = top_k(scores, self.k)
        if local.shape[0] == 0:
            return
        merged_scores = np.concatenate([self.scores, scores[local].astype(np.float64)])
        merged_indices = np.concatenate([self.indices, local + offset])
        keep = _order_by_score_then_index(merged_scores, merged_indices)[: self.k]
        if self.keep_rows:
            new_rows = take_rows(chunk, local)
            merged_rows = new_rows if self.rows is None else _stack_rows(self.rows, new_rows)
            self.rows = take_rows(merged_rows, keep)
        self.scores = merged_scores[keep]
        self.indices = merged_indices[keep]


def capped_order(
    scores: np.ndarray, groups: np.ndarray, indices: np.ndarray, per_group: int
) -> np.ndarray:
    """Positions of the rows that are among their group's ``per_group`` best, ordered by score
    (ties by lower index): a vectorised per-group top-k."""
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN: check the model's probabilities for this pool")
    by_group = np.lexsort((indices, -scores, groups))
    sorted_groups = groups[by_group]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    rank = np.arange(by_group.shape[0]) - np.repeat(
        starts, np.diff(np.r_[starts, by_group.shape[0]])
    )
    kept = by_group[rank < per_group]
    return kept[_order_by_score_then_index(scores[kept], indices[kept])]


def _order_by_score_then_index(scores: np.ndarray, indices: np.ndarray) -> np.ndarray:
    return np.lexsort((indices, -scores))


def _stack_rows(a: Any, b: Any) -> Any:
    if hasattr(a, "iloc"):
        import pandas as pd

        return pd.concat([a, b])
    if hasattr(a, "tocsr"):
        import scipy.sparse as sp

        return sp.vstack([a, b]).tocsr()
    return np.concatenate([np.asarray(a), np.asarray(b)])
