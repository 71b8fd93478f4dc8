"""Information density: uncertainty weighted by how representative a row is of the pool.

Representativeness is the mean similarity to the pool, estimated against k-means centroids (or a
random sample) of the pool, so the cost is O(n x n_reference x d), never an n x n matrix.

References
----------
Settles, B. & Craven, M. (2008). An analysis of active learning strategies for sequence labeling
tasks. EMNLP (information density).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from strategies._distance import as_dense_float, as_float_matrix, sq_distances
from strategies.base import QueryContext, ScoreStrategy, sklearn_seed
from strategies.uncertainty import entropy, least_confidence, margin

UNCERTAINTY = {"entropy": entropy, "margin": margin, "least_confidence": least_confidence}


@dataclass
class _Reference:
    centres: np.ndarray  # (m, d)
    centres_sq: np.ndarray  # (m,)
    weights: np.ndarray  # (m,), sums to 1: share of the pool each centre stands for
    gamma: float


def pool_density(X: Any, reference: _Reference) -> np.ndarray:
    """Weighted mean RBF similarity ``sum_j w_j exp(-gamma ||x - c_j||^2)`` of shape (n,), in (0, 1]."""
    d = sq_distances(X, reference.centres, reference.centres_sq)
    d *= -reference.gamma
    np.exp(d, out=d)
    return d @ reference.weights


def lloyd_kmeans(
    X: np.ndarray, k: int, rng: np.random.Generator, n_iter: int = 5
) -> tuple[np.ndarray, np.ndarray]:
    """k-means++ seeding then ``n_iter`` Lloyd steps: centres (k, d) and labels (n,).

    A few dense matmuls on a sample; enough for a density estimate, ~50x cheaper than a full fit.
    """
    from sklearn.cluster import kmeans_plusplus

    centres, _ = kmeans_plusplus(X, k, random_state=sklearn_seed(rng))
    labels = np.zeros(X.shape[0], dtype=np.int64)
    for _ in range(n_iter):
        labels = sq_distances(X, centres).argmin(axis=1)
        onehot = labels[:, None] == np.arange(k)
        counts = onehot.sum(axis=0)
        sums = np.asarray(onehot.T.astype(np.float64) @ X)
        filled = counts > 0  # an empty cluster keeps its old centre
        centres[filled] = sums[filled] / counts[filled, None]
    return centres, sq_distances(X, centres).argmin(axis=1)


def fit_reference(
    sample: np.ndarray, n_reference: int, method: str, rng: np.random.Generator
) -> _Reference:
    """Centres summarising the pool: k-means centroids weighted by cluster size, or sampled rows."""
    n_reference = min(n_reference, sample.shape[0])
    if method == "kmeans":
        centres, labels = lloyd_kmeans(sample, n_reference, rng)
        weights = np.bincount(labels, minlength=n_reference).astype(np.float64)
    elif method == "sample":
        centres = as_dense_float(
            sample[rng.choice(sample.shape[0], size=n_reference, replace=False)]
        )
        weights = np.ones(n_reference)
    else:
        raise ValueError(f"reference must be 'kmeans' or 'sample', got {method!r}")
    weights /= weights.sum()
    centres_sq = np.einsum("ij,ij->i", centres, centres)
    # Bandwidth from the data: the median squared distance from sample rows to their centres.
    d = sq_distances(sample[: min(2000, sample.shape[0])], centres, centres_sq)
    scale = float(np.median(d))
    gamma = 1.0 / scale if scale > 0 else 1.0
    return _Reference(centres, centres_sq, weights, gamma)


class DensityWeighted(ScoreStrategy):
    """Uncertainty x (mean similarity to the pool)^beta: avoids uncertain outliers.

    Cost: one predict_proba pass + O(n x n_reference x d) distances, plus a small k-means
    on a sample of ``sample_size`` rows (k-means++ seeding + 5 Lloyd steps).
    """

    name = "density_weighted"
    cost: ClassVar[str] = (
        "1 predict_proba pass + O(n m d) to m centroids + k-means on a 2k-row sample"
    )

    def __init__(
        self,
        uncertainty: str = "margin",
        beta: float = 1.0,
        n_reference: int = 50,
        reference: str = "kmeans",
        sample_size: int = 2_000,
    ) -> None:
        self.uncertainty = uncertainty
        self.beta = beta
        self.n_reference = n_reference
        self.reference = reference
        self.sample_size = sample_size

    def prepare(self, ctx: QueryContext) -> _Reference:
        if self.uncertainty not in UNCERTAINTY:
            raise ValueError(
                f"{self.name}: uncertainty must be one of {sorted(UNCERTAINTY)}, got {self.uncertainty!r}"
            )
        if self.beta < 0:
            raise ValueError(f"{self.name}: beta must be >= 0, got {self.beta}")
        sample = as_float_matrix(ctx.pool.sample(self.sample_size, ctx.rng))
        return fit_reference(sample, self.n_reference, self.reference, ctx.rng)

    def chunk_scores(self, ctx: QueryContext, state: _Reference, X_chunk: Any) -> np.ndarray:
        u = UNCERTAINTY[self.uncertainty](ctx.predict_proba(X_chunk))
        X = as_float_matrix(X_chunk)
        return u * pool_density(X, state) ** self.beta
