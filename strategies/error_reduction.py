"""Expected error reduction: the rows whose label, in expectation, most lowers the pool's error.

For each of ``n_candidates`` rows (prefiltered by uncertainty) and each class k the model is refit
on L + {(x, k)} and the error of the refit model is estimated on ``n_eval`` sampled pool rows; the
expected error weights each k by the current p(k | x).

Cost: one predict_proba pass, then O(n_candidates x K x (refit + predict(n_eval))). For an L2
logistic regression the refit is one Newton step from the current fit (``refit="newton"``, the
default via ``"auto"``): the Hessian on the labeled set is factored once, O(n_labeled (K d)^2 +
(K d)^3), and each refit is a triangular solve. Other models are refit in full (``"full"``),
warm-started from the current coefficients where the model supports ``warm_start``.

References
----------
Roy, N. & McCallum, A. (2001). Toward optimal active learning through sampling estimation of error
reduction. ICML.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from strategies._newton import NewtonRefit, supports_newton
from strategies._pool import take_rows
from strategies._refit import refit_warm
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


class ExpectedErrorReduction(QueryStrategy):
    """Rows whose label most reduces expected pool error (log-loss or 0/1). Needs X/y_labeled."""

    name = "expected_error_reduction"
    cost: ClassVar[str] = (
        "O(n_candidates x K x (refit + predict n_eval)) after 1 predict_proba pass"
    )

    def __init__(
        self, loss: str = "log", n_candidates: int = 30, n_eval: int = 500, refit: str = "auto"
    ) -> None:
        self.loss = loss
        self.n_candidates = n_candidates
        self.n_eval = n_eval
        self.refit = refit

    def _expected_newton(
        self, ctx: QueryContext, X_cand: Any, cand_proba: np.ndarray, X_eval: Any
    ) -> np.ndarray:
        if not supports_newton(ctx.model):
            raise ValueError(f"{self.name}: refit='newton' needs an L2 LogisticRegression model")
        refit = NewtonRefit(ctx.model, ctx.X_labeled)
        expected = np.zeros(cand_proba.shape[0])
        for start in range(0, cand_proba.shape[0], 16):  # bounded memory: 16 candidates at a time
            part = slice(start, start + 16)
            updated = refit.updated_probas(
                take_rows(X_cand, np.arange(cand_proba.shape[0])[part]), X_eval
            )
            if self.loss == "log":
                losses = _entropy_rows(updated).sum(axis=-1)  # (m, K)
            else:
                losses = (1.0 - updated.max(axis=-1)).sum(axis=-1)
            expected[part] = (cand_proba[part] * losses).sum(axis=1)
        return expected

    def _expected_full(
        self, ctx: QueryContext, X_cand: Any, cand_proba: np.ndarray, X_eval: Any
    ) -> np.ndarray:
        classes = np.asarray(ctx.model.classes_)
        y_labeled = np.asarray(ctx.y_labeled)
        expected = np.zeros(cand_proba.shape[0])
        for i in range(cand_proba.shape[0]):
            X_plus = _stack(ctx.X_labeled, take_rows(X_cand, np.array([i])))
            for k, label in enumerate(classes):
                p = cand_proba[i, k]
                if p < 1e-6:  # negligible weight: skip the refit
                    continue
                refit = refit_warm(ctx.model, X_plus, np.append(y_labeled, label))
                expected[i] += p * expected_pool_error(refit.predict_proba(X_eval), self.loss)
        return expected

    def _query(self, ctx: QueryContext, batch_size: int) -> Selection:
        if self.refit not in ("auto", "newton", "full"):
            raise ValueError(
                f"{self.name}: refit must be 'auto', 'newton' or 'full', got {self.refit!r}"
            )
        if self.loss not in ("log", "zero_one"):
            raise ValueError(f"{self.name}: loss must be 'log' or 'zero_one', got {self.loss!r}")
        if ctx.X_labeled is None or ctx.y_labeled is None or len(ctx.y_labeled) == 0:
            raise ValueError(f"{self.name} needs X_labeled and y_labeled to refit the model")
        model = ctx.model
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
        if self.refit == "newton" or (self.refit == "auto" and supports_newton(model)):
            expected = self._expected_newton(ctx, candidates.rows, cand_proba, X_eval)
        else:
            expected = self._expected_full(ctx, candidates.rows, cand_proba, X_eval)
        baseline = expected_pool_error(model.predict_proba(X_eval), self.loss)
        reduction = baseline - expected
        order = top_k(reduction, batch_size)
        return Selection.of(candidates.indices[order], reduction[order], self.name)


__all__ = ["ExpectedErrorReduction", "expected_pool_error"]
