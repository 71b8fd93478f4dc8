"""Token tagging in the label-efficiency benchmark: the strategies it compares on sentences (the
tagger itself is :mod:`tasks.model.tagger`)."""

from __future__ import annotations

from typing import Any

AGGREGATES = ("max", "mean", "sum")
# benchmark name -> strategies.get keyword arguments
TOKEN_STRATEGIES: dict[str, tuple[str, dict[str, str]]] = {
    "random": ("random", {}),
    **{
        f"sequence_margin_{how}": ("sequence_uncertainty", {"measure": "margin", "aggregate": how})
        for how in AGGREGATES
    },
}


def token_strategy(name: str) -> Any:
    import strategies

    base, kwargs = TOKEN_STRATEGIES[name]
    return strategies.get(base, **kwargs)
