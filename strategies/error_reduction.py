"""Expected error reduction: the rows whose label, in expectation, most lowers the pool's error.

For each of ``n_candidates`` rows (prefiltered by uncertainty) and each class k the model is refit
on L + {(x, k)} and the error of the refit model is estimated on ``n_eval`` sampled pool rows; the
expected error weights each k by the current p(k | x).

Cost: O(n_candidates x K x (refit(n_labeled) + predict(n_eval))) after one predict_proba pass.
Refits start from the current coefficients when the model supports ``warm_start``.

References
----------
Roy, N. & McCallum, A. (2001). Toward optimal active learning through sampling estimation of error
reduction. ICML.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from sklearn.base import clone

from strategies._pool import take_rows
from strategies.base import QueryContext, QueryStrategy, Selection
from strategies.selection import RunningTopK, top_k
from strategies.uncertainty import _entropy_rows, margin


def expected_pool_error(probas: np.ndarray, loss: str) -> float:
    """Estimated error over evaluation rows: total entropy (``log``) or total 1 - max p (``zero_one``)."""
    if loss == "log":
        return float(_entropy_rows(probas).sum())
    return float((1.0 - probas.max(axis=1)).sum())


def _stack(X_labeled: Any, x: Any) -> Any:
    if hasattr(X_labeled, "iloc"):
        import pandas as pd

        return pd.concat([X_labeled, x])
    if hasattr(X_labeled, "tocsr"):
        import scipy.sparse as sp

        return sp.vstack([X_labeled, x]).tocsr()
    return np.concatenate([np.asarray(X_labeled), np.asarray(x)])


def _refit(model: Any, X: Any, y: np.ndarray) -> Any:
    """A clone of ``model`` fit on (X, y), warm-started from ``model``'s coefficients if it can."""
    refit = clone(model)
    params = refit.get_params()
    same_classes = np.array_equal(np.unique(y), getattr(model, "classes_", None))
    if "warm_start" in params and hasattr(model, "coef_") and same_classes:
        refit.set_params(warm_start=True)
        refit.coef_ = model.coef_.copy()
        refit.intercept_ = np.copy(model.intercept_)
    return refit.fit(X, y)


class ExpectedErrorReduction(QueryStrategy):
    """Rows whose label most reduces expected pool error (log-loss or 0/1). Needs X/y_labeled."""

    name = "expected_error_reduction"
    cost: ClassVar[str] = "O(n_candidates x K x (refit + predict n_eval)) after 1 predict_proba pass"

    def __init__(self, loss: str = "log", n_candidates: int = 30, n_eval: int = 500) -> None:
        self.loss = loss
        self.n_candidates = n_candidates
        self.n_eval = n_eval

    def _query(self, ctx: QueryContext, batch_size: int) -> Selection:
        if self.loss not in ("log", "zero_one"):
            raise ValueError(f"{self.name}: loss must be 'log' or 'zero_one', got {self.loss!r}")
        if ctx.X_labeled is None or ctx.y_labeled is None or len(ctx.y_labeled) == 0:
            raise ValueError(f"{self.name} needs X_labeled and y_labeled to refit the model")
        model = ctx.model
        classes = np.asarray(model.classes_)
        n_cand = max(self.n_candidates, batch_size)
        candidates = RunningTopK(n_cand, keep_rows=True)
        evaluation = RunningTopK(self.n_eval, keep_rows=True)
        eval_rng = np.random.default_rng(ctx.rng.integers(2**63))
        for offset, chunk, eligible in ctx.chunks():
            proba = ctx.predict_proba(chunk)
            candidates.push(margin(proba), offset, chunk, eligible)
            evaluation.push(eval_rng.random(chunk.shape[0]), offset, chunk)
        if candidates.indices.shape[0] == 0:
            return Selection.of(candidates.indices, None, self.name)
        cand_proba = model.predict_proba(candidates.rows)
        X_eval = evaluation.rows
        y_labeled = np.asarray(ctx.y_labeled)
        expected = np.zeros(candidates.indices.shape[0])
        for i in range(candidates.indices.shape[0]):
            x = take_rows(candidates.rows, np.array([i]))
            X_plus = _stack(ctx.X_labeled, x)
            for k, label in enumerate(classes):
                p = cand_proba[i, k]
                if p < 1e-6:  # negligible weight: skip the refit
                    continue
                refit = _refit(model, X_plus, np.append(y_labeled, label))
                expected[i] += p * expected_pool_error(refit.predict_proba(X_eval), self.loss)
        baseline = expected_pool_error(model.predict_proba(X_eval), self.loss)
        reduction = baseline - expected
        order = top_k(reduction, batch_size)
        return Selection.of(candidates.indices[order], reduction[order], self.name)


__all__ = ["ExpectedErrorReduction", "expected_pool_error"]
