"""Every data type through the real loop: table rows with categories, texts (TF-IDF and the
offline sentence embeddings), image files, sentences to tag (NER) and numbers (regression).
Two rounds of the loop flow each (Prefect's test harness, MLflow on SQLite, DVC, simulated
annotators): the labels grow by the batch, each round run holds the type's holdout metric,
each round is a data version, and the registered champion predicts from raw input."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from tasks.data import store, versioning
from tasks.loop import demo, rounds
from tasks.settings import Settings
from tasks.tracking.runs import setup_tracking

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

BATCH, SEEDS = 10, 20
CASES = {
    "tabular-categorical": ({"loop": {"dataset": "adult"}}, "macro_f1"),
    "text-tfidf": ({"loop": {"dataset": "sms_spam"}}, "macro_f1"),
    "text-embeddings": (
        {"loop": {"dataset": "sms_spam"}, "features": {"text_featurizer": "embeddings"}},
        "macro_f1",
    ),
    "images": ({}, "macro_f1"),  # a folder of PNG files, see image_items
    "ner": ({"loop": {"dataset": "twitter_ner"}}, "entity_f1"),
    "regression": ({"loop": {"dataset": "abalone"}}, "rmse"),
}


def _settings(root: Path, case: str) -> Settings:
    extra, _ = CASES[case]
    loop = {"max_rounds": 2, "demo_rows": 160, "initial_labels": SEEDS, "stop_set_size": 20}
    loop |= extra.get("loop", {})
    return Settings.model_validate(
        {
            "project": {
                "name": f"it-type-{case}",
                "work_dir": str(root / ".labelwise"),
                "data_dir": str(root / "data"),
                "seed": 1,
            },
            "strategy": {"batch_size": BATCH},
            "monitor": {"enabled": case == "tabular-categorical", "html_reports": False},
            "features": extra.get("features", {}),
            "loop": loop,
        }
    )


def image_items(root: Path, settings: Settings):
    """sklearn's digits as PNG files in one subfolder per class, read as `labelwise run --data`."""
    from PIL import Image
    from sklearn.datasets import load_digits

    from flows.cli.run import own_items

    digits = load_digits()
    folder = root / "digits"
    rng = np.random.default_rng(0)
    for i in rng.choice(len(digits.images), size=200, replace=False):
        target = folder / str(digits.target[i])
        target.mkdir(parents=True, exist_ok=True)
        pixels = (digits.images[i] * 255 / 16).astype(np.uint8)
        Image.fromarray(pixels).resize((16, 16)).save(target / f"{i}.png")
    return own_items(settings, folder, "label", None)


def _raw_input(settings: Settings, model_columns: list[str]) -> pd.DataFrame:
    holdout = store.read_holdout(settings)
    return holdout[model_columns].head(4)


@pytest.mark.parametrize("case", list(CASES))
def test_every_data_type_runs_two_rounds_and_its_champion_predicts_raw_input(
    case, tmp_path, monkeypatch
):
    from flows.loop import loop_flow
    from tasks.data.profile import resolve

    monkeypatch.chdir(tmp_path)
    settings = _settings(tmp_path, case)
    items = image_items(tmp_path, settings) if case == "images" else None
    assert demo.seed_project(settings, items)
    result = loop_flow(settings)

    assert result.status == "stopped" and len(result.rounds) == 2
    resolved = resolve(settings)
    metric = CASES[case][1]
    assert resolved.evaluate.metric == metric
    counts = store.read_labels(settings).groupby("round").size().to_dict()
    assert counts == {0: SEEDS, 1: BATCH, 2: BATCH}
    for n in (1, 2):
        state = rounds.load_round(settings, n)
        assert state.status == "complete" and state.info["trained"] is True
        assert np.isfinite(state.info["metrics"][metric])
    assert versioning.tags(settings) == ["round-1", "round-2"]

    tracking = setup_tracking(settings)
    runs = mlflow.search_runs(
        [tracking.experiment_id], filter_string="tags.`labelwise.kind` = 'round'"
    )
    assert len(runs) == 2 and runs[f"metrics.{metric}"].notna().all()
    champion = mlflow.pyfunc.load_model(f"models:/{tracking.registered_model}@champion")
    inputs = champion.metadata.get_input_schema().input_names()
    raw = _raw_input(settings, inputs)
    if case == "ner":  # the signature takes each sentence's tokens as JSON text
        assert all(isinstance(json.loads(v), list) for v in raw[inputs[0]])
    predicted = list(champion.predict(raw))
    assert len(predicted) == len(raw)
    if case == "ner":
        tags = [json.loads(p) for p in predicted]
        lengths = [len(json.loads(v)) for v in raw[inputs[0]]]
        assert [len(t) for t in tags] == lengths  # a tag per token
    elif case == "regression":
        assert np.isfinite(np.asarray(predicted, dtype=float)).all()
    else:
        known = set(store.read_holdout(settings)["label"].astype(str))
        assert {str(p) for p in predicted} <= known
