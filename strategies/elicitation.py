"""Which items to ask a new user to rate first (recommendation cold start), as pure numpy.

Every strategy ranks the items ``0..n_items-1`` and returns the next ``k`` to ask, best first,
never one in ``exclude`` (already rated) and only ones in ``candidates`` (when given). The
catalog statistics come from the catalog's ratings as two parallel arrays, the item index of
each rating and its value; :func:`factor_uncertainty` reads a factor model's item vectors.

References
----------
Rashid, A. M., Albert, I., Cosley, D., Lam, S. K., McNee, S. M., Konstan, J. A., Riedl, J.
(2002). Getting to know you: learning new user preferences in recommender systems. IUI '02.
Elahi, M., Ricci, F., Rubens, N. (2016). A survey of active learning in collaborative
filtering recommender systems. Computer Science Review 20, 29-50.
Harpale, A. S., Yang, Y. (2008). Personalized active learning for collaborative filtering.
SIGIR '08.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from strategies.selection import top_k

#: the strategies :func:`elicit` knows, in the order the docs list them
STRATEGIES = ("popularity", "entropy", "pop_entropy", "variance", "factor_uncertainty", "random")


class Picks(NamedTuple):
    """The items to ask, best first, and the score each was picked by (same length)."""

    items: np.ndarray
    scores: np.ndarray


def item_counts(items: np.ndarray, n_items: int) -> np.ndarray:
    """Number of ratings of each item (its popularity)."""
    return np.bincount(_indices(items, n_items), minlength=n_items).astype(np.float64)


def item_variance(items: np.ndarray, values: np.ndarray, n_items: int) -> np.ndarray:
    """Population variance (ddof 0) of each item's ratings; 0 for an item with under 2."""
    items = _indices(items, n_items)
    values = np.asarray(values, dtype=np.float64)
    n = np.bincount(items, minlength=n_items).astype(np.float64)
    total = np.bincount(items, weights=values, minlength=n_items)
    squares = np.bincount(items, weights=values**2, minlength=n_items)
    safe = np.maximum(n, 1.0)
    var = squares / safe - (total / safe) ** 2
    return np.where(n >= 2, np.maximum(var, 0.0), 0.0)


def item_entropy(
    items: np.ndarray, values: np.ndarray, n_items: int, levels: np.ndarray | None = None
) -> np.ndarray:
    """Entropy in bits of each item's distribution of ratings over the scale's ``levels``
    (default: the distinct values rated); a value between levels counts for the nearest one.
    An item without ratings has entropy 0."""
    items = _indices(items, n_items)
    values = np.asarray(values, dtype=np.float64)
    levels = np.unique(values) if levels is None else np.unique(np.asarray(levels, float))
    if levels.shape[0] == 0:
        return np.zeros(n_items)
    level = np.abs(values[:, None] - levels[None, :]).argmin(axis=1)
    counts = np.zeros((n_items, levels.shape[0]))
    np.add.at(counts, (items, level), 1.0)
    totals = counts.sum(axis=1, keepdims=True)
    p = counts / np.maximum(totals, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log2(np.where(p > 0, p, 1.0)), 0.0)
    return terms.sum(axis=1)


def pop_entropy_scores(counts: np.ndarray, entropy: np.ndarray) -> np.ndarray:
    """log(popularity) x entropy (Rashid et al. 2002): informative and likely to be known; 0
    for an item with no ratings."""
    counts = np.asarray(counts, dtype=np.float64)
    return np.log(np.maximum(counts, 1.0)) * np.asarray(entropy, dtype=np.float64)


def allowed_mask(
    n_items: int, exclude: np.ndarray | None = None, candidates: np.ndarray | None = None
) -> np.ndarray:
    """Boolean mask of the items that may be asked: in ``candidates`` (a boolean mask or item
    indices; all items when None) and not in ``exclude`` (indices or a mask)."""
    mask = np.ones(n_items, dtype=bool) if candidates is None else _as_mask(candidates, n_items)
    if exclude is not None:
        mask &= ~_as_mask(exclude, n_items)
    return mask


