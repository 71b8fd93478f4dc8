"""Expected variance reduction for regression: the batch whose labels would most shrink the
model's predictive variance summed over the pool (Cohn, Ghahramani & Jordan 1996).

A committee of bootstrap refits of the task model gives every row ``n_members`` predictions;
their covariance across rows is the model's uncertainty and how rows share it. Labeling row
``x`` (label noise variance ``s2``) cuts the variance at every row ``r`` by
``cov(x, r)^2 / (var(x) + s2)`` (the Gaussian update), so a row is worth the sum of that over a
uniform sample of the pool: high where the model is unsure about many rows at once, low for an
outlier that only resembles itself (what plain variance sampling takes first, and why it can
lose to random on a noisy target). The batch is greedy: each pick updates the covariances by a
rank-one step, so the rows it explains lose their value; the uniform sample stays among the
candidates, so rows of other parts of the pool remain when one spot holds every best first gain.

``s2`` is ``noise`` x the committee's mean variance over the sample, not an estimate of the
label noise: a near-duplicate of a pick keeps ``s2 / (2 var + s2)`` of its gain, so a floor
small next to the model's variance makes repeats worthless, where a noise as large as a
bootstrap committee's out-of-bag error (the model's error included) lets one spot fill a batch.

References
----------
Cohn, D. A., Ghahramani, Z. & Jordan, M. I. (1996). Active learning with statistical models. JAIR 4.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar

import numpy as np

from strategies._pool import take_rows
from strategies._refit import refit_warm
from strategies.base import (
    ChunkPlan,
    QueryContext,
    QueryStrategy,
    ScoreStrategy,
    Selection,
    sklearn_seed,
)
from strategies.random import RandomSampling
from strategies.selection import RunningTopK


def task_estimator(model: Any) -> Any:
    """The estimator a search chose (``best_`` of labelwise's auto model, ``best_estimator_`` of a
    scikit-learn search), else ``model``: what the committee refits, so a refit is one fit."""
    for attribute in ("best_", "best_estimator_"):
        chosen = getattr(model, attribute, None)
        if chosen is not None:
            return chosen
    return model


def deviations(member_predictions: np.ndarray) -> np.ndarray:
    """Each member's predictions minus the committee mean, shape (n_members, n_rows)."""
    P = np.asarray(member_predictions, dtype=np.float64)
    return P - P.mean(axis=0, keepdims=True)


