"""auto (a bandit over strategies): the probe's error and gain hand-computed, the EXP3 update,
the probe protocol over rounds (reserved, then predicted again, then labeled in the next batch),
and a JSON state that a rebuilt strategy continues from exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

import strategies
from strategies.bandit import AutoStrategy, _pool_rows, probe_error, relative_gain
from strategies.base import QueryContext

pytestmark = pytest.mark.unit


def test_probe_error_is_the_brier_score_or_the_squared_error_hand_computed():
    prediction = {"classes": ["a", "b"], "proba": [[0.8, 0.2], [0.4, 0.6]]}
    # (0.2^2 + 0.2^2) for a label "a" = 0.08; (0.4^2 + 0.4^2) for "b" = 0.32
    assert probe_error(prediction, ["a", "b"]) == pytest.approx(0.2)
    # a label the model never saw: all its mass is wrong (0.64 + 0.04) + 1
    assert probe_error({"classes": ["a", "b"], "proba": [[0.8, 0.2]]}, ["c"]) == pytest.approx(1.68)
    assert probe_error({"values": [1.0, 3.0]}, [2.0, 2.0]) == pytest.approx(1.0)


def test_relative_gain_is_the_errors_relative_drop_clipped():
    assert relative_gain(0.4, 0.3) == pytest.approx(0.25)
    assert relative_gain(0.1, 0.5) == -1.0
    assert relative_gain(0.0, 0.0) == 0.0


def test_a_reward_updates_the_arm_by_its_normalised_gain_over_its_probability():
    bandit = AutoStrategy(arms=("random", "margin"), learning_rate=1.0, exploration=0.2)
    before = {"classes": ["a", "b"], "proba": [[0.5, 0.5]]}  # Brier 0.5 for label "a"
    after = {"classes": ["a", "b"], "proba": [[0.75, 0.25]]}  # Brier 0.125: a 75% drop
    bandit.state = {
        "scores": {"random": 1.0},
        "pending": [
            {"round": 0, "arm": "margin", "p": 0.5, "probe": [7], "before": before, "after": after}
        ],
        "labels": [[7, "a"]],
    }
    done = bandit._reward(bandit._state())
    assert done == [{"arm": "margin", "round": 0, "gain": pytest.approx(0.75)}]
    state = bandit.get_state()
    # the first gain sets the scale (0.75): normalised 1, over p = 0.5 -> +2; random decays by 0.9
    assert state["scores"] == {"random": pytest.approx(0.9), "margin": pytest.approx(2.0)}
    assert state["pending"] == [] and state["labels"] == []
    p = bandit.probabilities(("random", "margin"))
    w = np.exp([0.9 - 2.0, 0.0])
    np.testing.assert_allclose(p, 0.8 * w / w.sum() + 0.1)


def _digits():
    X, y = load_digits(return_X_y=True)
    return X[:600] / 16.0, y[:600]


def _rounds(bandit, X, y, n_rounds, batch=10, labeled=None, rebuild=False):
    """A small simulated loop; returns each round's selection."""
    labeled = np.zeros(len(y), dtype=bool) if labeled is None else labeled
    labeled[:30] = True
    out = []
    for round_ in range(n_rounds):
        model = LogisticRegression(max_iter=500).fit(X[labeled], y[labeled])
        if rebuild:  # the loop's way: a new strategy each round, its state through JSON
            bandit = AutoStrategy(state=json.loads(json.dumps(bandit.get_state())))
        selection = bandit.query(
            model,
            X,
            batch,
            X_labeled=X[labeled],
            y_labeled=y[labeled],
            random_state=round_,
            exclude=labeled,
        )
        out.append(selection)
        labeled[selection.indices] = True
        bandit.observe(selection.indices, y[selection.indices])
    return out, bandit


def test_each_probe_is_reserved_then_labeled_in_the_next_batch_as_random_picks():
    X, y = _digits()
    selections, bandit = _rounds(AutoStrategy(), X, y, 4)
    history = bandit.get_state()["history"]
    assert [h["round"] for h in history] == [0, 1, 2, 3]
    for k, selection in enumerate(selections):
        assert len(selection) == 10 and len(set(selection.indices)) == 10
        random_rows = selection.indices[selection.sources == "random"]
        assert (len(random_rows) == 0) == (k == 0)  # no probe before the first round
        assert set(selection.sources) <= {"random", history[k]["arm"]}
    assert len(selections[1].indices[selections[1].sources == "random"]) >= 2  # 20% of 10
    # every round from the third rewards the arm of two rounds before
    assert [r["round"] for h in history[2:] for r in h["rewards"]] == [0, 1]
    assert all(abs(r["gain"]) <= 1 for h in history for r in h["rewards"])


def test_a_rebuilt_strategy_continues_from_its_json_state_exactly():
    X, y = _digits()
    continued, _ = _rounds(AutoStrategy(), X, y, 4)
    rebuilt, _ = _rounds(AutoStrategy(), X, y, 4, rebuild=True)
    for a, b in zip(continued, rebuilt, strict=True):
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_array_equal(a.sources, b.sources)


def test_remapping_rows_to_ids_and_back_keeps_the_state_and_drops_lost_rows():
    from strategies.bandit import remap_rows

    state = {
        "pending": [
            {"probe": [3, 5], "before": {"values": [1.0, 2.0]}, "after": {"values": [1.5, 2.5]}},
        ],
        "labels": [[3, 0.5]],
    }
    ids = {3: "x3", 5: "x5"}
    as_ids = remap_rows(state, ids.get)
    assert as_ids["pending"][0]["probe"] == ["x3", "x5"] and as_ids["labels"] == [["x3", 0.5]]
    back = {"x3": 30}  # x5 left the pool: dropped with its predictions
    moved = remap_rows(as_ids, back.get)
    assert moved["pending"][0]["probe"] == [30]
    assert moved["pending"][0]["before"] == {"values": [1.0]}
    assert moved["pending"][0]["after"] == {"values": [1.5]}
    assert state["pending"][0]["probe"] == [3, 5]  # the input is not changed


def test_rows_of_a_chunked_pool_come_back_in_the_order_asked():
    X = np.arange(20.0).reshape(10, 2)
    ctx = QueryContext.build(None, iter([X[:4], X[4:7], X[7:]]))
    np.testing.assert_array_equal(_pool_rows(ctx, [8, 1, 5]), X[[8, 1, 5]])


def test_a_regressor_gets_the_regression_arms_and_bad_settings_are_refused():
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = X @ [1.0, 2.0, -1.0]
    bandit = strategies.get("auto")
    bandit.select(
        Ridge().fit(X[:20], y[:20]), X, 5, X_labeled=X[:20], y_labeled=y[:20], exclude=np.arange(20)
    )
    assert set(bandit.get_state()["history"][0]["probabilities"]) == {"random", "igs", "variance"}
    with pytest.raises(ValueError, match="probe_share"):
        AutoStrategy(probe_share=1.0).select(Ridge().fit(X, y), X, 5)
