"""Squared Euclidean distances without an n x n matrix: rows against a small set of centres."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp


def as_dense_float(X: Any, dtype: type = np.float64) -> np.ndarray:
    if sp.issparse(X):
        return X.toarray().astype(dtype, copy=False)
    if hasattr(X, "to_numpy"):
        X = X.to_numpy()
    return np.asarray(X, dtype=dtype)


def as_float_matrix(X: Any) -> Any:
    """Float64 rows, dense or CSR: sparse stays sparse (a TF-IDF pool is never densified)."""
    if sp.issparse(X):
        return X.tocsr().astype(np.float64)
    return as_dense_float(X)


def row_sq_norms(X: Any) -> np.ndarray:
    """``||x_i||^2`` of shape (n,), dense or sparse."""
    if sp.issparse(X):
        return np.asarray(X.multiply(X).sum(axis=1)).ravel()
    X = np.asarray(X)
    return np.einsum("ij,ij->i", X, X)


def sq_distances(X: Any, centres: Any, centres_sq: np.ndarray | None = None) -> np.ndarray:
    """``||x_i - c_j||^2`` of shape (n, m), clipped at 0 against rounding. X and the centres may be
    sparse; the (n, m) result is dense."""
    if centres_sq is None:
        centres_sq = row_sq_norms(centres)
    x_sq = row_sq_norms(X)
    d = X @ centres.T
    d = d.toarray() if sp.issparse(d) else np.asarray(d)
    # In place: one (n, m) buffer instead of four temporaries.
    d *= -2.0
    d += x_sq[:, None]
    d += centres_sq[None, :]
    np.maximum(d, 0.0, out=d)
    return d


def min_sq_distance(X: Any, centres: Any, block: int = 256) -> np.ndarray:
    """Per-row squared distance to the nearest centre, in blocks of centres (memory O(n x block))."""
    out = np.full(X.shape[0], np.inf)
    for start in range(0, centres.shape[0], block):
        part = centres[start : start + block]
        np.minimum(out, sq_distances(X, part).min(axis=1), out=out)
    return out
