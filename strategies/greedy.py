"""Improved greedy sampling (iGS) for regression: rows far from every labeled row in input and
output space at once.

A row's score is ``min_m ||x - x_m|| * |f(x) - y_m|`` over the labeled rows ``m``: large only
when the row is both unlike every labeled input and predicted unlike that input's label. The
batch is greedy: each pick joins the labeled set with its prediction standing in for its label.
Distances are measured on features standardised by the labeled rows (dense) or as they are
(sparse, e.g. TF-IDF).

References
----------
Wu, D., Lin, C.-T. & Huang, J. (2019). Active learning for regression using greedy sampling.
Information Sciences 474 (iGS).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from strategies._distance import as_float_matrix, sq_distances
from strategies.base import QueryContext, QueryStrategy, ScoreStrategy, Selection

#: pool rows per block of the (rows x labeled) distance matrix
_BLOCK = 4_096


class _Scale:
    """Standardisation by the labeled rows' mean and std (identity for sparse rows)."""

    def __init__(self, X_labeled: Any) -> None:
        self.sparse = sp.issparse(X_labeled)
        if not self.sparse:
            X = as_float_matrix(X_labeled)
            self.mean = X.mean(axis=0)
            std = X.std(axis=0)
            self.std = np.where(std > 0, std, 1.0)

    def __call__(self, X: Any) -> Any:
        X = as_float_matrix(X)
        return X if self.sparse else (X - self.mean) / self.std


def greedy_scores(X: Any, predictions: np.ndarray, X_ref: Any, y_ref: np.ndarray) -> np.ndarray:
    """``min_m ||x_i - r_m|| * |predictions_i - y_ref_m|`` of shape (n,), in blocks of rows."""
    out = np.empty(X.shape[0])
    for start in range(0, X.shape[0], _BLOCK):
        rows = slice(start, start + _BLOCK)
        dx = np.sqrt(sq_distances(X[rows], X_ref))
        dy = np.abs(predictions[rows, None] - y_ref[None, :])
        out[rows] = (dx * dy).min(axis=1)
    return out


class _GreedyScore(ScoreStrategy):
    """The first pick's iGS score of every pool row (the prefilter's pass)."""

    name = "igs"
    tasks: ClassVar[frozenset[str]] = frozenset({"regression"})
    cost: ClassVar[str] = "1 predict pass + O(n n_labeled d)"

    def prepare(self, ctx: QueryContext) -> Any:
        if ctx.X_labeled is None or ctx.y_labeled is None or ctx.n_labeled == 0:
            raise ValueError("igs: needs the labeled rows and their numbers (X_labeled, y_labeled)")
        scale = _Scale(ctx.X_labeled)
        return scale, scale(ctx.X_labeled), np.asarray(ctx.y_labeled, dtype=np.float64)

    def chunk_scores(self, ctx: QueryContext, state: Any, X_chunk: Any) -> np.ndarray:
        scale, X_ref, y_ref = state
        predictions = np.asarray(ctx.model.predict(X_chunk), dtype=np.float64)
        return greedy_scores(scale(X_chunk), predictions, X_ref, y_ref)


class GreedySampling(QueryStrategy):
    """Regression: improved greedy sampling (iGS), rows far from every labeled row in inputs and
    outputs together; greedy batches, each pick counted as labeled by its prediction.

    Cost: one predict pass + O(n x n_labeled x d) distances, then O(m x b x d) greedy steps on
    the m = ``prefilter x b`` best rows.
    """

    name = "igs"
    tasks: ClassVar[frozenset[str]] = frozenset({"regression"})
    cost: ClassVar[str] = "1 predict pass + O(n n_labeled d) + O(m b d) on m = prefilter x b rows"

    def __init__(self, prefilter: int = 20) -> None:
        self.prefilter = prefilter

    def _query(self, ctx: QueryContext, batch_size: int) -> Selection:
        if self.prefilter < 1:
            raise ValueError(f"igs: prefilter must be >= 1, got {self.prefilter}")
        scorer = _GreedyScore()
        state = scorer.prepare(ctx)
        best = scorer.top_candidates(ctx, self.prefilter * batch_size, keep_rows=True, state=state)
        if best.indices.shape[0] == 0:
            return Selection.of(best.indices, None, self.name)
        scale = state[0]
        X = scale(best.rows)
        predictions = np.asarray(ctx.model.predict(best.rows), dtype=np.float64)
        scores = best.scores.copy()
        picks, picked_scores = [], []
        for _ in range(min(batch_size, scores.shape[0])):
            pick = int(np.argmax(scores))  # ties: the candidate with the higher first score
            picks.append(pick)
            picked_scores.append(scores[pick])
            closer = greedy_scores(X, predictions, X[[pick]], predictions[[pick]])
            np.minimum(scores, closer, out=scores)
            scores[picks] = -np.inf
        return Selection.of(best.indices[picks], np.asarray(picked_scores), self.name)
