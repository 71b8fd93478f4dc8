"""Variance sampling for regression: rows where the predictive spread is largest.

The spread is a Gaussian process's predictive std (``predict(X, return_std=True)``), the std of a
forest's trees, or the std of bootstrap refits of any regressor.

References
----------
Burbidge, R., Rowland, J. J. & King, R. D. (2007). Active learning for regression based on query
by committee. IDEAL.
Cohn, D. A., Ghahramani, Z. & Jordan, M. I. (1996). Active learning with statistical models. JAIR.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import numpy as np

from strategies._refit import refit_warm
from strategies.base import QueryContext, ScoreStrategy, sklearn_seed
from strategies.committee import _split_pipeline, is_tree_ensemble


def predictive_std(member_predictions: np.ndarray) -> np.ndarray:
    """Std over members, shape (n_samples,), from predictions of shape (n_members, n_samples)."""
    member_predictions = np.asarray(member_predictions, dtype=np.float64)
    if member_predictions.ndim != 2 or member_predictions.shape[0] < 2:
        raise ValueError(
            f"member_predictions must have shape (n_members >= 2, n_samples), got {member_predictions.shape}"
        )
    return member_predictions.std(axis=0)


def _supports_return_std(model: Any) -> bool:
    predict = getattr(model, "predict", None)
    return predict is not None and "return_std" in inspect.signature(predict).parameters


class Variance(ScoreStrategy):
    """Regression: highest predictive std (GP std, forest trees, or bootstrap refits)."""

    name = "variance"
    cost: ClassVar[str] = "1 predict pass (GP) or n_members predict passes (+ refits for bootstrap)"

    def __init__(self, n_members: int = 5, members: Any = None) -> None:
        self.n_members = n_members
        self.members = members

    def prepare(self, ctx: QueryContext) -> Any:
        model = ctx.model
        if self.members is not None:
            return ("members", list(self.members))
        if _supports_return_std(model):
            return ("gp", model)
        if is_tree_ensemble(model):
            pre, forest = _split_pipeline(model)
            return ("trees", (pre, forest.estimators_))
        if ctx.X_labeled is None or ctx.y_labeled is None:
            raise ValueError(
                "variance: bootstrap refits need X_labeled and y_labeled (or pass members=)"
            )
        y = np.asarray(ctx.y_labeled, dtype=np.float64)
        members = []
        for _ in range(self.n_members):
            rows = ctx.rng.choice(y.shape[0], size=y.shape[0], replace=True)
            X_rows = (
                ctx.X_labeled.iloc[rows] if hasattr(ctx.X_labeled, "iloc") else ctx.X_labeled[rows]
            )
            members.append(refit_warm(model, X_rows, y[rows], sklearn_seed(ctx.rng)))
        return ("members", members)

    def chunk_scores(self, ctx: QueryContext, state: Any, X_chunk: Any) -> np.ndarray:
        kind, payload = state
        if kind == "gp":
            _, std = payload.predict(X_chunk, return_std=True)
            return np.asarray(std, dtype=np.float64)
        if kind == "trees":
            pre, trees = payload
            X = pre.transform(X_chunk) if pre is not None else X_chunk
            X = np.asarray(X, dtype=np.float32)
            return predictive_std(np.stack([t.predict(X, check_input=False) for t in trees]))
        return predictive_std(np.stack([m.predict(X_chunk) for m in payload]))
