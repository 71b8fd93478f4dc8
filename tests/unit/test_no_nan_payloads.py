"""Picks without a per-row score (batch diversity, cold start, random) never put NaN or an
infinity into a JSON payload, a manifest column or an MLflow metric; the rank orders them."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tasks.annotation.aggregate import mix_gold
from tasks.annotation.base import jsonable
from tasks.annotation.label_studio import LabelStudioBackend
from tasks.data import store
from tasks.settings import Settings
from tasks.tracking.runs import finite_metrics

pytestmark = pytest.mark.unit


def _batch(n: int, scores) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [f"p{i}" for i in range(n)],
            "round": 2,
            "rank": np.arange(1, n + 1),
            "score": scores,
            "text": [f"item {i}" for i in range(n)],
        }
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (float("nan"), None),
        (np.float64("nan"), None),  # a numpy scalar is converted before the check
        (np.float32("inf"), None),
        (-np.inf, None),
        (np.int64(3), 3),
        (np.array([1.0, np.nan]), [1.0, None]),
        (0.25, 0.25),
    ],
)
def test_jsonable_turns_every_non_finite_value_into_null(value, expected):
    assert jsonable(value) == expected


def test_a_label_studio_task_of_a_pick_without_a_score_is_strict_json():
    backend = LabelStudioBackend.__new__(LabelStudioBackend)  # no server: only the payload
    backend.kind, backend.text_field = "tabular_classification", "text"
    row = {
        "id": "p1",
        "round": 2,
        "rank": 3,
        "score": np.nan,
        "prediction": "pos",
        "prediction_score": np.float64("nan"),
        "x1": np.float64("inf"),
        "text": "a",
    }
    task = backend._task(row, 5, "v1")
    json.dumps(task, allow_nan=False)  # raises on NaN / Infinity
    assert task["data"]["lw_score"] is None and task["data"]["lw_rank"] == 3
    assert task["data"]["row"]["x1"] is None
    assert task["predictions"][0]["score"] == pytest.approx(2 / 5)  # the serving key: rank


def test_a_manifest_stores_missing_scores_as_null_not_nan(tmp_path):
    import pyarrow.parquet as pq

    settings = Settings.model_validate({"project": {"data_dir": str(tmp_path / "d")}})
    path = store.write_manifest(
        settings, 1, ["a", "b", "c"], [0.5, float("nan"), float("inf")], strategy="hybrid"
    )
    column = pq.read_table(path).column("score")
    assert column.null_count == 2 and column.to_pylist() == [0.5, None, None]


def test_gold_items_keep_the_batch_order_when_no_pick_has_a_score():
    batch = _batch(6, np.nan).sample(frac=1.0, random_state=1)  # arrival order must not matter
    gold = pd.DataFrame({"id": [f"g{i}" for i in range(5)], "label": "x", "text": "gold"})
    mixed = mix_gold(batch, gold, fraction=0.25, random_state=0)
    assert mixed["gold"].sum() == 2 and mixed["rank"].tolist() == list(range(1, 9))
    assert mixed.loc[~mixed["gold"], "id"].tolist() == [f"p{i}" for i in range(6)]


def test_a_gold_item_takes_the_score_of_the_pick_it_displaces():
    scores = np.linspace(0.9, 0.4, 6)
    mixed = mix_gold(_batch(6, scores), pd.DataFrame({"id": ["g0"]}), 0.5, random_state=3)
    at = int(np.flatnonzero(mixed["gold"].to_numpy())[0])
    real = mixed.loc[~mixed["gold"], "score"].to_numpy()
    assert np.all(np.diff(real) < 0)  # the picks stay in score order
    assert mixed["score"].iloc[at] == real[min(at, len(real) - 1)]


def test_finite_metrics_drops_nan_infinity_and_none():
    assert finite_metrics({"a": 1, "b": np.nan, "c": np.inf, "d": None, "e": "x"}) == {"a": 1.0}
