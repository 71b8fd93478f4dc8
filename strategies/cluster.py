"""Cluster-margin: a batch that near-duplicates cannot fill.

Uncertainty prefilters collapse on redundant pools: when one group of near-duplicate rows is the
most uncertain, its members take every candidate slot and the batch spends all its labels on one
group (the k-center step can only spread over the candidates it is given). Here the pool is
clustered first (k-means on a uniform sample) and the candidate set holds at most ``per_cluster``
rows of any cluster: the most informative ones, round-robin over clusters by informativeness.
The uncertainty-weighted k-center step of :class:`~strategies.diversity.Hybrid` then picks the
batch from candidates that span the pool's informative regions.

References
----------
Citovsky, G. et al. (2021). Batch active learning at scale. NeurIPS (Cluster-Margin: margin
candidates, clustered, sampled round-robin over clusters).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from strategies._distance import sq_distances
from strategies._pool import take_rows
from strategies.base import ChunkPlan, NotChunkable, QueryContext, ScoreStrategy, Selection
from strategies.density import lloyd_kmeans
from strategies.diversity import COLD_START, Hybrid, Representative, _features
from strategies.random import RandomSampling
from strategies.selection import capped_order

#: the weight of the least informative candidate relative to the most informative one
WEIGHT_FLOOR = 0.1


class ClusterMargin(Hybrid):
    """Uncertainty x diversity that near-duplicates cannot fill: the pool is clustered (k-means on
    a sample), the ``prefilter x batch`` candidates hold at most ``per_cluster`` rows of any
    cluster, and an uncertainty-weighted k-center picks the batch from them; while fewer than
    ``cold_start`` labels per class are known, typical rows of uncovered clusters.

    Cost: one pass to sample the pool, k-means on ``cluster_sample`` rows into ``n_clusters``,
    one scoring pass keeping ``max_candidates`` rows, their centroid distances, and the k-center
    step of hybrid.

    Parameters
    ----------
    informativeness, prefilter, diversity, against_labeled, features, cold_start,
    cold_start_sample :
        As for :class:`~strategies.diversity.Hybrid`.
    n_clusters : int, optional
        Pool clusters (default: 2 x the batch size, at most the sample's rows).
    per_cluster : int, optional
        Most candidates a cluster may hold (default: ``ceil(prefilter x batch / n_clusters)``,
        so that filling the candidates takes most clusters).
    cluster_sample : int, default=2000
        Pool rows sampled for the clustering.
    max_candidates : int, default=25000
        Rows kept by score alone before the cap applies (on a larger pool, a group of
        near-duplicates bigger than this could still fill the candidates).
    """

    name = "cluster_margin"
    cost: ClassVar[str] = (
        "k-means on a sample + 1 scoring pass with centroid distances + O(m (b + n_labeled) d)"
    )

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
        n_clusters: int | None = None,
        per_cluster: int | None = None,
        cluster_sample: int = 2_000,
        max_candidates: int = 25_000,
    ) -> None:
        super().__init__(
            informativeness,
            prefilter,
            diversity,
            against_labeled,
            features,
            cold_start,
            cold_start_sample,
            score_wrappers,
        )
        self.n_clusters = n_clusters
        self.per_cluster = per_cluster
        self.cluster_sample = cluster_sample
        self.max_candidates = max_candidates

    def _check(self) -> None:
        super()._check()
        if (self.n_clusters is not None and self.n_clusters < 1) or (
            self.per_cluster is not None and self.per_cluster < 1
        ):
            raise ValueError(
                f"cluster_margin: n_clusters and per_cluster must be >= 1, got "
                f"{self.n_clusters} and {self.per_cluster}"
            )
        if self.cluster_sample < 1:
            raise ValueError(
                f"cluster_margin: cluster_sample must be >= 1, got {self.cluster_sample}"
            )

    def centroids(self, ctx: QueryContext, batch_size: int) -> np.ndarray | None:
        """k-means centroids of a uniform sample of the eligible pool, in the distance space
        (None when no row is eligible)."""
        sample = RandomSampling().top_candidates(
            ctx, max(self.cluster_sample, batch_size), keep_rows=True
        )
        if sample.indices.shape[0] == 0:
            return None
        X = _features(self.features, sample.rows)
        k = min(self.n_clusters or 2 * batch_size, X.shape[0])
        centres, _ = lloyd_kmeans(X, k, ctx.rng, n_iter=10)
        return centres

    def _query(self, ctx: QueryContext, batch_size: int) -> Selection:
        self._check()
        if self.in_cold_start(ctx):
            picks = Representative(self.cold_start_sample, self.features)._query(ctx, batch_size)
            return Selection.of(picks.indices, picks.scores, self.name)
        centres = self.centroids(ctx, batch_size)
        if centres is None:
            return Selection.of(np.empty(0, dtype=np.int64), None, self.name)
        n_candidates = self.prefilter * batch_size
        per_cluster = self.per_cluster or math.ceil(n_candidates / centres.shape[0])
        scorer = self.scorer(ctx.model)
        # the pool's most informative rows by score alone (one cheap pass), then the cap among
        # them: centroid distances for max_candidates rows, not for the whole pool
        best = scorer.top_candidates(
            ctx, max(self.max_candidates, n_candidates), keep_rows=True, state=scorer.prepare(ctx)
        )
        if best.indices.shape[0]:
            clusters = sq_distances(_features(self.features, best.rows), centres).argmin(axis=1)
            keep = capped_order(best.scores, clusters, best.indices, per_cluster)[:n_candidates]
            best.indices, best.scores = best.indices[keep], best.scores[keep]
            best.rows = take_rows(best.rows, keep)
        return self._diverse(ctx, batch_size, best)

    def weights(self, scores: np.ndarray) -> np.ndarray:
        """Scores rescaled to [WEIGHT_FLOOR, 1]: the least informative candidate still weighs
        a tenth of the best, so a distinct row beats a near-duplicate of a pick (whose distance
        is ~0) however the scores spread."""
        span = float(scores.max() - scores.min())
        if span <= 0:
            return np.ones_like(scores)
        return WEIGHT_FLOOR + (1.0 - WEIGHT_FLOOR) * (scores - scores.min()) / span

    def chunk_plan(self, ctx: QueryContext, batch_size: int) -> ChunkPlan:
        raise NotChunkable(
            "cluster_margin clusters a sample of the whole pool before scoring it "
            "(use scale.executor: local, or hybrid for scale-out)"
        )