def top_items(
    scores: np.ndarray,
    k: int,
    *,
    exclude: np.ndarray | None = None,
    candidates: np.ndarray | None = None,
) -> Picks:
    """The ``k`` allowed items with the highest ``scores``, ties by lower index (fewer when
    fewer are allowed)."""
    scores = np.asarray(scores, dtype=np.float64)
    allowed = np.flatnonzero(allowed_mask(scores.shape[0], exclude, candidates))
    order = allowed[top_k(scores[allowed], k)]
    return Picks(order.astype(np.int64), scores[order])


def popularity(
    items: np.ndarray,
    n_items: int,
    k: int,
    *,
    exclude: np.ndarray | None = None,
    candidates: np.ndarray | None = None,
) -> Picks:
    """The most rated items: a new user most likely knows them (they say little about taste)."""
    return top_items(item_counts(items, n_items), k, exclude=exclude, candidates=candidates)


def entropy(
    items: np.ndarray,
    values: np.ndarray,
    n_items: int,
    k: int,
    *,
    levels: np.ndarray | None = None,
    exclude: np.ndarray | None = None,
    candidates: np.ndarray | None = None,
) -> Picks:
    """The items whose ratings are most spread over the scale: the answer is least predictable
    (an obscure item rated once by two people can top it)."""
    scores = item_entropy(items, values, n_items, levels)
    return top_items(scores, k, exclude=exclude, candidates=candidates)


def pop_entropy(
    items: np.ndarray,
    values: np.ndarray,
    n_items: int,
    k: int,
    *,
    levels: np.ndarray | None = None,
    exclude: np.ndarray | None = None,
    candidates: np.ndarray | None = None,
) -> Picks:
    """The balance of :func:`popularity` and :func:`entropy`: log(count) x entropy."""
    scores = pop_entropy_scores(
        item_counts(items, n_items), item_entropy(items, values, n_items, levels)
    )
    return top_items(scores, k, exclude=exclude, candidates=candidates)


def variance(
    items: np.ndarray,
    values: np.ndarray,
    n_items: int,
    k: int,
    *,
    exclude: np.ndarray | None = None,
    candidates: np.ndarray | None = None,
) -> Picks:
    """The items whose ratings vary most (controversial items split users apart)."""
    scores = item_variance(items, values, n_items)
    return top_items(scores, k, exclude=exclude, candidates=candidates)


def random_items(
    n_items: int,
    k: int,
    *,
    seed: int | np.random.Generator | None = 0,
    exclude: np.ndarray | None = None,
    candidates: np.ndarray | None = None,
) -> Picks:
    """``k`` allowed items uniformly at random without replacement (the baseline); the score
    is 0 for all."""
    rng = np.random.default_rng(seed)
    allowed = np.flatnonzero(allowed_mask(n_items, exclude, candidates))
    picked = rng.permutation(allowed)[: max(k, 0)].astype(np.int64)
    return Picks(picked, np.zeros(picked.shape[0]))


