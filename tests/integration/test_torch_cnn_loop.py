"""``model.kind: torch_cnn`` through the real loop: two rounds of the loop flow (Prefect's test
harness, MLflow on SQLite, DVC, simulated annotators) on digit PNG files, ``bald`` selecting
with the CNN's MC-dropout passes; the champion is the CNN and predicts from raw input."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import mlflow
import numpy as np
import pytest

from tasks.data import store
from tasks.loop import demo, rounds
from tasks.settings import Settings
from tasks.tracking.runs import setup_tracking
from tests.integration.test_data_types import image_items

pytest.importorskip("torch", reason="the torch extra is not installed: pip install torch==2.13.0")

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_harness")]

BATCH, SEEDS = 10, 20


def _settings(root: Path) -> Settings:
    return Settings.model_validate(
        {
            "project": {
                "name": "it-torch-cnn",
                "work_dir": str(root / ".labelwise"),
                "data_dir": str(root / "data"),
                "seed": 1,
            },
            "strategy": {"name": "bald", "batch_size": BATCH},
            "model": {"kind": "torch_cnn", "device": "auto", "params": {"mc_samples": 10}},
            "features": {"image_size": [16, 16]},
            "monitor": {"enabled": False, "html_reports": False},
            "loop": {
                "max_rounds": 2,
                "demo_rows": 160,
                "initial_labels": SEEDS,
                "stop_set_size": 20,
            },
        }
    )


def test_torch_cnn_with_bald_runs_two_rounds_and_its_champion_predicts_raw_input(
    tmp_path, monkeypatch
):
    from flows.loop import loop_flow
    from tasks.model.torch_cnn import TorchCNNClassifier

    monkeypatch.chdir(tmp_path)
    settings = _settings(tmp_path)
    assert demo.seed_project(settings, image_items(tmp_path, settings))
    result = loop_flow(settings)

    assert result.status == "stopped" and len(result.rounds) == 2
    counts = store.read_labels(settings).groupby("round").size().to_dict()
    assert counts == {0: SEEDS, 1: BATCH, 2: BATCH}
    for n in (1, 2):
        state = rounds.load_round(settings, n)
        assert state.status == "complete" and state.info["trained"] is True
        assert 0.0 <= state.info["metrics"]["macro_f1"] <= 1.0
        manifest = store.read_manifest(settings, n)
        # bald itself selected (no fallback), scoring by the dropout passes' disagreement
        assert set(manifest["source"]) == {"bald"} and len(manifest) == BATCH
        assert (manifest["score"].astype(float) > 0).all()

    tracking = setup_tracking(settings)
    runs = mlflow.search_runs(
        [tracking.experiment_id], filter_string="tags.`labelwise.kind` = 'round'"
    )
    assert len(runs) == 2
    assert set(runs["params.model.kind"]) == {"torch_cnn"}
    assert set(runs["params.strategy.name"]) == {"bald"}
    champion = mlflow.pyfunc.load_model(f"models:/{tracking.registered_model}@champion")
    assert isinstance(champion.unwrap_python_model().estimator, TorchCNNClassifier)
    inputs = champion.metadata.get_input_schema().input_names()
    raw = store.read_holdout(settings)[inputs].head(6)
    predicted = [str(p) for p in champion.predict(raw)]
    assert len(predicted) == len(raw)
    assert set(predicted) <= set(store.read_holdout(settings)["label"].astype(str))
    assert np.isfinite(champion.unwrap_python_model().predict_proba(raw)).all()
    estimator = champion.unwrap_python_model().estimator
    assert list(estimator.image_shape) == [*settings.features.image_size, 1]  # from the featurizer
    requirements = Path(
        mlflow.pyfunc.get_model_dependencies(f"models:/{tracking.registered_model}@champion")
    ).read_text()
    release = version("torch").split("+")[0]  # a version an index serves: no local "+cpu"
    assert f"torch=={release}\n" in requirements
