"""Scores from the user's own model outputs: one row per item, per committee member, or per box.

Pure helpers for ``labelwise select``: they reuse the uncertainty, committee and diversity
functions on arrays already read from a predictions file (no I/O here). Rows of one item
(its members or its boxes) are contiguous and given by the start index of each group.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from strategies.committee import mutual_information, vote_entropy
from strategies.density import lloyd_kmeans
from strategies.diversity import kcenter_greedy
from strategies.uncertainty import entropy, least_confidence, margin

#: per-row uncertainty of a probability matrix, by strategy name
ROW_SCORES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "least_confidence": least_confidence,
    "margin": margin,
    "entropy": entropy,
}
#: disagreement of committee members or MC-dropout passes, by strategy name
MEMBER_SCORES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "bald": mutual_information,
    "vote_entropy": vote_entropy,
}
DIVERSITY = ("coreset", "cluster_margin")
AGGREGATES = ("max", "mean", "sum")


def row_scores(probas: np.ndarray, strategy: str) -> np.ndarray:
    """Uncertainty of each row of ``probas`` (n, K) under a per-row strategy."""
    if strategy not in ROW_SCORES:
        raise ValueError(f"{strategy!r} is not a per-row strategy: one of {sorted(ROW_SCORES)}")
    return ROW_SCORES[strategy](probas)


def group_sizes(starts: np.ndarray, n_rows: int) -> np.ndarray:
    """Rows in each contiguous group, from the groups' start indices."""
    return np.diff(np.r_[starts, n_rows])


def member_scores(probas: np.ndarray, starts: np.ndarray, strategy: str) -> np.ndarray:
    """One score per item from its members' rows: BALD / vote entropy on the (M, n, K) stack, or
    a per-row strategy on the members' mean probabilities. Items may have different M."""
    if starts.size == 0:
        return np.empty(0)
    sizes = group_sizes(starts, probas.shape[0])
    if strategy in ROW_SCORES:
        return row_scores(np.add.reduceat(probas, starts, axis=0) / sizes[:, None], strategy)
    scores = np.empty(starts.shape[0])
    if strategy not in MEMBER_SCORES:
        raise ValueError(f"{strategy!r} does not score committee members: use bald or vote_entropy")
    for m in np.unique(sizes):
        items = np.flatnonzero(sizes == m)
        rows = starts[items][None, :] + np.arange(m)[:, None]  # (M, n_items)
        scores[items] = MEMBER_SCORES[strategy](probas[rows])
    return scores


def box_scores(
    probas: np.ndarray,
    starts: np.ndarray,
    strategy: str,
    aggregate: str = "max",
    rare: np.ndarray | None = None,
) -> np.ndarray:
    """One score per image from its boxes: the per-box uncertainty aggregated by max, mean or
    sum, plus (with ``rare``, a boolean mask over classes) the count of boxes whose most
    probable class is rare, so an image with rare objects ranks above any without."""
    if aggregate not in AGGREGATES:
        raise ValueError(f"aggregate must be one of {AGGREGATES}, got {aggregate!r}")
    if starts.size == 0:
        return np.empty(0)
    per_box = row_scores(probas, strategy)
    if aggregate == "max":
        scores = np.maximum.reduceat(per_box, starts)
    else:
        scores = np.add.reduceat(per_box, starts)
        if aggregate == "mean":
            scores = scores / group_sizes(starts, probas.shape[0])
    if rare is not None and rare.any():
        is_rare = rare[probas.argmax(axis=1)].astype(np.float64)
        scores = scores + np.add.reduceat(is_rare, starts)
    return scores


def diverse_picks(
    embeddings: np.ndarray,
    scores: np.ndarray,
    k: int,
    method: str,
    rng: np.random.Generator,
) -> np.ndarray:
    """Positions of ``k`` candidates that cover the candidates' embeddings.

    ``coreset``: k-center greedy (the first pick is the most informative candidate, then the
    farthest from all picks). ``cluster_margin``: k-means of the candidates into ``k`` clusters,
    then round-robin over clusters by score, so near-duplicates share one cluster's slot.
    ``scores`` orders ties and the round-robin (higher first); candidates are in any order.
    """
    m = embeddings.shape[0]
    k = min(k, m)
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    X = np.asarray(embeddings, dtype=np.float64)
    if method == "coreset":
        # best candidate first: unweighted k-center with no centres starts at row 0
        order = np.lexsort((np.arange(m), -scores))
        picks, _ = kcenter_greedy(X[order], k)
        return order[picks]
    if method == "cluster_margin":
        n_clusters = min(k, np.unique(X, axis=0).shape[0])
        _, labels = lloyd_kmeans(X, n_clusters, rng, n_iter=10)
        ranked = np.lexsort((np.arange(m), -scores))
        return _round_robin(ranked, labels)[:k]
    raise ValueError(f"diversity must be one of {DIVERSITY}, got {method!r}")


def _round_robin(ranked: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``ranked`` (best first) reordered: each cluster's best, then each one's second, ..."""
    depth = np.empty(ranked.shape[0], dtype=np.int64)
    seen: dict[int, int] = {}
    for pos, row in enumerate(ranked):
        c = int(labels[row])
        depth[pos] = seen.get(c, 0)
        seen[c] = depth[pos] + 1
    return ranked[np.lexsort((np.arange(ranked.shape[0]), depth))]
