"""Relabel or label new in real rounds (plain steps, no Prefect): round 1's four random picks
are answered by a liar, so round 2 (``annotation.relabel_share: 0.5``) asks honest annotators
again about them, beside new items, within the label budget (which counts annotations)."""

from __future__ import annotations

import pandas as pd
import pytest

from tasks.annotation.simulated import SimulatedAnnotator, SimulatedBackend
from tasks.data import store
from tasks.loop import demo as project
from tasks.loop import labeling, lifecycle, training_data

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BATCH, SEED_LABELS, LIES = 10, 40, 4


def test_round_two_asks_another_annotator_about_the_likely_wrong_labels(
    make_settings, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    settings = make_settings(
        project={"name": "it-relabel", "seed": 2},
        strategy={"name": "random", "batch_size": LIES},
        model={"kind": "logreg"},
        loop={
            "demo_rows": 300,
            "initial_labels": SEED_LABELS,
            "stop_set_size": 0,
            "label_budget": SEED_LABELS + LIES + BATCH,
            "dataset": "breast_cancer",
        },
        annotation={"relabel_share": 0.5, "aggregation": "majority", "agreement_threshold": 0.7},
    )
    project.seed_project(settings)
    oracle = labeling.make_backend(settings)

    def crowd(*people: SimulatedAnnotator) -> SimulatedBackend:
        return SimulatedBackend(
            oracle.truth, oracle.classes, oracle.state_file, annotators=list(people), seed=2
        )

    liar = crowd(SimulatedAnnotator("mallory", adversarial=True))
    lifecycle.begin_round(settings, 1)
    labeling.select(settings, 1)
    labeling.dispatch(settings, 1, liar)
    labeling.collect(settings, 1, liar)
    first = set(store.read_manifest(settings, 1)["id"])

    honest = crowd(
        SimulatedAnnotator("mallory", adversarial=True),
        SimulatedAnnotator("alice"),
        SimulatedAnnotator("bob"),
    )
    lifecycle.begin_round(settings, 2)
    settings.strategy.name, settings.strategy.batch_size = "margin", BATCH
    state = labeling.select(settings, 2)
    manifest = store.read_manifest(settings, 2)
    again = set(manifest.loc[manifest["source"] == "relabel", "id"])
    assert again == first  # each lie: the model disagrees, the liar agrees with it on nothing
    assert state.info["n_relabel"] == len(again) and len(manifest) == BATCH
    labeling.dispatch(settings, 2, honest)
    assert labeling.collect(settings, 2, honest).done("collected")

    log = store.current_answers(store.read_labels(settings))
    # the liar's answer, an honest one (a 1-1 tie: agreement 0.5 < 0.7), then the other honest
    for item in again:
        assert sorted(log.loc[log["id"] == item, "annotator"]) == ["alice", "bob", "mallory"]
    truth = pd.Series(oracle.truth)
    labels = training_data.training_labels(settings).set_index("id")["label"]
    assert all(labels[i] == truth[i] for i in again)  # 2 to 1 for the truth now
    assert all(labels[i] != truth[i] for i in first - again)  # nobody asked again: the lie
