"""Guards that wrap any strategy: random mixing, rare-class quotas, per-class costs, an outlier
filter and privacy noise. Built by :func:`strategies.get` from its keyword arguments.

References
----------
Dasgupta, S. & Hsu, D. (2008). Hierarchical sampling for active learning. ICML (sampling bias).
Settles, B., Craven, M. & Friedland, L. (2008). Active learning with real annotation costs.
NIPS Workshop on Cost-Sensitive Learning.
Liu, F. T., Ting, K. M. & Zhou, Z.-H. (2008). Isolation forest. ICDM.
McSherry, F. & Talwar, K. (2007). Mechanism design via differential privacy. FOCS.
Durfee, D. & Rogers, R. (2019). Practical differentially private top-k selection with
pay-what-you-get composition. NeurIPS (Gumbel noise = exponential mechanism, peeling).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from strategies.base import QueryContext, QueryStrategy, ScoreStrategy, Selection, sklearn_seed
from strategies.selection import RunningTopK
from strategies.uncertainty import margin


def _child_rng(ctx: QueryContext) -> np.random.Generator:
    return np.random.default_rng(ctx.rng.integers(2**63))


class _NamedAfterBase:
    """A wrapper reports the wrapped strategy's name and cost."""

    base: QueryStrategy

    @property
    def name(self) -> str:
        return self.base.name

    @property
    def cost(self) -> str:
        return self.base.cost

    @property
    def tasks(self) -> frozenset[str]:
        return self.base.tasks


class _Wrapper(_NamedAfterBase, QueryStrategy):
    def __init__(self, base: QueryStrategy) -> None:
        self.base = base

    def observe(self, indices: Any, labels: Any) -> None:
        self.base.observe(indices, labels)

    def get_state(self) -> dict[str, Any] | None:
        return self.base.get_state()

    def set_state(self, state: dict[str, Any]) -> None:
        self.base.set_state(state)


class RandomMix(_Wrapper):
    """A ``fraction`` of each batch drawn uniformly from the rows the base strategy did not pick,
    recorded with source ``"random"``; keeps the labeled set's distribution honest."""

    def __init__(self, base: QueryStrategy, fraction: float) -> None:
        super().__init__(base)
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f"random_fraction must be in [0, 1), got {fraction}")
        self.fraction = fraction

    def _query(self, ctx: QueryContext, batch_size: int) -> Selection:
        n_random = round(self.fraction * batch_size)
        if n_random == 0:
            return self.base._query(ctx, batch_size)
        rng = _child_rng(ctx)
        keys = RunningTopK(batch_size)
        seen: set[int] = set()

        def observe(offset: int, chunk: Any, eligible: np.ndarray) -> None:
            if offset in seen:  # a base strategy that reads the pool twice
                return
            seen.add(offset)
            keys.push(rng.random(chunk.shape[0]), offset, None, eligible)

        ctx.observers.append(observe)
        chosen = self.base._query(ctx, batch_size - n_random)
        ctx.observers.remove(observe)
        extra = keys.indices[~np.isin(keys.indices, chosen.indices)][: batch_size - len(chosen)]
        return chosen.concat(Selection.of(extra, None, "random"))