def factor_uncertainty(
    item_factors: np.ndarray,
    k: int,
    *,
    reg: float = 1.0,
    exclude: np.ndarray | None = None,
    candidates: np.ndarray | None = None,
    prior_items: np.ndarray | None = None,
) -> Picks:
    """Greedy D-optimal picks for the new user's factor vector ``u``.

    With the prior covariance of ``u`` equal to ``(reg I)^-1`` (conditioned on the items in
    ``prior_items``, the ratings already known) and unit rating noise, rating item ``v`` shrinks
    the log-determinant of ``u``'s covariance ``Sigma`` by ``log(1 + v^T Sigma v)``: pick the
    item with the largest ``v^T Sigma v``, update ``Sigma`` by Sherman-Morrison
    ``Sigma - Sigma v v^T Sigma / (1 + v^T Sigma v)`` and repeat for ``k`` items. The score is
    ``v^T Sigma v`` at the time of the pick.

    Parameters
    ----------
    item_factors : ndarray of shape (n_items, rank)
        The item vectors of a factor model, fixed while the user is folded in.
    k : int
        Items wanted (fewer when fewer are allowed).
    reg : float
        The L2 regularisation of the user vector, the prior precision ``lambda``.
    prior_items : ndarray of item indices, optional
        Items the user already rated: their vectors are conditioned on before the first pick.
    """
    v = np.asarray(item_factors, dtype=np.float64)
    if v.ndim != 2:
        raise ValueError(f"item_factors must be 2-D (n_items, rank), got shape {v.shape}")
    if reg <= 0:
        raise ValueError(f"reg must be positive, got {reg}")
    n_items, rank = v.shape
    precision = reg * np.eye(rank)
    if prior_items is not None:
        known = v[_as_mask(prior_items, n_items)]
        precision += known.T @ known
    sigma = np.linalg.inv(precision)
    allowed = np.flatnonzero(allowed_mask(n_items, exclude, candidates))
    picked: list[int] = []
    scores: list[float] = []
    pool = v[allowed]
    left = np.ones(allowed.shape[0], dtype=bool)
    for _ in range(min(max(k, 0), allowed.shape[0])):
        gain = np.einsum("ij,jk,ik->i", pool, sigma, pool)
        gain[~left] = -np.inf
        j = int(np.argmax(gain))  # first maximum: ties by lower index
        left[j] = False
        picked.append(int(allowed[j]))
        scores.append(float(gain[j]))
        sv = sigma @ pool[j]
        sigma = sigma - np.outer(sv, sv) / (1.0 + pool[j] @ sv)
    return Picks(np.asarray(picked, dtype=np.int64), np.asarray(scores, dtype=np.float64))


def elicit(
    strategy: str,
    items: np.ndarray,
    values: np.ndarray,
    n_items: int,
    k: int,
    *,
    levels: np.ndarray | None = None,
    item_factors: np.ndarray | None = None,
    reg: float = 1.0,
    exclude: np.ndarray | None = None,
    candidates: np.ndarray | None = None,
    prior_items: np.ndarray | None = None,
    seed: int | np.random.Generator | None = 0,
) -> Picks:
    """The next ``k`` items to ask by ``strategy`` (one of :data:`STRATEGIES`); ``items`` and
    ``values`` are the catalog's ratings, ``item_factors`` is needed by ``factor_uncertainty``."""
    allow = {"exclude": exclude, "candidates": candidates}
    if strategy == "popularity":
        return popularity(items, n_items, k, **allow)
    if strategy == "entropy":
        return entropy(items, values, n_items, k, levels=levels, **allow)
    if strategy == "pop_entropy":
        return pop_entropy(items, values, n_items, k, levels=levels, **allow)
    if strategy == "variance":
        return variance(items, values, n_items, k, **allow)
    if strategy == "random":
        return random_items(n_items, k, seed=seed, **allow)
    if strategy == "factor_uncertainty":
        if item_factors is None:
            raise ValueError("factor_uncertainty needs item_factors (a fitted factor model)")
        return factor_uncertainty(item_factors, k, reg=reg, prior_items=prior_items, **allow)
    raise ValueError(f"unknown elicitation strategy {strategy!r}; known: {', '.join(STRATEGIES)}")


def _indices(items: np.ndarray, n_items: int) -> np.ndarray:
    items = np.asarray(items, dtype=np.int64)
    if items.size and (items.min() < 0 or items.max() >= n_items):
        raise ValueError(
            f"item indices must lie in [0, {n_items}), got {items.min()}..{items.max()}"
        )
    return items


def _as_mask(which: np.ndarray, n_items: int) -> np.ndarray:
    """A boolean mask of length ``n_items`` from a mask or from item indices."""
    which = np.asarray(which)
    if which.dtype == bool:
        if which.shape != (n_items,):
            raise ValueError(f"a mask must have shape ({n_items},), got {which.shape}")
        return which.copy()
    mask = np.zeros(n_items, dtype=bool)
    mask[_indices(which.ravel(), n_items)] = True
    return mask