def reduction_scores(D_rows: np.ndarray, D_reference: np.ndarray, s2: float) -> np.ndarray:
    """``sum_r cov(x, r)^2 / (var(x) + s2)`` per row ``x`` (shape (n_rows,)), from deviations of
    shape (n_members, n_rows) and (n_members, n_reference); 0 where the row has no variance and
    there is no noise."""
    dof = max(D_rows.shape[0] - 1, 1)
    cov = D_rows.T @ D_reference / dof
    denominator = np.einsum("mi,mi->i", D_rows, D_rows) / dof + s2
    return _ratio(np.einsum("ij,ij->i", cov, cov), denominator)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    out = np.zeros_like(numerator)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def greedy_reduction(
    D_candidates: np.ndarray, D_reference: np.ndarray, s2: float, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy batch of ``k`` candidates: each step takes the candidate of largest
    :func:`reduction_scores` under the covariances left after the earlier picks (their labels
    conditioned on, rank-one updates). Returns the candidates' positions and their gains."""
    dof = max(D_candidates.shape[0] - 1, 1)
    K_cr = D_candidates.T @ D_reference / dof
    K_cc = D_candidates.T @ D_candidates / dof
    open_ = np.ones(K_cc.shape[0], dtype=bool)
    picks, gains = [], []
    for _ in range(min(k, K_cc.shape[0])):
        denominator = np.diag(K_cc) + s2
        gain = _ratio(np.einsum("ij,ij->i", K_cr, K_cr), denominator)
        gain[~open_] = -np.inf
        pick = int(np.argmax(gain))
        picks.append(pick)
        gains.append(float(gain[pick]))
        open_[pick] = False
        if denominator[pick] <= 0:
            continue  # nothing left to explain through it: the covariances stay as they are
        shared = K_cc[:, pick].copy()
        K_cr -= np.outer(shared, K_cr[pick]) / denominator[pick]
        K_cc -= np.outer(shared, shared) / denominator[pick]
    return np.asarray(picks, dtype=np.int64), np.asarray(gains)


class _Committee:
    """Bootstrap refits of the task model on the labeled rows."""

    def __init__(self, ctx: QueryContext, n_members: int) -> None:
        if ctx.X_labeled is None or ctx.y_labeled is None or ctx.n_labeled < 2:
            raise ValueError(
                "variance_reduction: needs at least 2 labeled rows and their numbers "
                "(X_labeled, y_labeled)"
            )
        estimator = task_estimator(ctx.model)
        y = np.asarray(ctx.y_labeled, dtype=np.float64)
        self.members = []
        for _ in range(n_members):
            rows = ctx.rng.choice(y.shape[0], size=y.shape[0], replace=True)
            self.members.append(
                refit_warm(
                    estimator, take_rows(ctx.X_labeled, rows), y[rows], sklearn_seed(ctx.rng)
                )
            )

    def deviations(self, X: Any) -> np.ndarray:
        return deviations(np.stack([np.asarray(m.predict(X)) for m in self.members]))


@dataclass
class _State:
    """One query's committee, its uniform reference sample of the pool (indices and the
    committee's deviations there) and the noise floor ``s2``."""

    committee: _Committee
    reference: np.ndarray
    D_reference: np.ndarray | None
    s2: float


class _ReductionScore(ScoreStrategy):
    """The first pick's gain of every pool row (the prefilter's pass); its state is the
    committee and its deviations on the reference sample."""

    name = "variance_reduction"
    tasks: ClassVar[frozenset[str]] = frozenset({"regression"})
    cost: ClassVar[str] = "n_members refits + n_members predict passes + O(n m n_members)"

    def __init__(self, n_members: int, n_reference: int, noise: float) -> None:
        self.n_members = n_members
        self.n_reference = n_reference
        self.noise = noise

    def prepare(self, ctx: QueryContext) -> _State:
        committee = _Committee(ctx, self.n_members)
        sample = RandomSampling().top_candidates(ctx, self.n_reference, keep_rows=True)
        D_reference = committee.deviations(sample.rows) if sample.indices.size else None
        s2 = 0.0
        if D_reference is not None:
            dof = max(D_reference.shape[0] - 1, 1)
            s2 = self.noise * float(np.mean(np.einsum("mi,mi->i", D_reference, D_reference) / dof))
        return _State(committee, sample.indices, D_reference, s2)

    def chunk_scores(self, ctx: QueryContext, state: Any, X_chunk: Any) -> np.ndarray:
        if state.D_reference is None:  # no eligible row to sample: none to pick either
            return np.zeros(X_chunk.shape[0])
        return reduction_scores(state.committee.deviations(X_chunk), state.D_reference, state.s2)


def reduction_score_of(scorer: ScoreStrategy) -> ScoreStrategy | None:
    """The variance-reduction score inside ``scorer``'s wrappers (guards), else None."""
    while scorer is not None:
        if isinstance(scorer, _ReductionScore):
            return scorer
        scorer = getattr(scorer, "base", None)
    return None


class VarianceReduction(QueryStrategy):
    """Regression: the batch that most reduces the task model's predictive variance summed over
    the pool (expected variance reduction with a bootstrap committee of the model itself);
    greedy, each pick conditioned on, so the batch does not repeat itself.

    Cost: ``n_members`` refits on the labeled rows, a pass drawing the m-row reference sample,
    one pass of ``n_members`` predicts with O(n x m x n_members), then O(b x c x (c + m)) greedy
    steps on the c <= ``prefilter x b`` + m candidates (the best rows and the sample).

    Parameters
    ----------
    n_members : int, default=20
        Bootstrap refits in the committee (its covariance has rank ``n_members - 1``).
    n_reference : int, default=500
        Pool rows sampled uniformly to sum the variance over (and kept among the candidates).
    prefilter : int, default=10
        Candidates kept per batch row for the greedy step.
    noise : float, default=0.1
        ``s2`` as a share of the committee's mean variance over the sample (0: noiseless).
    """

    name = "variance_reduction"
    tasks: ClassVar[frozenset[str]] = frozenset({"regression"})
    cost: ClassVar[str] = (
        "n_members refits + 2 passes (n_members predicts) + O(n m n_members) + O(b c (c + m))"
    )

    def __init__(
        self, n_members: int = 20, n_reference: int = 500, prefilter: int = 10, noise: float = 0.1
    ) -> None:
        self.n_members = n_members
        self.n_reference = n_reference
        self.prefilter = prefilter
        self.noise = noise

    def _check(self) -> None:
        if self.n_members < 2 or self.n_reference < 1 or self.prefilter < 1 or self.noise < 0:
            raise ValueError(
                "variance_reduction: n_members must be >= 2, n_reference and prefilter >= 1 and "
                f"noise >= 0, got {self.n_members}, {self.n_reference}, {self.prefilter}, "
                f"{self.noise}"
            )

    def scorer(self) -> ScoreStrategy:
        """The prefilter's per-row score: the first pick's gain."""
        return _ReductionScore(self.n_members, self.n_reference, self.noise)

    def chunk_plan(
        self,
        ctx: QueryContext,
        batch_size: int,
        scorer: ScoreStrategy | None = None,
        source: str | None = None,
    ) -> ChunkPlan:
        """The pool is scored chunk by chunk (the ``prefilter x batch`` best rows kept with their
        rows); the greedy step runs on the merged candidates. ``scorer``: :meth:`scorer`, or it
        wrapped (privacy noise), a wrapper preparing its base's state; ``source``: the name the
        selection is recorded under (``hybrid`` for a regressor's batch)."""
        self._check()
        scorer = scorer or self.scorer()
        state = scorer.prepare(ctx)
        return ChunkPlan(
            scorer,
            state,
            self.prefilter * batch_size,
            partial(self._greedy, state, batch_size, source or self.name),
            keep_rows=True,
        )

    def _greedy(self, state: _State, batch_size: int, source: str, best: RunningTopK) -> Selection:
        """The greedy batch over the best rows and the reference sample: the sample keeps rows of
        every part of the pool among the candidates, so when one spot holds all the best first
        gains, its near-duplicates lose their value after the first pick and other rows remain."""
        if best.indices.shape[0] == 0:
            return Selection.of(best.indices, None, source)
        extra = ~np.isin(state.reference, best.indices)
        indices = np.concatenate([best.indices, state.reference[extra]])
        D = np.concatenate([state.committee.deviations(best.rows), state.D_reference[:, extra]], 1)
        picks, gains = greedy_reduction(D, state.D_reference, state.s2, batch_size)
        return Selection.of(indices[picks], gains, source)

    def _query(self, ctx: QueryContext, batch_size: int) -> Selection:
        return self.chunk_plan(ctx, batch_size).run(ctx)
