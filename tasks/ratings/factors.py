"""Explicit-feedback matrix factorisation by alternating least squares, with biases, in numpy.

The model: ``rating(u, i) ~ mu + b_u + b_i + p_u . q_i`` with ``mu`` the training mean, L2
regularisation ``reg`` on the vectors and ``reg_bias`` on the biases. Each half-step solves every
user's (or item's) ``(rank + 1)``-dim ridge system exactly; the normal matrices are summed for all
users at once (a sparse indicator times the ratings' outer products, in chunks) and solved as
one stacked ``np.linalg.solve``. Users are solved last, so a trained user's vector is exactly
what :meth:`FactorModel.fold_in` gives for their ratings: a new user is folded in the same way.

Why not a package: ``implicit`` fits implicit feedback (confidences), not ratings; the
``scikit-surprise`` wheel imports under numpy 2 but adds a dependency outside our pins and its
SVD (SGD) has no fold-in of a new user, which elicitation needs after every answer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

#: outer products summed per chunk of this many ratings (bounds memory to chunk x (rank+1)^2)
CHUNK = 32_768


@dataclass(frozen=True)
class FactorModel:
    """A fitted model: the global mean, biases and factors of ``n_users`` users and ``n_items``
    items (indices, not ids), and the regularisation it was fitted with."""

    mean: float
    user_bias: np.ndarray
    item_bias: np.ndarray
    user_factors: np.ndarray
    item_factors: np.ndarray
    reg: float
    reg_bias: float

    @property
    def rank(self) -> int:
        return int(self.item_factors.shape[1])

    def predict(
        self, users: np.ndarray, items: np.ndarray, clip: tuple[float, float] | None = None
    ) -> np.ndarray:
        """Predicted ratings of the (user, item) index pairs, optionally clipped to the scale."""
        users, items = np.asarray(users, np.int64), np.asarray(items, np.int64)
        p = self.user_factors[users]
        q = self.item_factors[items]
        out = (
            self.mean + self.user_bias[users] + self.item_bias[items] + np.einsum("ij,ij->i", p, q)
        )
        return out if clip is None else np.clip(out, *clip)

    def fold_in(self, items: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, float]:
        """A new user's factor vector and bias from their ratings of ``items``, the item side
        fixed: the ridge solution of the same system training solves. No ratings: the zero
        vector and bias 0 (predictions are ``mean + item bias``)."""
        items = np.asarray(items, np.int64)
        values = np.asarray(values, np.float64)
        if items.shape[0] == 0:
            return np.zeros(self.rank), 0.0
        x = np.hstack([self.item_factors[items], np.ones((items.shape[0], 1))])
        target = values - self.mean - self.item_bias[items]
        a = x.T @ x + np.diag(_penalty(self.rank, self.reg, self.reg_bias))
        solution = np.linalg.solve(a, x.T @ target)
        return solution[:-1], float(solution[-1])

    def predict_new(
        self,
        vector: np.ndarray,
        bias: float,
        items: np.ndarray,
        clip: tuple[float, float] | None = None,
    ) -> np.ndarray:
        """Predicted ratings of ``items`` for a folded-in user (``vector``, ``bias``)."""
        items = np.asarray(items, np.int64)
        out = self.mean + bias + self.item_bias[items] + self.item_factors[items] @ vector
        return out if clip is None else np.clip(out, *clip)


def fit_als(
    users: np.ndarray,
    items: np.ndarray,
    values: np.ndarray,
    n_users: int,
    n_items: int,
    *,
    rank: int = 10,
    reg: float = 5.0,
    reg_bias: float | None = None,
    iterations: int = 15,
    seed: int = 0,
) -> FactorModel:
    """Fit the model to ratings given as index arrays (``users[r], items[r] -> values[r]``).

    Item vectors start at ``N(0, 0.1^2)`` from ``seed``; each of ``iterations`` rounds solves
    the items given the users, then the users given the items. ``reg_bias`` defaults to ``reg``.
    """
    users = np.asarray(users, np.int64)
    items = np.asarray(items, np.int64)
    values = np.asarray(values, np.float64)
    if values.shape[0] == 0:
        raise ValueError("no ratings to fit")
    if rank < 1 or iterations < 1:
        raise ValueError(f"rank and iterations must be at least 1, got {rank}, {iterations}")
    reg_bias = reg if reg_bias is None else reg_bias
    rng = np.random.default_rng(seed)
    mean = float(values.mean())
    residual = values - mean
    item_factors = rng.normal(0.0, 0.1, size=(n_items, rank))
    item_bias = np.zeros(n_items)
    user_factors = rng.normal(0.0, 0.1, size=(n_users, rank))
    user_bias = np.zeros(n_users)
    by_user = _indicator(users, n_users)
    by_item = _indicator(items, n_items)
    penalty = _penalty(rank, reg, reg_bias)
    for _ in range(iterations):
        item_factors, item_bias = _solve_side(
            by_item, user_factors[users], residual - user_bias[users], penalty
        )
        user_factors, user_bias = _solve_side(
            by_user, item_factors[items], residual - item_bias[items], penalty
        )
    return FactorModel(mean, user_bias, item_bias, user_factors, item_factors, reg, reg_bias)


def rmse(predicted: np.ndarray, actual: np.ndarray) -> float:
    """Root mean squared error."""
    diff = np.asarray(predicted, float) - np.asarray(actual, float)
    return float(np.sqrt(np.mean(diff**2)))


def _penalty(rank: int, reg: float, reg_bias: float) -> np.ndarray:
    return np.concatenate([np.full(rank, float(reg)), [float(reg_bias)]])


def _indicator(owner: np.ndarray, n: int) -> sp.csr_matrix:
    """The (n, n_ratings) 0/1 matrix of which rating belongs to which user (or item)."""
    m = owner.shape[0]
    return sp.csr_matrix((np.ones(m), (owner, np.arange(m))), shape=(n, m))


def _solve_side(
    owner: sp.csr_matrix, other: np.ndarray, target: np.ndarray, penalty: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For every row of ``owner``: the ridge solution ``[w, b]`` of ``target ~ other . w + b``
    over its ratings, with ``diag(penalty)`` added to its normal matrix."""
    n, m = owner.shape
    d = penalty.shape[0]
    x = np.hstack([other, np.ones((m, 1))])
    normal = np.zeros((n, d * d))
    for start in range(0, m, CHUNK):  # a loop over chunks of ratings, not over ratings
        part = slice(start, start + CHUNK)
        outer = np.einsum("ri,rj->rij", x[part], x[part]).reshape(-1, d * d)
        normal += owner[:, part] @ outer
    normal = normal.reshape(n, d, d) + np.diag(penalty)
    rhs = owner @ (x * target[:, None])
    solution = np.linalg.solve(normal, rhs[:, :, None])[:, :, 0]
    return solution[:, :-1], solution[:, -1]
