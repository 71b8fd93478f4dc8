"""Annotation quality control in a real round: the plain steps of ``tasks.loop.rounds`` (no
Prefect needed) with a real MLflow SQLite store, 300 rows of scikit-learn's digits and a
simulated crowd: k=3 of 4 annotators per item, one of them adversarial, gold items mixed in."""

from __future__ import annotations

import mlflow
import pandas as pd
import pytest

from tasks.annotation.aggregate import aggregate
from tasks.annotation.simulated import SimulatedAnnotator, SimulatedBackend
from tasks.data import store
from tasks.loop import demo as project
from tasks.loop import labeling, learning, lifecycle, quality, training_data
from tasks.tracking.runs import setup_tracking
from tests.conftest import project_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BATCH, SEED_LABELS = 12, 20
CROWD = [
    SimulatedAnnotator("alice", accuracy=0.95),
    SimulatedAnnotator("bob", accuracy=0.9),
    SimulatedAnnotator("mallory", adversarial=True),
    SimulatedAnnotator("carol", accuracy=0.9),
]


@pytest.fixture(scope="module")
def crowd_round(tmp_path_factory):
    """Round 1, select to evaluate, answered by the crowd (the seed labels by the oracle)."""
    root = tmp_path_factory.mktemp("crowd")
    settings = project_settings(
        root,
        project={"name": "it-crowd", "seed": 5},
        strategy={"name": "margin", "batch_size": BATCH},
        loop={
            "demo_rows": 300,
            "holdout_fraction": 0.25,
            "initial_labels": SEED_LABELS,
            "stop_set_size": 0,
        },
        annotation={
            "overlap_share": 1.0,
            "annotators_per_item": 3,
            "gold_fraction": 0.25,
            "agreement_threshold": 0.7,
            "max_annotators": 4,
            "aggregation": "dawid_skene",
        },
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        project.seed_project(settings)
        oracle = labeling.make_backend(settings)
        crowd = SimulatedBackend(
            oracle.truth,
            oracle.classes,
            oracle.state_file,
            annotators=CROWD,
            annotators_per_item=3,
            seed=settings.project.seed,
        )
        lifecycle.begin_round(settings, 1)
        labeling.select(settings, 1)
        labeling.dispatch(settings, 1, crowd)
        labeling.collect(settings, 1, crowd)
        learning.train(settings, 1)
        state = learning.evaluate(settings, 1)
    return settings, state, pd.read_parquet(crowd.state_file)


def test_the_round_run_logs_annotator_stats_and_the_liar_has_the_worst_gold_accuracy(
    crowd_round,
):
    settings, state, _ = crowd_round
    setup_tracking(settings)
    metrics = mlflow.MlflowClient().get_run(state.info["mlflow_run_id"]).data.metrics
    gold = {k.split(".")[1]: v for k, v in metrics.items() if k.endswith(".gold_accuracy")}
    assert set(gold) == {a.name for a in CROWD}
    assert min(gold, key=gold.get) == "mallory" and gold["mallory"] == 0.0
    for stat in ("n", "model_agreement", "majority_agreement", "aggregate_agreement"):
        assert f"annotator.mallory.{stat}" in metrics
    assert metrics["annotator.mallory.model_agreement"] < metrics["annotator.alice.model_agreement"]
    assert metrics["annotation.gold_items"] == len(state.info["gold_ids"]) == 4
    assert metrics["annotation.flagged"] == len(state.info["annotation_flagged"])


def test_low_agreement_items_got_a_fourth_answer_or_were_flagged(crowd_round):
    settings, state, answers = crowd_round
    batch = set(store.read_manifest(settings, 1)["id"])
    per_item = answers[answers["id"].isin(batch)].groupby("id").size()
    requested = set(state.info["more_requested"])
    assert requested and {i for i in batch if per_item[i] == 4} == requested
    log = store.read_labels(settings)
    votes = training_data.latest_per_annotator(log[log["id"].isin(batch)])
    agreed = aggregate(votes, "dawid_skene").set_index("id")
    low = set(agreed.index[agreed["agreement"] < 0.7])
    assert low == set(state.info["annotation_flagged"])  # still low with 4 votes: flagged
    assert all(per_item[i] == 4 for i in low)


def test_training_labels_are_the_dawid_skene_aggregate_without_gold_or_holdout_rows(crowd_round):
    settings, state, answers = crowd_round
    log = store.read_labels(settings)
    holdout = set(store.read_holdout(settings)["id"])
    gold = set(state.info["gold_ids"])
    assert gold <= holdout and gold <= set(answers["id"])  # gold items were answered...
    assert not set(log["id"]) & holdout  # ...but none of it reached the label log
    assert set(quality.gold_answers(settings)["id"]) == gold
    labels = training_data.training_labels(settings)
    assert labels["id"].is_unique and not set(labels["id"]) & holdout
    assert len(labels) == state.info["n_labels"] == SEED_LABELS + BATCH
    trained = labels.set_index("id")["label"]
    several = training_data.several_votes(training_data.latest_per_annotator(log))
    assert set(several["id"]) == set(store.read_manifest(settings, 1)["id"])
    agreed = aggregate(several, "dawid_skene").set_index("id")["label"]
    pd.testing.assert_series_equal(trained[agreed.index], agreed)
    seed = log[log["round"] == 0].set_index("id")["label"]  # one answer each: kept as given
    pd.testing.assert_series_equal(trained[seed.index], seed)
