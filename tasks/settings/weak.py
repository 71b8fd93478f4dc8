"""Settings of weak supervision: labeling functions as an annotator beside the human ones."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tasks.settings.base import Section


class WeakSettings(Section):
    """Labeling functions (``tasks.weak``): where they live, how their votes are combined, which
    are kept, and how much their labels weigh in training. Off while ``module`` is null."""

    module: str | None = Field(
        None,
        description="the labeling functions: a module (package.module) or a .py file relative "
        "to the project (null: no weak supervision)",
    )
    functions: list[str] = Field(
        default_factory=list, description="names of the functions to use (empty: all of them)"
    )
    label_model: Literal["majority", "dawid_skene", "snorkel"] = Field(
        "dawid_skene",
        description="how votes become one label: vote shares, Dawid-Skene EM (abstain an answer "
        "of its own) or Snorkel's LabelModel",
    )
    min_coverage: float = Field(
        0.0, ge=0.0, le=1.0, description="drop a function that votes on fewer pool items"
    )
    min_accuracy: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="drop a function less accurate on the human labels (once min_evaluated)",
    )
    min_evaluated: int = Field(
        10, ge=1, description="human labels a function must vote on before min_accuracy applies"
    )
    min_probability: float = Field(
        0.5, ge=0.0, le=1.0, description="weak labels less probable than this are not trained on"
    )
    weight: float = Field(
        0.5,
        ge=0.0,
        description="training weight of a weak label (times its probability; a human label: 1; "
        "0: weak labels only steer the strategy)",
    )
