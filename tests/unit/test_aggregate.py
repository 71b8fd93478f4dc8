"""Aggregating several annotators: majority vote, Dawid-Skene, agreement, gold, annotator stats."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.annotation.aggregate import (
    accuracy_against,
    aggregate,
    annotator_stats,
    dawid_skene,
    majority_vote,
    mix_gold,
    needs_attention,
)
from tasks.annotation.simulated import SimulatedAnnotator

pytestmark = pytest.mark.unit


def frame(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["id", "annotator", "label"])


VOTES = frame(
    [
        ("a", "ann1", "x"),
        ("a", "ann2", "x"),
        ("a", "ann3", "y"),
        ("b", "ann1", "y"),
        ("b", "ann2", "x"),
        ("c", "ann3", "y"),
    ]
)


def test_majority_vote_matches_hand_counts_and_breaks_ties_by_class_order():
    out = majority_vote(VOTES, classes=["x", "y"]).set_index("id")
    assert out.loc["a", "label"] == "x" and out.loc["a", "agreement"] == pytest.approx(2 / 3)
    assert out.loc["b", "label"] == "x" and out.loc["b", "agreement"] == pytest.approx(0.5)
    assert out.loc["c", "label"] == "y" and out.loc["c", "agreement"] == 1.0
    assert out["n_votes"].tolist() == [3, 2, 1]
    assert majority_vote(VOTES, classes=["y", "x"]).set_index("id").loc["b", "label"] == "y"


def test_unknown_label_is_rejected():
    with pytest.raises(ValueError, match="not in classes"):
        majority_vote(VOTES, classes=["x"])


def simulated_crowd(seed: int, n_items: int = 300) -> tuple[pd.DataFrame, dict[str, str]]:
    """Three classes, four honest-but-noisy annotators and one adversary; 3 votes per item."""
    rng = np.random.default_rng(seed)
    classes = ["a", "b", "c"]
    crowd = [
        SimulatedAnnotator("good1", accuracy=0.75),
        SimulatedAnnotator("good2", accuracy=0.7),
        SimulatedAnnotator("meh1", accuracy=0.6),
        SimulatedAnnotator("meh2", accuracy=0.6),
        SimulatedAnnotator("liar", adversarial=True),
    ]
    truth = {f"i{i}": classes[int(rng.integers(3))] for i in range(n_items)}
    rows = []
    for item, label in truth.items():
        for a in rng.choice(len(crowd), size=3, replace=False):
            rows.append((item, crowd[a].name, crowd[a].answer(label, classes, rng)))
    return frame(rows), truth


def accuracy(labels: pd.DataFrame, truth: dict[str, str]) -> float:
    return float((labels["label"] == labels["id"].map(truth)).mean())


@pytest.mark.parametrize("seed", range(5))
def test_dawid_skene_beats_majority_vote_with_an_adversarial_annotator(seed):
    votes, truth = simulated_crowd(seed)
    mv = accuracy(majority_vote(votes, ["a", "b", "c"]), truth)
    ds = accuracy(dawid_skene(votes, ["a", "b", "c"]).labels(), truth)
    assert ds > mv + 0.03, (ds, mv)


def test_dawid_skene_learns_the_adversary_and_the_class_priors():
    votes, truth = simulated_crowd(0, n_items=600)
    fit = dawid_skene(votes, ["a", "b", "c"])
    liar = fit.annotators.index("liar")
    # the adversary answers the next class: its estimated confusion is the shifted identity
    assert np.allclose(fit.confusion[liar], np.roll(np.eye(3), 1, axis=1), atol=0.15)
    acc = fit.annotator_accuracy()
    assert acc["liar"] < 0.1 < 0.6 < acc["good1"]
    shares = pd.Series(truth).value_counts(normalize=True).reindex(["a", "b", "c"]).to_numpy()
    assert np.allclose(fit.priors, shares, atol=0.06)
    assert np.allclose(fit.posteriors.sum(axis=1), 1.0)


def test_aggregate_reports_agreement_of_the_chosen_label():
    out = aggregate(VOTES, "majority", ["x", "y"]).set_index("id")
    assert out.loc["a", "agreement"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="unknown aggregation"):
        aggregate(VOTES, "mean")


def test_low_agreement_items_get_one_more_annotator_or_are_flagged():
    agg = pd.DataFrame({"id": ["a", "b", "c"], "agreement": [0.5, 1.0, 0.4], "n_votes": [2, 3, 5]})
    more, flagged = needs_attention(agg, threshold=0.7, max_annotators=5)
    assert more == ["a"] and flagged == ["c"]


def test_accuracy_against_gold_is_per_annotator_share_correct():
    gold = {"a": "x", "b": "y"}
    acc = accuracy_against(VOTES, gold)
    assert acc.loc["ann1", "accuracy"] == 1.0 and acc.loc["ann1", "n"] == 2
    assert acc.loc["ann2", "accuracy"] == 0.5
    assert acc.loc["ann3", "accuracy"] == 0.0 and acc.loc["ann3", "n"] == 1


def test_annotator_stats_has_gold_model_and_dawid_skene_columns():
    stats = annotator_stats(
        VOTES, gold={"a": "x"}, predictions={"a": "y", "b": "y", "c": "y"}, classes=["x", "y"]
    ).set_index("annotator")
    assert stats.loc["ann1", "n"] == 2
    assert stats.loc["ann3", "gold_accuracy"] == 0.0
    assert stats.loc["ann3", "model_agreement"] == 1.0
    assert {"majority_agreement", "ds_accuracy"} <= set(stats.columns)


def test_log_annotator_stats_writes_metrics_and_a_json_table(tmp_path):
    import mlflow

    from tasks.annotation.aggregate import log_annotator_stats

    previous = mlflow.get_tracking_uri()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    try:
        experiment = mlflow.create_experiment("stats", artifact_location=(tmp_path / "a").as_uri())
        stats = annotator_stats(VOTES, gold={"a": "x"}, classes=["x", "y"])
        with mlflow.start_run(experiment_id=experiment) as run:
            log_annotator_stats(stats, round_=2)
    finally:
        mlflow.set_tracking_uri(previous)
    client = mlflow.MlflowClient(uri)
    data = client.get_run(run.info.run_id).data
    assert data.metrics["annotator.ann3.gold_accuracy"] == 0.0
    assert data.metrics["annotator.ann1.n"] == 2
    files = [f.path for f in client.list_artifacts(run.info.run_id, "annotation")]
    assert files == ["annotation/annotator_stats_round_002.json"]


def test_mix_gold_adds_the_requested_share_without_leaking_answers():
    batch = pd.DataFrame(
        {
            "id": [f"p{i}" for i in range(8)],
            "round": 3,
            "rank": range(1, 9),
            "score": np.linspace(1, 0, 8),
        }
    )
    gold = pd.DataFrame({"id": [f"g{i}" for i in range(10)], "label": "x"})
    mixed = mix_gold(batch, gold, fraction=0.2, random_state=0)
    assert len(mixed) == 10 and mixed["gold"].sum() == 2
    assert "label" not in mixed.columns
    assert mixed["rank"].tolist() == list(range(1, 11))
    assert set(mixed.loc[mixed["gold"], "id"]) <= set(gold["id"])
    assert (mixed["round"] == 3).all()
    assert mix_gold(batch, gold, fraction=0.0)["gold"].sum() == 0


def test_numbers_aggregate_to_the_median_and_tags_to_a_vote_per_token():
    import json

    from tasks.annotation.aggregate import aggregate_numbers, aggregate_tags

    numbers = pd.DataFrame(
        {
            "id": ["a", "a", "a", "b"],
            "annotator": ["x", "y", "z", "x"],
            "label": ["10", "10.2", "30", "5"],
        }
    )
    agreed = aggregate_numbers(numbers).set_index("id")
    assert float(agreed.loc["a", "label"]) == 10.2 and agreed.loc["a", "n_votes"] == 3
    assert agreed.loc["a", "agreement"] == pytest.approx(2 / 3)  # 10 and 10.2 are within 5%
    tags = pd.DataFrame(
        {
            "id": ["s", "s", "s"],
            "annotator": ["x", "y", "z"],
            "label": [json.dumps(t) for t in (["B-x", "O"], ["B-x", "B-y"], ["O", "B-y"])],
        }
    )
    voted = aggregate_tags(tags).iloc[0]
    assert json.loads(voted["label"]) == ["B-x", "B-y"] and voted["n_votes"] == 3
    assert voted["agreement"] == pytest.approx(2 / 3)
