"""Stopping rules of the loop: pure functions of the rounds so far, each with a reason.

Rules: max rounds, label budget, target metric on the holdout, plateau (the best score improved
by less than a delta over the last N rounds) and stabilising predictions (successive models agree
on an unlabeled stop set with Cohen's kappa above a threshold; Bloodgood & Vijay-Shanker 2009).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from sklearn.metrics import cohen_kappa_score

from tasks.settings.loop import LoopSettings


@dataclass(frozen=True)
class RoundRecord:
    """What a finished round contributes to the stopping rules."""

    round: int
    n_labels: int
    score: float | None = None
    stop_predictions: tuple[str, ...] | None = None
    n_annotations: int | None = None  # what the label budget counts (None: n_labels)


@dataclass(frozen=True)
class StopDecision:
    """Whether to stop, which rule fired (None: none) and why, in one sentence."""

    stop: bool
    rule: str | None
    reason: str


CONTINUE = StopDecision(False, None, "no stopping rule fired")


def max_rounds(records: Sequence[RoundRecord], limit: int) -> StopDecision:
    done = len(records)
    if done >= limit:
        return StopDecision(True, "max_rounds", f"{done} round(s) done, max_rounds={limit}")
    return CONTINUE


def label_budget(n_labels: int, budget: int | None) -> StopDecision:
    if budget is not None and n_labels >= budget:
        return StopDecision(True, "label_budget", f"{n_labels} labels used of a budget of {budget}")
    return CONTINUE


def target(score: float | None, value: float | None, metric: str, higher: bool) -> StopDecision:
    if value is None or score is None:
        return CONTINUE
    if (score >= value) if higher else (score <= value):
        sign = ">=" if higher else "<="
        return StopDecision(True, "target", f"holdout {metric}={score:.4f} {sign} {value}")
    return CONTINUE


def plateau(
    scores: Sequence[float], rounds: int | None, delta: float, higher: bool
) -> StopDecision:
    """Stop when the best score of the last ``rounds`` rounds beats the best before them by less
    than ``delta`` (needs ``rounds + 1`` scores)."""
    if rounds is None or len(scores) <= rounds:
        return CONTINUE
    sign = 1.0 if higher else -1.0
    before = max(sign * s for s in scores[:-rounds])
    recent = max(sign * s for s in scores[-rounds:])
    gain = recent - before
    if gain < delta:
        return StopDecision(
            True,
            "plateau",
            f"best score improved by {gain:.4f} < plateau_delta={delta} over {rounds} round(s)",
        )
    return CONTINUE


def agreement(previous: Sequence[Any], current: Sequence[Any]) -> float:
    """Cohen's kappa between two models' predictions on the stop set (1.0 if both constant and
    equal, where kappa is undefined)."""
    if len(previous) != len(current):
        raise ValueError(
            f"stop-set predictions differ in length: {len(previous)} vs {len(current)}"
        )
    if list(previous) == list(current):
        return 1.0
    return float(cohen_kappa_score(list(previous), list(current)))


def stabilising(
    predictions: Sequence[Sequence[Any] | None], kappa: float | None, rounds: int = 1
) -> StopDecision:
    """Stop when the last ``rounds`` pairs of successive models each agree with kappa >= ``kappa``."""
    usable = [p for p in predictions if p is not None and len(p)]
    if kappa is None or len(usable) < rounds + 1:
        return CONTINUE
    recent = usable[-(rounds + 1) :]
    kappas = [agreement(a, b) for a, b in pairwise(recent)]
    if min(kappas) >= kappa:
        shown = ", ".join(f"{k:.4f}" for k in kappas)
        return StopDecision(
            True,
            "stabilising",
            f"successive models agree on the stop set: kappa {shown} >= {kappa}",
        )
    return CONTINUE


def should_stop(
    records: Sequence[RoundRecord], loop: LoopSettings, *, metric: str, higher: bool = True
) -> StopDecision:
    """The first rule that fires, in the order target, budget, plateau, stabilising, max rounds."""
    if not records:
        return CONTINUE
    last = records[-1]
    scores = [r.score for r in records if r.score is not None]
    for decision in (
        target(last.score, loop.target_value, metric, higher),
        label_budget(
            last.n_labels if last.n_annotations is None else last.n_annotations, loop.label_budget
        ),
        plateau(scores, loop.plateau_rounds, loop.plateau_delta, higher),
        stabilising([r.stop_predictions for r in records], loop.kappa, loop.stable_rounds),
        max_rounds(records, loop.max_rounds),
    ):
        if decision.stop:
            return decision
    return CONTINUE
