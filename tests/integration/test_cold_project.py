"""A project with no labels at all starts where a real user starts: round 1 picks typical rows
without a model (``source: cold_start``), the annotators label them, and training begins once
two classes are labeled; from then on the champion's uncertainty selects. Through the round
and loop flows (Prefect's test harness), with the simulated annotators and with a real Label
Studio server whose tasks are answered through its API."""

from __future__ import annotations

import pandas as pd
import pytest

from tasks.data import store
from tasks.loop import demo as project
from tasks.loop import labeling, rounds
from tests.integration import label_studio_client as ls

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.usefixtures("prefect_harness"),
]

BATCH = 10


def _sections(name: str, dataset: str) -> dict[str, dict]:
    """No labels at all: 240 rows of ``dataset``, 3 rounds of 10 margin picks, versioned."""
    return {
        "project": {"name": name, "seed": 2},
        "strategy": {"name": "margin", "batch_size": BATCH},
        "versioning": {"enabled": True},
        "loop": {
            "dataset": dataset,
            "demo_rows": 240,
            "initial_labels": 0,
            "stop_set_size": 0,
            "max_rounds": 3,
        },
        "annotation": {"backend": "simulated"},
    }


def test_a_cold_loop_picks_cold_start_rows_until_it_can_train_then_uses_the_model(
    tmp_path, monkeypatch, make_settings
):
    from flows.loop import loop_flow

    monkeypatch.chdir(tmp_path)
    settings = make_settings(**_sections("it-cold", "wine"))
    assert project.seed_project(settings)
    assert store.read_labels(settings).empty  # nothing labeled before round 1

    result = loop_flow(settings)

    assert result.status == "stopped" and len(result.rounds) == 3
    first = store.read_manifest(settings, 1)
    assert set(first["source"]) == {"cold_start"} and first["score"].isna().all()
    assert rounds.load_round(settings, 1).info["selection_model"] == "none"
    trained = [rounds.load_round(settings, n).info["trained"] for n in (1, 2, 3)]
    assert trained[-1] is True  # three classes of wine are covered within 30 typical rows
    later = next(n for n in (2, 3) if trained[n - 2])  # the round after the first training
    picked = store.read_manifest(settings, later)
    assert set(picked["source"]) == {"margin"} and picked["score"].notna().all()
    assert rounds.load_round(settings, later).info["selection_model"] not in ("none", "initial")
    assert len(store.read_labels(settings)) == 3 * BATCH


def test_a_cold_label_studio_project_dispatches_cold_start_picks_then_trains_on_the_answers(
    label_studio, tmp_path, monkeypatch, make_settings
):
    from flows.round import round_flow

    monkeypatch.chdir(tmp_path)
    sections = _sections("it-cold-ls", "breast_cancer")
    project.seed_project(make_settings(**sections))  # pool, holdout, the answers to give
    sections["data"] = {"classes": ["benign", "malignant"]}
    sections["annotation"] = {
        "backend": "label_studio",
        "label_config": "tabular_classification",
        "project_title": "labelwise it-cold",
    }
    settings = make_settings(**sections)
    monkeypatch.setenv("LABEL_STUDIO_URL", label_studio.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio.token)

    first = round_flow(settings, 1)
    assert first.status == "waiting"  # the cold-start picks are with the annotators
    manifest = store.read_manifest(settings, 1)
    assert set(manifest["source"]) == {"cold_start"} and len(manifest) == BATCH
    backend = labeling.make_backend(settings)
    tasks = ls.tasks(label_studio, backend.project_id)
    assert sorted(t["data"]["lw_id"] for t in tasks) == sorted(manifest["id"])
    truth = pd.read_parquet(labeling.truth_path(settings)).set_index("id")["label"]
    assert set(truth[manifest["id"]]) == {"benign", "malignant"}  # both classes were picked
    for task in tasks:
        ls.annotate(label_studio, task["id"], ls.choice(truth[task["data"]["lw_id"]], "row"))

    done = round_flow(settings, 1)  # the answers are in: collect, train, evaluate, version
    assert done.status == "complete" and done.promoted and done.metrics["macro_f1"] > 0.5
    second = round_flow(settings, 2)
    assert second.status == "waiting"
    picked = store.read_manifest(settings, 2)
    assert set(picked["source"]) == {"margin"} and picked["score"].notna().all()
    assert rounds.load_round(settings, 2).info["selection_model"] == "1"  # round 1's champion
    assert not picked["id"].isin(set(manifest["id"])).any()
