"""Relabel or label new (ActiveLab): how likely a labeled item's consensus label is wrong, on the
same [0, 1] scale as an unlabeled item's informativeness, and one queue of both kinds of pick.

Every label source gets a CROWDLAB weight ``w = max(eps, 1 - (1 - accuracy) / (1 - baseline))``
(``baseline``: the accuracy of always answering the most common class): the model (``w_M``, from
its out-of-sample accuracy) and each annotator (``w_j``, from their estimated accuracy); ``w_bar``
is the mean annotator weight, the weight of the next annotator, who is not asked yet. For a
labeled item ``i`` with consensus class ``c`` and weighted votes ``V[i, k] = sum of w_j over the
annotators j who answered k``, the chance that the consensus is right is

    q_i = (w_M * p_i[c] + V[i, c] + w_bar / K) / (w_M + sum_k V[i, k] + w_bar)

and the relabel score is ``1 - q_i``. An unlabeled item has no votes: its score is
``1 - (w_M * max_k p_i[k] + w_bar / K) / (w_M + w_bar)``, a monotone map of ``1 - max p``.

References
----------
Goh, H. W. & Mueller, J. (2023). ActiveLab: Active Learning with Re-Labeling by Multiple
Annotators. ICLR 2023 Workshop on Trustworthy ML.
Goh, H. W., Tkachenko, U. & Mueller, J. (2022). CROWDLAB: Supervised learning to infer consensus
labels and quality scores for data with multiple annotators. NeurIPS 2022 Workshop.
"""

from __future__ import annotations

import math

import numpy as np

#: the smallest weight of a source: one no better than always answering the common class
MIN_WEIGHT = 1e-3


def source_weight(accuracy: np.ndarray | float, baseline_accuracy: float) -> np.ndarray:
    """CROWDLAB's weight of a label source: ``1 - error / baseline error``, floored at
    ``MIN_WEIGHT`` (a source no better than the most common class still counts a little)."""
    error = 1.0 - np.asarray(accuracy, dtype=np.float64)
    baseline_error = max(1.0 - float(baseline_accuracy), MIN_WEIGHT)
    return np.maximum(1.0 - error / baseline_error, MIN_WEIGHT)


def weighted_votes(counts: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``V[i, k] = sum_a weights[a] * counts[i, a, k]``: each answer counted with its annotator's
    weight (``counts``: a vote table, items x annotators x classes)."""
    return np.einsum("iak,a->ik", np.asarray(counts, dtype=np.float64), np.asarray(weights))


def consensus_wrong(
    votes: np.ndarray,
    probas: np.ndarray,
    consensus: np.ndarray | None = None,
    *,
    model_weight: float,
    prior_weight: float,
) -> np.ndarray:
    """How likely each labeled item's consensus class is wrong: ``1 - q_i`` of the module
    docstring. ``votes``: weighted votes (n x K), ``probas``: the model's out-of-sample
    probabilities (n x K, same class order), ``consensus``: the consensus class per item
    (default: the weighted-vote winner)."""
    votes = np.asarray(votes, dtype=np.float64)
    probas = np.asarray(probas, dtype=np.float64)
    if votes.shape != probas.shape or votes.ndim != 2:
        raise ValueError(f"votes {votes.shape} and probas {probas.shape} must be the same (n, K)")
    n, k = votes.shape
    c = votes.argmax(axis=1) if consensus is None else np.asarray(consensus, dtype=np.int64)
    rows = np.arange(n)
    agree = model_weight * probas[rows, c] + votes[rows, c] + prior_weight / k
    total = model_weight + votes.sum(axis=1) + prior_weight
    return 1.0 - agree / total


def new_item_scores(probas: np.ndarray, *, model_weight: float, prior_weight: float) -> np.ndarray:
    """An unlabeled item's informativeness on the relabel scale: ``1 - (w_M * max p + w_bar / K)
    / (w_M + w_bar)`` (the chance the model's best guess is wrong, shrunk to the prior)."""
    probas = np.asarray(probas, dtype=np.float64)
    k = probas.shape[1]
    right = (model_weight * probas.max(axis=1) + prior_weight / k) / (model_weight + prior_weight)
    return 1.0 - right


def relabel_cap(batch: int, relabel_share: float) -> int:
    """The most relabel picks a batch may hold: ``floor(relabel_share * batch)``."""
    return math.floor(relabel_share * batch + 1e-9)  # 0.29 * 100 is 28.999...: 29


def merge_queues(
    new_scores: np.ndarray, relabel_scores: np.ndarray, batch: int, relabel_share: float
) -> tuple[np.ndarray, np.ndarray]:
    """One queue of ``batch`` picks: (is_relabel, index into its own candidates), in pick order.

    New items are taken in the order given (a strategy's ranking; sorted by score, the result is
    the top ``batch`` of both kinds), relabel candidates by descending score; a relabel pick goes
    first when it scores higher than the next new item, up to :func:`relabel_cap`."""
    new_scores = np.asarray(new_scores, dtype=np.float64)
    relabel_scores = np.asarray(relabel_scores, dtype=np.float64)
    cap = relabel_cap(batch, relabel_share)
    order = np.argsort(-relabel_scores, kind="stable")
    kinds: list[bool] = []
    picks: list[int] = []
    n_new = n_old = 0
    while len(picks) < batch:
        new_left = n_new < new_scores.shape[0]
        old_left = n_old < min(cap, order.shape[0])
        if not (new_left or old_left):
            break
        if old_left and (not new_left or relabel_scores[order[n_old]] > new_scores[n_new]):
            kinds.append(True)
            picks.append(int(order[n_old]))
            n_old += 1
        else:
            kinds.append(False)
            picks.append(n_new)
            n_new += 1
    return np.asarray(kinds, dtype=bool), np.asarray(picks, dtype=np.int64)
