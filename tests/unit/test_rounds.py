"""Round state and the dedup of collected annotations (no Prefect, no MLflow)."""

from __future__ import annotations

import pandas as pd
import pytest

from tasks import rounds
from tasks.data import store
from tasks.settings import Settings

pytestmark = pytest.mark.unit


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings.model_validate(
        {"project": {"work_dir": str(tmp_path / "w"), "data_dir": str(tmp_path / "d")}}
    )


def _annotations(rows):
    return pd.DataFrame(
        [
            (i, lab, who, r, pd.Timestamp("2026-01-01", tz="UTC"), src)
            for i, lab, who, r, src in rows
        ],
        columns=list(store.LABEL_COLUMNS),
    )


def test_new_annotations_drops_what_the_label_log_already_holds(settings):
    store.append_labels(settings, _annotations([("a", "x", "ann1", 1, "simulated")]))
    collected = _annotations(
        [
            ("a", "x", "ann1", 1, "simulated"),  # already stored
            ("a", "y", "ann2", 1, "simulated"),  # same item, another annotator
            ("b", "x", "ann1", 1, "simulated"),
            ("b", "x", "ann1", 1, "simulated"),  # collected twice in one poll
            ("a", "x", "ann1", 2, "simulated"),  # same annotator, a later round
        ]
    )
    fresh = rounds.new_annotations(settings, collected)
    assert list(zip(fresh["id"], fresh["annotator"], fresh["round"], strict=True)) == [
        ("a", "ann2", 1),
        ("b", "ann1", 1),
        ("a", "ann1", 2),
    ]


def test_round_state_survives_a_reload_and_marks_steps(settings):
    state = rounds.load_round(settings, 3)
    assert state.id == "round-0003" and not state.steps
    rounds._mark(settings, state, "selected", n_selected=5)
    again = rounds.load_round(settings, 3)
    assert again.done("selected") and not again.done("dispatched")
    assert again.info["n_selected"] == 5
    assert rounds.unfinished_round(settings) == 3 and rounds.next_round(settings) == 4


def test_several_annotators_per_item_are_aggregated_for_training(settings):
    store.append_labels(
        settings,
        _annotations(
            [
                ("a", "x", "ann1", 1, "simulated"),
                ("a", "x", "ann2", 1, "simulated"),
                ("a", "y", "ann3", 1, "simulated"),
                ("b", "y", "ann1", 1, "simulated"),
            ]
        ),
    )
    settings.annotation.aggregation = "majority"
    labels = rounds.training_labels(settings).set_index("id")["label"].to_dict()
    assert labels == {"a": "x", "b": "y"}
