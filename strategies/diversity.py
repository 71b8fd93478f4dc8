"""Batch diversity: core-set (k-center greedy) and the uncertainty x diversity hybrid.

Both work on a bounded candidate set (the most informative rows, or a uniform sample of the pool),
so a query costs O(n) for the pass over the pool plus O(m x (b + n_labeled) x d) for m candidates.

References
----------
Sener, O. & Savarese, S. (2018). Active learning for convolutional neural networks: a core-set
approach. ICLR.
Ash, J. T. et al. (2020). Deep batch active learning by diverse, uncertain gradient lower bounds.
ICLR (k-means++ seeding for batch diversity).
Zhdanov, F. (2019). Diverse mini-batch active learning. arXiv:1901.05954.
Hacohen, G., Dekel, A. & Weinshall, D. (2022). Active learning on a budget: opposite strategies
suit high and low budgets. ICML (TypiClust: typical rows of uncovered clusters at a cold start).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from strategies._distance import as_float_matrix, min_sq_distance, row_sq_norms, sq_distances
from strategies.base import (
    ChunkPlan,
    NotChunkable,
    QueryContext,
    QueryStrategy,
    ScoreStrategy,
    Selection,
)
from strategies.density import lloyd_kmeans
from strategies.random import RandomSampling
from strategies.selection import RunningTopK
from strategies.uncertainty import Margin

#: labels per class below which :class:`Hybrid` picks representative rows (docs/benchmarks-suite.md:
#: margin-driven picks from 2 labels per class lost to random on mnist_subset)
COLD_START = 10


def cold_start_threshold(ctx: QueryContext, per_class: int) -> int:
    """``per_class`` x the number of classes the model knows (a regressor, a model without
    ``predict_proba``, counts as one; without a model, the labeled set's distinct non-float
    labels): the labeled-set size below which a query counts as a cold start."""
    model, y = ctx.model, ctx.y_labeled
    classes = getattr(model, "classes_", None)
    if classes is None and model is not None and not hasattr(model, "predict_proba"):
        return per_class
    if classes is None and y is not None and not np.issubdtype(np.asarray(y).dtype, np.floating):
        classes = np.unique(y)
    return per_class * (1 if classes is None else max(1, len(classes)))


def kcenter_greedy(
    X: np.ndarray,
    k: int,
    *,
    centres: np.ndarray | None = None,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy k-center: repeatedly take the row farthest from every chosen row and every centre.

    With ``weights``, the row maximising ``weight x distance`` is taken (uncertainty-weighted
    coverage); with no centres the first pick is the highest weight (or row 0).

    Parameters
    ----------
    X : ndarray of shape (m, d)
        Candidate rows.
    k : int
        Rows to pick (at most m).
    centres : ndarray of shape (p, d), optional
        Already-covered points, e.g. the labeled set.
    weights : ndarray of shape (m,), optional
        Non-negative informativeness of each candidate.

    Returns
    -------
    picks : ndarray of shape (min(k, m),)
        Candidate indices in pick order.
    gaps : ndarray of shape (min(k, m),)
        Distance from each pick to the nearest earlier pick or centre when it was picked
        (inf for an unconstrained first pick).
    """
    m = X.shape[0]
    k = min(k, m)
    picks = np.empty(k, dtype=np.int64)
    gaps = np.empty(k)
    w = np.ones(m) if weights is None else np.asarray(weights, dtype=np.float64)
    if centres is not None and centres.shape[0] > 0:
        min_d = min_sq_distance(X, centres)
    else:
        min_d = np.full(m, np.inf)
    x_sq = row_sq_norms(X)
    taken = np.zeros(m, dtype=bool)
    for step in range(k):
        if np.isinf(min_d).all():
            gain = w.copy()
        else:
            gain = w * np.where(np.isinf(min_d), np.finfo(np.float64).max, min_d)
        gain[taken] = -np.inf
        pick = int(np.argmax(gain))
        picks[step], gaps[step] = pick, np.sqrt(min_d[pick])
        taken[pick] = True
        cross = X @ X[pick].T if sp.issparse(X) else X @ X[pick]
        cross = cross.toarray().ravel() if sp.issparse(cross) else np.ravel(cross)
        d_new = x_sq - 2.0 * cross + x_sq[pick]
        np.minimum(min_d, np.maximum(d_new, 0.0), out=min_d)
    return picks, gaps


