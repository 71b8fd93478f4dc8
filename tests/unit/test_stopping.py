"""Each stopping rule fires on a constructed case, and stays quiet just short of it."""

from __future__ import annotations

import pytest

from tasks.loop import stopping
from tasks.loop.stopping import RoundRecord
from tasks.settings import LoopSettings

pytestmark = pytest.mark.unit


def _records(scores, n0=20, batch=10, predictions=None):
    predictions = predictions or [None] * len(scores)
    return [
        RoundRecord(round=i + 1, n_labels=n0 + batch * (i + 1), score=s, stop_predictions=p)
        for i, (s, p) in enumerate(zip(scores, predictions, strict=True))
    ]


def _decide(records, higher=True, **loop):
    settings = LoopSettings(**{"max_rounds": 100, **loop})
    return stopping.should_stop(records, settings, metric="macro_f1", higher=higher)


def test_no_rounds_never_stops():
    assert not _decide([], max_rounds=1).stop


def test_max_rounds_fires_at_the_limit_only():
    assert not _decide(_records([0.1, 0.2]), max_rounds=3).stop
    decision = _decide(_records([0.1, 0.2, 0.3]), max_rounds=3)
    assert decision.stop and decision.rule == "max_rounds" and "3 round(s)" in decision.reason


def test_label_budget_fires_once_the_labels_reach_it():
    assert not _decide(_records([0.1, 0.2]), label_budget=41).stop
    decision = _decide(_records([0.1, 0.2]), label_budget=40)
    assert decision.stop and decision.rule == "label_budget"


def test_target_fires_when_the_holdout_metric_reaches_it():
    assert not _decide(_records([0.5, 0.79]), target_value=0.8).stop
    decision = _decide(_records([0.5, 0.8]), target_value=0.8)
    assert decision.stop and decision.rule == "target"


def test_target_on_a_loss_fires_when_it_falls_below():
    records = _records([0.9, 0.4])
    assert not stopping.should_stop(
        records[:1], LoopSettings(target_value=0.5), metric="log_loss", higher=False
    ).stop
    decision = stopping.should_stop(
        records, LoopSettings(target_value=0.5), metric="log_loss", higher=False
    )
    assert decision.stop and decision.rule == "target"


def test_plateau_fires_after_n_rounds_improving_less_than_delta():
    flat = [0.50, 0.70, 0.702, 0.703]
    decision = _decide(_records(flat), plateau_rounds=2, plateau_delta=0.01)
    assert decision.stop and decision.rule == "plateau"
    rising = [0.50, 0.70, 0.702, 0.72]
    assert not _decide(_records(rising), plateau_rounds=2, plateau_delta=0.01).stop
    too_few = [0.70, 0.701]
    assert not _decide(_records(too_few), plateau_rounds=2, plateau_delta=0.01).stop


def test_plateau_counts_a_falling_loss_as_improvement():
    falling = [0.9, 0.7, 0.5]
    assert not stopping.plateau(falling, 2, 0.01, higher=False).stop
    assert stopping.plateau([0.5, 0.5, 0.499], 2, 0.01, higher=False).stop


def test_stabilising_predictions_fire_when_successive_models_agree():
    a = ("0", "1", "2", "1", "0", "2", "1", "0")
    b = ("0", "1", "2", "1", "0", "2", "1", "1")  # one disagreement: kappa ~0.81
    decision = _decide(_records([0.5, 0.6, 0.7], predictions=[b, a, a]), kappa=0.99)
    assert decision.stop and decision.rule == "stabilising"
    assert not _decide(_records([0.5, 0.6], predictions=[b, a]), kappa=0.99).stop
    assert _decide(_records([0.5, 0.6], predictions=[b, a]), kappa=0.8).stop


def test_stabilising_needs_stable_rounds_agreements_in_a_row():
    a = ("0", "1", "2", "1")
    b = ("0", "1", "2", "2")
    records = _records([0.5, 0.6, 0.7], predictions=[b, a, a])
    assert not _decide(records, kappa=0.99, stable_rounds=2).stop
    records = _records([0.5, 0.6, 0.7, 0.8], predictions=[b, a, a, a])
    assert _decide(records, kappa=0.99, stable_rounds=2).stop


def test_agreement_is_cohens_kappa():
    assert stopping.agreement(["a", "b", "a", "b"], ["a", "b", "b", "a"]) == pytest.approx(0.0)
    assert stopping.agreement(["a", "a"], ["a", "a"]) == 1.0
    with pytest.raises(ValueError):
        stopping.agreement(["a"], ["a", "b"])
