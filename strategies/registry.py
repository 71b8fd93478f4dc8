"""Strategies by name: ``get(name, **params)`` builds one (with guards), ``available()`` lists them."""

from __future__ import annotations

import inspect
from typing import Any

from strategies.base import QueryStrategy, ScoreStrategy
from strategies.committee import BALD, QBCKL, QBCVoteEntropy
from strategies.density import DensityWeighted
from strategies.diversity import Coreset, Hybrid, Representative
from strategies.error_reduction import ExpectedErrorReduction
from strategies.guards import (
    ClassBalance,
    CostWeighted,
    ExponentialMechanism,
    OutlierFilter,
    RandomMix,
)
from strategies.random import RandomSampling
from strategies.regression import DensityVariance, Variance
from strategies.sequence import SequenceUncertainty
from strategies.uncertainty import Entropy, LeastConfidence, Margin

_REGISTRY: dict[str, type[QueryStrategy]] = {
    cls.name: cls
    for cls in (
        RandomSampling,
        LeastConfidence,
        Margin,
        Entropy,
        QBCVoteEntropy,
        QBCKL,
        BALD,
        DensityWeighted,
        ExpectedErrorReduction,
        Hybrid,
        Coreset,
        Representative,
        Variance,
        DensityVariance,
        SequenceUncertainty,
    )
}


def available() -> list[str]:
    """Names accepted by :func:`get`, in a stable order."""
    return list(_REGISTRY)


def _summary(cls: type) -> str:
    """The docstring's first paragraph, without its cost note (that is reported separately)."""
    paragraph = (inspect.getdoc(cls) or "").split("\n\n")[0].replace("\n", " ")
    return paragraph.split(" Cost:")[0].replace("``", "")


def describe() -> dict[str, dict[str, str]]:
    """Per strategy: its one-line summary and its cost per query."""
    return {
        name: {
            "summary": _summary(cls),
            "cost": cls.cost,
        }
        for name, cls in _REGISTRY.items()
    }


def get(
    name: str,
    *,
    random_fraction: float = 0.0,
    rare_class_quota: float = 0.0,
    rare_class_threshold: float | None = None,
    class_costs: dict[Any, float] | None = None,
    outlier_contamination: float | None = None,
    privacy_epsilon: float | None = None,
    privacy_sensitivity: float = 1.0,
    **params: Any,
) -> QueryStrategy:
    """Build strategy ``name`` with ``params``, wrapped in the guards the keywords ask for.

    Guards apply in this order: per-class costs and privacy noise on the per-row score, then the
    outlier filter, the rare-class quota, and the random fraction (outermost, so random picks are
    drawn from every non-excluded row).
    """
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown strategy {name!r}; available: {', '.join(available())}"
        ) from None
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = set(params) - accepted
    if unknown:
        raise ValueError(
            f"strategy {name!r} has no parameter(s) {sorted(unknown)}; it takes {sorted(accepted) or 'none'}"
        )
    strategy: QueryStrategy = cls(**params)
    if class_costs:
        strategy = strategy.map_scores(lambda s: CostWeighted(s, class_costs))
    if privacy_epsilon is not None:
        strategy = strategy.map_scores(
            lambda s: ExponentialMechanism(s, privacy_epsilon, privacy_sensitivity)
        )
    if outlier_contamination:
        strategy = OutlierFilter(strategy, outlier_contamination)
    if rare_class_quota:
        strategy = ClassBalance(strategy, rare_class_quota, rare_class_threshold)
    if random_fraction:
        strategy = RandomMix(strategy, random_fraction)
    return strategy


__all__ = ["ScoreStrategy", "available", "describe", "get"]
