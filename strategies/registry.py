"""Strategies by name: ``get(name, **params)`` builds one (with guards), ``available()`` lists them."""

from __future__ import annotations

import inspect
from typing import Any

from strategies.bandit import AutoStrategy
from strategies.base import QueryStrategy, ScoreStrategy
from strategies.cluster import ClusterMargin
from strategies.committee import BALD, QBCKL, QBCVoteEntropy
from strategies.density import DensityWeighted
from strategies.diversity import Coreset, Hybrid, Representative
from strategies.error_reduction import ExpectedErrorReduction
from strategies.greedy import GreedySampling
from strategies.guards import Guards
from strategies.random import RandomSampling
from strategies.regression import DensityVariance, Variance
from strategies.sequence import SequenceUncertainty
from strategies.uncertainty import Entropy, LeastConfidence, Margin
from strategies.variance_reduction import VarianceReduction
from strategies.weak import WeakDisagreement

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
        ClusterMargin,
        Coreset,
        Representative,
        Variance,
        DensityVariance,
        VarianceReduction,
        GreedySampling,
        SequenceUncertainty,
        AutoStrategy,
        WeakDisagreement,
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


def parameters(name: str) -> set[str]:
    """The parameters strategy ``name`` takes (its constructor's, by name)."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown strategy {name!r}; available: {', '.join(available())}")
    return set(inspect.signature(_REGISTRY[name].__init__).parameters) - {"self"}


def get(name: str, *, guards: Guards | None = None, **params: Any) -> QueryStrategy:
    """Build strategy ``name`` with ``params``, wrapped in ``guards`` (or in the guards named by
    keywords among ``params``: ``random_fraction=0.1``, ``class_costs={...}``, ...; see
    :class:`~strategies.guards.Guards`, which also gives the order they apply in)."""
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown strategy {name!r}; available: {', '.join(available())}"
        ) from None
    named = {key: params.pop(key) for key in Guards.names() if key in params}
    if guards is not None and named:
        raise ValueError(f"pass guards either as guards= or as keywords, not both: {sorted(named)}")
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = set(params) - accepted
    if unknown:
        raise ValueError(
            f"strategy {name!r} has no parameter(s) {sorted(unknown)}; it takes {sorted(accepted) or 'none'}"
        )
    return (guards or Guards(**named)).wrap(cls(**params))


__all__ = ["Guards", "ScoreStrategy", "available", "describe", "get", "parameters"]
