"""Variance sampling for regression: rows where the predictive spread is largest.

The spread is a Gaussian process's predictive std (``predict(X, return_std=True)``), the std of a
forest's trees, the std of bootstrap refits of any regressor, or the std of the trees of a forest
fit on the labeled rows beside the model (``committee="forest"``). A linear model's bootstrap std
grows with leverage, so it favours extreme rows; ``variance_density`` damps that by the row's
density in the pool.

References
----------
Burbidge, R., Rowland, J. J. & King, R. D. (2007). Active learning for regression based on query
by committee. IDEAL.
Cohn, D. A., Ghahramani, Z. & Jordan, M. I. (1996). Active learning with statistical models. JAIR.
Settles, B. & Craven, M. (2008). An analysis of active learning strategies for sequence labeling
tasks. EMNLP (information density).
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

import numpy as np

from strategies._distance import as_float_matrix
from strategies._refit import refit_warm
from strategies.base import QueryContext, ScoreStrategy, sklearn_seed
from strategies.committee import _split_pipeline, is_tree_ensemble
from strategies.density import fit_reference, pool_density

COMMITTEES = ("model", "forest")


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


def _labeled(ctx: QueryContext, name: str) -> tuple[Any, np.ndarray]:
    if ctx.X_labeled is None or ctx.y_labeled is None:
        raise ValueError(f"{name}: refits need X_labeled and y_labeled (or pass members=)")
    return ctx.X_labeled, np.asarray(ctx.y_labeled, dtype=np.float64)


class Variance(ScoreStrategy):
    """Regression: highest predictive std (GP std, forest trees, or bootstrap refits)."""

    name = "variance"
    tasks: ClassVar[frozenset[str]] = frozenset({"regression"})
    cost: ClassVar[str] = "1 predict pass (GP) or n_members predict passes (+ refits for bootstrap)"

    def __init__(
        self, n_members: int = 5, members: Any = None, committee: str = "model", n_trees: int = 50
    ) -> None:
        self.n_members = n_members
        self.members = members
        self.committee = committee
        self.n_trees = n_trees

    def prepare(self, ctx: QueryContext) -> Any:
        model = ctx.model
        if self.committee not in COMMITTEES:
            raise ValueError(
                f"{self.name}: committee must be one of {COMMITTEES}, got {self.committee!r}"
            )
        if self.members is not None:
            return ("members", list(self.members))
        if self.committee == "forest":
            from sklearn.ensemble import RandomForestRegressor

            X, y = _labeled(ctx, self.name)
            forest = RandomForestRegressor(
                self.n_trees, min_samples_leaf=2, random_state=sklearn_seed(ctx.rng)
            ).fit(as_float_matrix(X), y)
            return ("forest", forest.estimators_)
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
        if kind == "forest":
            X = as_float_matrix(X_chunk)
            return predictive_std(np.stack([t.predict(X) for t in payload]))
        if kind == "gp":
            _, std = payload.predict(X_chunk, return_std=True)
            return np.asarray(std, dtype=np.float64)
        if kind == "trees":
            pre, trees = payload
            X = pre.transform(X_chunk) if pre is not None else X_chunk
            X = np.asarray(X, dtype=np.float32)
            return predictive_std(np.stack([t.predict(X, check_input=False) for t in trees]))
        return predictive_std(np.stack([m.predict(X_chunk) for m in payload]))


class DensityVariance(Variance):
    """Regression: predictive std x (mean similarity to the pool)^beta, so rows far from the pool's
    mass (high leverage for a linear model) are damped; the std comes from a forest by default.

    Cost: a forest fit on the labeled rows (or the committee of ``variance``), n_members or n_trees
    predict passes, O(n x n_reference x d) distances and a small k-means on a pool sample.
    """

    name = "variance_density"
    cost: ClassVar[str] = (
        "forest fit on the labeled rows + n_trees predict passes + O(n m d) to m centroids"
    )

    def __init__(
        self,
        n_members: int = 5,
        members: Any = None,
        committee: str = "forest",
        n_trees: int = 50,
        beta: float = 1.0,
        n_reference: int = 50,
        sample_size: int = 2_000,
    ) -> None:
        super().__init__(n_members, members, committee, n_trees)
        self.beta = beta
        self.n_reference = n_reference
        self.sample_size = sample_size

    def prepare(self, ctx: QueryContext) -> Any:
        if self.beta < 0:
            raise ValueError(f"{self.name}: beta must be >= 0, got {self.beta}")
        sample = as_float_matrix(ctx.pool.sample(self.sample_size, ctx.rng))
        reference = fit_reference(sample, self.n_reference, "kmeans", ctx.rng)
        return super().prepare(ctx), reference

    def chunk_scores(self, ctx: QueryContext, state: Any, X_chunk: Any) -> np.ndarray:
        spread, reference = state
        std = super().chunk_scores(ctx, spread, X_chunk)
        return std * pool_density(as_float_matrix(X_chunk), reference) ** self.beta