def weighted_kmeans_pp(
    X: np.ndarray, k: int, weights: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """k-means++ seeding with probability proportional to ``weight x D^2``: diverse, informative rows.

    The first pick is the highest weight; later picks are random. Returns (min(k, m),) indices.
    """
    m = X.shape[0]
    k = min(k, m)
    w = np.asarray(weights, dtype=np.float64)
    picks = [int(np.argmax(w))]
    min_d = sq_distances(X, X[picks]).ravel()
    for _ in range(1, k):
        p = w * min_d
        p[picks] = 0.0
        total = p.sum()
        if total <= 0:  # all remaining rows coincide with picks or weigh 0: fill by weight
            rest = np.setdiff1d(np.argsort(-w, kind="stable"), picks, assume_unique=True)
            picks.extend(rest[: k - len(picks)].tolist())
            break
        pick = int(rng.choice(m, p=p / total))
        picks.append(pick)
        np.minimum(min_d, sq_distances(X, X[[pick]]).ravel(), out=min_d)
    return np.asarray(picks, dtype=np.int64)


def representative_picks(
    X: Any,
    k: int,
    rng: np.random.Generator,
    *,
    centres: Any = None,
    n_iter: int = 10,
) -> np.ndarray:
    """Typical rows of the largest clusters the labeled set does not cover (TypiClust).

    The rows are clustered into ``n_centres + k`` groups (k-means++ seeding and ``n_iter`` Lloyd
    steps); a cluster holding the nearest centroid of a labeled row is covered. Clusters are
    visited uncovered first, then by size (largest first), and each gives its row nearest to its
    centroid; if fewer than ``k`` clusters are non-empty, the next-nearest rows follow round-robin.

    Parameters
    ----------
    X : ndarray or sparse matrix of shape (m, d)
        Candidate rows (a uniform sample of the eligible pool).
    k : int
        Rows to pick (at most m).
    rng : numpy.random.Generator
        Seeds the k-means++ initialisation.
    centres : ndarray or sparse matrix of shape (p, d), optional
        Already-labeled rows.
    n_iter : int, default=10
        Lloyd steps after seeding.

    Returns
    -------
    picks : ndarray of shape (min(k, m),)
        Candidate indices in pick order.

    References
    ----------
    Hacohen, G., Dekel, A. & Weinshall, D. (2022). Active learning on a budget: opposite
    strategies suit high and low budgets. ICML.
    """
    m = X.shape[0]
    k = min(k, m)
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    n_centres = 0 if centres is None else centres.shape[0]
    n_clusters = min(m, n_centres + k)
    centroids, labels = lloyd_kmeans(X, n_clusters, rng, n_iter=n_iter)
    covered = np.zeros(n_clusters, dtype=bool)
    if n_centres:
        covered[sq_distances(centres, centroids).argmin(axis=1)] = True
    sizes = np.bincount(labels, minlength=n_clusters)
    # uncovered before covered, then larger first, then lower cluster index (stable)
    order = np.lexsort((np.arange(n_clusters), -sizes, covered))
    order = order[sizes[order] > 0]
    to_centroid = sq_distances(X, centroids)[np.arange(m), labels]
    members = [np.flatnonzero(labels == c) for c in order]
    members = [rows[np.lexsort((rows, to_centroid[rows]))] for rows in members]
    picks: list[int] = []
    depth = 0
    while len(picks) < k:
        for rows in members:
            if depth < rows.shape[0] and len(picks) < k:
                picks.append(int(rows[depth]))
        depth += 1
    return np.asarray(picks, dtype=np.int64)


def _features(features: Callable[[Any], Any] | None, X: Any) -> np.ndarray:
    return as_float_matrix(X if features is None else features(X))


_NO_PROBA = object()  # stands for a regressor (no predict_proba) when asking a scorer's tasks


class Hybrid(QueryStrategy):
    """Uncertainty x diversity: keep the ``prefilter x batch`` most informative rows, then pick a
    batch that covers them (uncertainty-weighted k-center greedy, or weighted k-means++); while
    fewer than ``cold_start`` labels per class are known, typical rows of uncovered pool clusters.

    Cost: one scoring pass of ``informativeness`` + O(m x (b + n_labeled) x d), m = prefilter x b;
    at a cold start no model call, a pass over the pool and k-means on ``cold_start_sample`` rows.

    Parameters
    ----------
    informativeness : ScoreStrategy or str, optional
        Per-row score of the prefilter (default: margin; for a regressor, the gain of
        :class:`~strategies.variance_reduction.VarianceReduction`, whose greedy batch then
        replaces the k-center step).
    prefilter : int, default=10
        Candidates kept per batch row.
    diversity : {"kcenter", "kmeans++"}, default="kcenter"
        How the batch covers the candidates.
    against_labeled : bool, default=True
        k-center also keeps away from the labeled rows.
    features : callable, optional
        Maps rows to the space distances are measured in.
    cold_start : int, default=COLD_START (10)
        Labels per class: with fewer than ``cold_start x n_classes`` labeled rows the model's
        uncertainty is not trusted and the batch is :func:`representative_picks` on a uniform
        sample of the eligible pool (0 turns it off; see :func:`cold_start_threshold`).
    cold_start_sample : int, default=2000
        Pool rows sampled for the cold-start clustering.
    """

    name = "hybrid"
    cost: ClassVar[str] = "1 scoring pass + O(m (b + n_labeled) d) on m = prefilter x b candidates"

    def __init__(
        self,
        informativeness: ScoreStrategy | None = None,
        prefilter: int = 10,
        diversity: str = "kcenter",
        against_labeled: bool = True,
        features: Callable[[Any], Any] | None = None,
        cold_start: int = COLD_START,
        cold_start_sample: int = 2_000,
        score_wrappers: tuple[Callable[[ScoreStrategy], ScoreStrategy], ...] = (),
    ) -> None:
        self.informativeness = informativeness
        self.prefilter = prefilter
        self.diversity = diversity
        self.against_labeled = against_labeled
        self.features = features
        self.cold_start = cold_start
        self.cold_start_sample = cold_start_sample
        self.score_wrappers = tuple(score_wrappers)

    def scorer(self, model: Any = None) -> ScoreStrategy:
        """The prefilter's score for ``model``: ``informativeness``, else margin, or (for a
        regressor, a model without ``predict_proba``) the variance a label would remove summed
        over the pool (:class:`~strategies.variance_reduction.VarianceReduction`'s first gain);
        then the guards' wrappers (costs, privacy noise), innermost first."""
        if self.informativeness is None:
            if model is not None and not hasattr(model, "predict_proba"):
                base: ScoreStrategy = self.variance_reduction().scorer()
            else:
                base = Margin()
        elif isinstance(self.informativeness, str):
            from strategies.registry import get

            strategy = get(self.informativeness)
            if not isinstance(strategy, ScoreStrategy):
                raise ValueError(f"hybrid: {self.informativeness!r} has no per-row score")
            base = strategy
        else:
            base = self.informativeness
        for wrap in self.score_wrappers:
            base = wrap(base)
        return base

    def variance_reduction(self) -> Any:
        """The regressor's batch: expected variance reduction with this prefilter. Measured on
        the 7 offline regression sets, it beat the variance prefilter with k-center, which
        chases high-leverage, noisy rows (docs/strategies.md)."""
        from strategies.variance_reduction import VarianceReduction

        return VarianceReduction(prefilter=self.prefilter)

    @property
    def tasks(self) -> frozenset[str]:  # type: ignore[override]
        """The tasks its prefilter serves: a classifier's (margin) and a regressor's (variance
        reduction) score, each after the guards' wrappers (class costs leave only
        classification)."""
        return self.scorer(None).tasks | self.scorer(_NO_PROBA).tasks

    def _check(self) -> None:
        if self.diversity not in ("kcenter", "kmeans++"):
            raise ValueError(
                f"hybrid: diversity must be 'kcenter' or 'kmeans++', got {self.diversity!r}"
            )
        if self.prefilter < 1:
            raise ValueError(f"hybrid: prefilter must be >= 1, got {self.prefilter}")
        if self.cold_start < 0 or self.cold_start_sample < 1:
            raise ValueError(
                f"hybrid: cold_start must be >= 0 and cold_start_sample >= 1, got "
                f"{self.cold_start} and {self.cold_start_sample}"
            )

    def in_cold_start(self, ctx: QueryContext) -> bool:
        """Whether the labeled set is too small to trust the model (see :func:`cold_start_threshold`)."""
        return bool(self.cold_start) and ctx.n_labeled < cold_start_threshold(ctx, self.cold_start)

    def _query(self, ctx: QueryContext, batch_size: int) -> Selection:
        self._check()
        if self.in_cold_start(ctx):
            picks = Representative(self.cold_start_sample, self.features)._query(ctx, batch_size)
            return Selection.of(picks.indices, picks.scores, self.name)
        return self.chunk_plan(ctx, batch_size).run(ctx)

    def chunk_plan(self, ctx: QueryContext, batch_size: int) -> ChunkPlan:
        """The prefilter is scored chunk by chunk (``prefilter x batch`` candidates with their
        rows); the diversity step runs on the merged candidates. Not at a cold start: it
        clusters a sample of the whole pool."""
        self._check()
        if self.in_cold_start(ctx):
            raise NotChunkable(
                f"hybrid is in its cold start ({ctx.n_labeled} labels, fewer than "
                f"{self.cold_start} per class): it clusters a sample of the whole pool "
                "(use scale.executor: local)"
            )
        from strategies.variance_reduction import reduction_score_of

        scorer = self.scorer(ctx.model)
        if reduction_score_of(scorer) is not None:
            return self.variance_reduction().chunk_plan(ctx, batch_size, scorer, self.name)
        return ChunkPlan(
            scorer,
            scorer.prepare(ctx),
            self.prefilter * batch_size,
            partial(self._diverse, ctx, batch_size),
            keep_rows=True,
        )

    def _diverse(self, ctx: QueryContext, batch_size: int, best: RunningTopK) -> Selection:
        """The batch that covers the prefiltered candidates ``best``."""
        if best.indices.shape[0] == 0:
            return Selection.of(best.indices, None, self.name)
        X = _features(self.features, best.rows)
        weights = self.weights(best.scores)
        if self.diversity == "kcenter":
            centres = None
            if self.against_labeled and ctx.X_labeled is not None and ctx.X_labeled.shape[0] > 0:
                centres = _features(self.features, ctx.X_labeled)
            picks, _ = kcenter_greedy(X, batch_size, centres=centres, weights=weights)
        else:
            picks = weighted_kmeans_pp(X, batch_size, weights, ctx.rng)
        return Selection.of(best.indices[picks], best.scores[picks], self.name)

    def weights(self, scores: np.ndarray) -> np.ndarray:
        """The diversity step's weight of each candidate: its score shifted so every candidate
        counts (scores may be negative, e.g. noisy scores)."""
        return scores - scores.min() + 1e-12

    def map_scores(self, wrap: Callable[[ScoreStrategy], ScoreStrategy]) -> QueryStrategy:
        # applied to the prefilter chosen at query time (margin, or variance for a regressor)
        return self.clone(score_wrappers=(*self.score_wrappers, wrap))


class Coreset(QueryStrategy):
    """Core-set by k-center greedy: the batch that best covers the pool given the labeled set.

    Exact on pools up to ``max_candidates`` rows; above that, k-center runs on a uniform sample of
    that size. Cost: O(n) for the pass + O(m x (b + n_labeled) x d), m = min(n, max_candidates).
    """

    name = "coreset"
    tasks: ClassVar[frozenset[str]] = frozenset({"classification", "regression"})
    cost: ClassVar[str] = (
        "O(n) pass + O(m (b + n_labeled) d), m = min(n, max_candidates); no model call"
    )

    def __init__(self, max_candidates: int = 5_000, features: Callable[[Any], Any] | None = None):
        self.max_candidates = max_candidates
        self.features = features

    def _query(self, ctx: QueryContext, batch_size: int) -> Selection:
        sample = RandomSampling().top_candidates(
            ctx, max(self.max_candidates, batch_size), keep_rows=True
        )
        if sample.indices.shape[0] == 0:
            return Selection.of(sample.indices, None, self.name)
        X = _features(self.features, sample.rows)
        centres = None
        if ctx.X_labeled is not None and ctx.X_labeled.shape[0] > 0:
            centres = _features(self.features, ctx.X_labeled)
        picks, gaps = kcenter_greedy(X, batch_size, centres=centres)
        return Selection.of(sample.indices[picks], gaps, self.name)


class Representative(QueryStrategy):
    """Typical rows of the largest pool clusters the labeled set does not cover (TypiClust): no
    model call, so it suits a cold start, when the model's uncertainty is not yet informative.

    Cost: O(n) for the pass + k-means on a uniform sample of ``sample_size`` rows into
    n_labeled + b clusters.
    """

    name = "representative"
    tasks: ClassVar[frozenset[str]] = frozenset({"classification", "regression"})
    cost: ClassVar[str] = "O(n) pass + k-means on a sample of m rows into n_labeled + b clusters"

    def __init__(self, sample_size: int = 2_000, features: Callable[[Any], Any] | None = None):
        self.sample_size = sample_size
        self.features = features

    def _query(self, ctx: QueryContext, batch_size: int) -> Selection:
        if self.sample_size < 1:
            raise ValueError(f"representative: sample_size must be >= 1, got {self.sample_size}")
        sample = RandomSampling().top_candidates(
            ctx, max(self.sample_size, batch_size), keep_rows=True
        )
        if sample.indices.shape[0] == 0:
            return Selection.of(sample.indices, None, self.name)
        centres = None
        if ctx.X_labeled is not None and ctx.n_labeled > 0:
            centres = _features(self.features, ctx.X_labeled)
        picks = representative_picks(
            _features(self.features, sample.rows), batch_size, ctx.rng, centres=centres
        )
        return Selection.of(sample.indices[picks], None, self.name)
