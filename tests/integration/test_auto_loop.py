"""strategy auto and model.kind auto through the real loop flow (Prefect, MLflow on SQLite, DVC,
simulated annotators on digits): the bandit's state crosses rounds as item ids, each round logs
the arm and the model the search chose."""

from __future__ import annotations

import json

import mlflow
import pytest

from tasks.data import store
from tasks.loop import demo as project
from tasks.loop import rounds
from tests.conftest import project_settings

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.usefixtures("prefect_harness"),
]

ROUNDS, BATCH = 4, 10


@pytest.fixture(scope="module")
def auto_loop(tmp_path_factory, prefect_harness):
    from flows.loop import loop_flow

    root = tmp_path_factory.mktemp("auto")
    sections = {
        "project": {"name": "it-auto", "seed": 5},
        "strategy": {"name": "auto", "batch_size": BATCH},
        "model": {"kind": "auto"},
        "versioning": {"enabled": False},
        "monitor": {"enabled": False},
        "loop": {
            "max_rounds": ROUNDS,
            "demo_rows": 400,
            "holdout_fraction": 0.25,
            "initial_labels": 40,
            "stop_set_size": 50,
        },
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        settings = project_settings(root, **sections)
        project.seed_project(settings)
        loop_flow(settings)
    return settings


def test_the_bandit_carries_its_state_across_rounds_as_item_ids(auto_loop):
    settings = auto_loop
    states = [s for s in rounds.round_states(settings) if s.round >= 1]
    assert len(states) == ROUNDS
    pool_ids = set(store.read_pool(settings)["id"].astype(str))
    history = states[-1].info["strategy_state"]["history"]
    assert [h["round"] for h in history] == list(range(ROUNDS))  # one bandit across the rounds
    for state in states:
        carried = state.info["strategy_state"]
        for probe in carried["pending"]:
            assert set(probe["probe"]) <= pool_ids  # rows saved as item ids
    # the probe of round k is labeled in round k + 1 as random picks, so from round 3 on the
    # arm of round k - 2 gets its reward
    assert [r["round"] for h in history[2:] for r in h["rewards"]] == list(range(ROUNDS - 2))
    for k in (1, 2, 3):  # from the second round on: last round's probe (20% of 10) + the arm's
        sources = store.read_manifest(settings, states[k].round)["source"]
        arm = history[k]["arm"]
        assert set(sources) <= {"random", arm}
        assert (sources == "random").sum() == (BATCH if arm == "random" else 2)


def test_each_round_logs_the_arm_and_the_model_the_search_chose(auto_loop):
    from tasks.tracking.runs import setup_tracking

    tracking = setup_tracking(auto_loop)
    runs = mlflow.search_runs(
        [tracking.experiment_id], filter_string="tags.`labelwise.kind` = 'round'"
    )
    assert len(runs) == ROUNDS
    assert set(runs["params.strategy.arm"]) <= {"random", "margin", "cluster_margin"}
    assert runs["params.model.chosen"].str.match(r"^(logreg_c|xgb|forest)").all()
    assert (runs["metrics.model.search_seconds"] > 0).all()
    assert runs["metrics.model.threshold"].between(0.05, 0.95).all()
    # where the search ran, the chosen candidate beat the no-skill baseline, or was the cheapest
    searched = runs.dropna(subset=["metrics.model.cv_baseline"])
    assert len(searched) >= 1
    for _, run in searched.iterrows():
        chosen = run[f"metrics.model.cv.{run['params.model.chosen']}"]
        assert (
            chosen > run["metrics.model.cv_baseline"] or run["params.model.chosen"] == "logreg_c1"
        )
    probabilities = runs.filter(like="metrics.strategy.p.").sum(axis=1)
    assert probabilities.round(6).eq(1.0).all()
    choice = json.loads(runs["tags.labelwise.strategy_choice"].iloc[0])
    assert choice["arm"] in choice["probabilities"]
