"""Uncertainty sampling: least confidence, margin and entropy of the model's class probabilities.

All three cost one ``predict_proba`` over the pool plus O(n x n_classes): they are the floor
every other strategy is measured against.

References
----------
Settles, B. (2009). Active Learning Literature Survey. University of Wisconsin-Madison, TR 1648.
Lewis, D. D. & Gale, W. A. (1994). A sequential algorithm for training text classifiers. SIGIR.
Scheffer, T., Decomain, C. & Wrobel, S. (2001). Active hidden Markov models for information
extraction. IDA (margin sampling).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from strategies.base import ProbaScoreStrategy


def _check_probas(probas: np.ndarray) -> np.ndarray:
    probas = np.asarray(probas, dtype=np.float64)
    if probas.ndim != 2 or probas.shape[1] < 1:
        raise ValueError(f"probas must have shape (n_samples, n_classes), got {probas.shape}")
    return probas


def least_confidence(probas: np.ndarray) -> np.ndarray:
    """``1 - max_k p_k`` per row: 0 for a one-hot row, ``1 - 1/K`` at uniform.

    Parameters
    ----------
    probas : ndarray of shape (n_samples, n_classes)

    Returns
    -------
    scores : ndarray of shape (n_samples,), higher is more informative.
    """
    probas = _check_probas(probas)
    return 1.0 - probas.max(axis=1)


def margin(probas: np.ndarray) -> np.ndarray:
    """``1 - (p_(1) - p_(2))``: one minus the gap between the two most probable classes.

    1 when the top two tie (uniform), 0 for a one-hot row; with one class every row scores 0.

    Parameters
    ----------
    probas : ndarray of shape (n_samples, n_classes)

    Returns
    -------
    scores : ndarray of shape (n_samples,), higher is more informative.
    """
    probas = _check_probas(probas)
    n_classes = probas.shape[1]
    if n_classes == 1:
        return np.zeros(probas.shape[0])
    if n_classes == 2:
        return 1.0 - np.abs(probas[:, 0] - probas[:, 1])
    top2 = np.partition(probas, n_classes - 2, axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


def entropy(probas: np.ndarray) -> np.ndarray:
    """Shannon entropy ``-sum_k p_k log p_k`` in nats, with ``0 log 0 = 0`` (no NaN at p=0).

    0 for a one-hot row, ``log K`` at uniform.

    Parameters
    ----------
    probas : ndarray of shape (n_samples, n_classes)

    Returns
    -------
    scores : ndarray of shape (n_samples,), higher is more informative.
    """
    probas = _check_probas(probas)
    return _entropy_rows(probas)


def _entropy_rows(probas: np.ndarray, axis: int = -1) -> np.ndarray:
    # log of a zero probability is -inf, but it is multiplied by that zero: mask those terms.
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = probas * np.log(probas)
    terms[probas <= 0] = 0.0
    return -terms.sum(axis=axis)


class LeastConfidence(ProbaScoreStrategy):
    """Rows whose most probable class is least probable. Cost: one predict_proba pass."""

    name = "least_confidence"
    cost: ClassVar[str] = "1 predict_proba pass + O(n K)"
    score_fn = staticmethod(least_confidence)


class Margin(ProbaScoreStrategy):
    """Rows with the smallest gap between the top two classes. Cost: one predict_proba pass."""

    name = "margin"
    cost: ClassVar[str] = "1 predict_proba pass + O(n K)"
    score_fn = staticmethod(margin)


class Entropy(ProbaScoreStrategy):
    """Rows with the most spread-out class distribution. Cost: one predict_proba pass."""

    name = "entropy"
    cost: ClassVar[str] = "1 predict_proba pass + O(n K)"
    score_fn = staticmethod(entropy)