class ClassBalance(_Wrapper):
    """Reserves ``quota`` of each batch for rows predicted to be in rare classes (predicted pool
    share below ``threshold``, default 1/(2K)), split evenly; ranked by the base strategy's score
    (margin for strategies without one). Picks replace the tail of the base batch."""

    @property
    def tasks(self) -> frozenset[str]:  # rare classes are classes: a classifier's guard
        return self.base.tasks & {"classification"}

    def __init__(self, base: QueryStrategy, quota: float, threshold: float | None = None) -> None:
        super().__init__(base)
        if not 0.0 <= quota < 1.0:
            raise ValueError(f"rare_class_quota must be in [0, 1), got {quota}")
        self.quota = quota
        self.threshold = threshold

    def _query(self, ctx: QueryContext, batch_size: int) -> Selection:
        n_quota = round(self.quota * batch_size)
        if n_quota == 0:
            return self.base._query(ctx, batch_size)
        per_class: list[RunningTopK] = []
        counts = np.zeros(0, dtype=np.int64)

        def observe(offset: int, chunk: Any, eligible: np.ndarray) -> None:
            nonlocal counts
            proba = ctx.predict_proba(chunk)
            n_classes = proba.shape[1]
            if not per_class:
                per_class.extend(RunningTopK(n_quota) for _ in range(n_classes))
                counts = np.zeros(n_classes, dtype=np.int64)
            predicted = proba.argmax(axis=1)
            counts += np.bincount(predicted, minlength=n_classes)
            scores = ctx.last_scores if ctx.last_scores is not None else margin(proba)
            for c in range(n_classes):
                rows = eligible[predicted[eligible] == c]
                if rows.shape[0]:
                    per_class[c].push(scores, offset, None, rows)

        ctx.observers.append(observe)
        chosen = self.base._query(ctx, batch_size)
        ctx.observers.remove(observe)
        if counts.sum() == 0:
            return chosen
        shares = counts / counts.sum()
        threshold = self.threshold if self.threshold is not None else 0.5 / shares.shape[0]
        rare = [c for c in np.argsort(shares, kind="stable") if 0 < shares[c] < threshold]
        if not rare:
            return chosen
        quotas = np.full(len(rare), n_quota // len(rare))
        quotas[: n_quota % len(rare)] += 1
        extra_idx, extra_scores = [], []
        taken = set(chosen.indices.tolist())
        for c, q in zip(rare, quotas, strict=True):
            top = per_class[c]
            already = int(np.isin(top.indices, chosen.indices).sum())
            for idx, score in zip(top.indices, top.scores, strict=True):
                if already >= q:
                    break
                if idx not in taken:
                    extra_idx.append(idx)
                    extra_scores.append(score)
                    taken.add(idx)
                    already += 1
        if not extra_idx:
            return chosen
        keep = batch_size - len(extra_idx)
        head = Selection(chosen.indices[:keep], chosen.scores[:keep], chosen.sources[:keep])
        return head.concat(Selection.of(np.array(extra_idx), np.array(extra_scores), "rare_class"))


class OutlierFilter(_Wrapper):
    """Rows an IsolationForest (fit on a pool sample) calls outliers are never selected.

    Cost: a forest fit on ``sample_size`` rows + one forest predict pass over the pool."""

    def __init__(self, base: QueryStrategy, contamination: float = 0.05, sample_size: int = 10_000):
        super().__init__(base)
        if not 0.0 < contamination < 0.5:
            raise ValueError(f"outlier_contamination must be in (0, 0.5), got {contamination}")
        self.contamination = contamination
        self.sample_size = sample_size

    def _query(self, ctx: QueryContext, batch_size: int) -> Selection:
        from sklearn.ensemble import IsolationForest

        sample = ctx.pool.sample(self.sample_size, ctx.rng)
        forest = IsolationForest(
            contamination=self.contamination, random_state=sklearn_seed(ctx.rng)
        ).fit(sample)

        def inliers(chunk: Any) -> np.ndarray:
            return forest.predict(chunk) == 1

        ctx.row_filters.append(inliers)
        try:
            return self.base._query(ctx, batch_size)
        finally:
            ctx.row_filters.remove(inliers)


class _ScoreWrapper(_NamedAfterBase, ScoreStrategy):
    def __init__(self, base: ScoreStrategy) -> None:
        self.base = base

    def prepare(self, ctx: QueryContext) -> Any:
        return self.base.prepare(ctx)

    @property  # type: ignore[override]
    def not_distributable(self) -> str | None:
        return self.base.not_distributable

    @property  # type: ignore[override]
    def row_keys(self) -> bool:
        return self.base.row_keys


class CostWeighted(_ScoreWrapper):
    """Score divided by the expected labeling cost ``sum_k p(k|x) cost_k`` (informativeness per
    unit of cost). ``class_costs`` maps class labels (as strings or values) to costs; default 1."""

    @property
    def tasks(self) -> frozenset[str]:  # costs per class weigh a classifier's score
        return self.base.tasks & {"classification"}

    def __init__(self, base: ScoreStrategy, class_costs: dict[Any, float]) -> None:
        super().__init__(base)
        if any(cost <= 0 for cost in class_costs.values()):
            raise ValueError(f"class_costs must be positive, got {class_costs}")
        self.class_costs = class_costs

    def _cost_vector(self, classes: np.ndarray) -> np.ndarray:
        by_text = {str(k): float(v) for k, v in self.class_costs.items()}
        unknown = set(by_text) - {str(c) for c in classes}
        if unknown:
            raise ValueError(
                f"class_costs names classes the model does not know: {sorted(unknown)}"
            )
        return np.array([by_text.get(str(c), 1.0) for c in classes])

    def chunk_scores(self, ctx: QueryContext, state: Any, X_chunk: Any) -> np.ndarray:
        costs = self._cost_vector(np.asarray(ctx.model.classes_))
        return self.base.chunk_scores(ctx, state, X_chunk) / (ctx.predict_proba(X_chunk) @ costs)


class ExponentialMechanism(_ScoreWrapper):
    """Differentially private selection: Gumbel noise of scale ``2 sensitivity / epsilon`` on the
    scores, then top-k, which samples rows with probability proportional to
    ``exp(epsilon x score / (2 sensitivity))`` without replacement (one-shot peeling)."""

    def __init__(self, base: ScoreStrategy, epsilon: float, sensitivity: float = 1.0) -> None:
        super().__init__(base)
        if epsilon <= 0 or sensitivity <= 0:
            raise ValueError(
                f"privacy_epsilon and sensitivity must be > 0, got {epsilon}, {sensitivity}"
            )
        self.epsilon = epsilon
        self.sensitivity = sensitivity

    not_distributable = (  # type: ignore[assignment]
        "privacy noise draws random numbers per chunk and cannot be distributed exactly"
    )

    def chunk_scores(self, ctx: QueryContext, state: Any, X_chunk: Any) -> np.ndarray:
        scores = self.base.chunk_scores(ctx, state, X_chunk)
        scale = self.epsilon / (2.0 * self.sensitivity)
        return scores * scale + ctx.rng.gumbel(size=scores.shape[0])


@dataclass(frozen=True)
class Guards:
    """The guards a strategy is wrapped in, by name (the ``strategy:`` section of
    ``params.yaml`` and :func:`strategies.get` take these keywords); defaults: none."""

    random_fraction: float = 0.0
    rare_class_quota: float = 0.0
    rare_class_threshold: float | None = None
    class_costs: dict[Any, float] | None = None
    outlier_contamination: float | None = None
    privacy_epsilon: float | None = None
    privacy_sensitivity: float = 1.0

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def wrap(self, strategy: QueryStrategy) -> QueryStrategy:
        """``strategy`` in these guards: per-class costs and privacy noise on the per-row score,
        then the outlier filter, the rare-class quota, and the random fraction (outermost, so
        random picks are drawn from every non-excluded row)."""
        if self.class_costs:
            costs = self.class_costs
            strategy = strategy.map_scores(lambda s: CostWeighted(s, costs))
        if self.privacy_epsilon is not None:
            epsilon, sensitivity = self.privacy_epsilon, self.privacy_sensitivity
            strategy = strategy.map_scores(lambda s: ExponentialMechanism(s, epsilon, sensitivity))
        if self.outlier_contamination:
            strategy = OutlierFilter(strategy, self.outlier_contamination)
        if self.rare_class_quota:
            strategy = ClassBalance(strategy, self.rare_class_quota, self.rare_class_threshold)
        if self.random_fraction:
            strategy = RandomMix(strategy, self.random_fraction)
        return strategy
