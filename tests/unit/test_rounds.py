"""Round state, the dedup of collected annotations and annotation quality control in dispatch
and collect (no Prefect, no MLflow)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import pytest

from tasks.annotation.simulated import SimulatedAnnotator, SimulatedBackend
from tasks.data import labels as label_log
from tasks.data import store
from tasks.loop import labeling, quality, rounds, training_data
from tasks.settings import Settings

pytestmark = pytest.mark.unit


@pytest.fixture
def settings(make_settings) -> Settings:
    return make_settings()


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
            ("a", "y", "ann1", 2, "simulated"),  # same annotator, a changed answer
        ]
    )
    fresh = label_log.new_annotations(settings, collected)
    assert list(zip(fresh["id"], fresh["annotator"], fresh["round"], strict=True)) == [
        ("a", "ann2", 1),
        ("b", "ann1", 1),
        ("a", "ann1", 2),
    ]


def test_round_state_survives_a_reload_and_marks_steps(settings):
    state = rounds.load_round(settings, 3)
    assert state.id == "round-0003" and not state.steps
    rounds.mark(settings, state, "selected", n_selected=5)
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
    labels = training_data.training_labels(settings).set_index("id")["label"].to_dict()
    assert labels == {"a": "x", "b": "y"}


def test_dawid_skene_is_fit_on_items_with_several_answers_and_single_answers_are_kept(settings):
    # fit on all of these rows, EM relabels most single answers (2 -> 1, 3 -> 0, 4 -> 1)
    seed = [(f"s{i}", str(i % 5), "oracle", 0, "simulated") for i in range(10)]
    crowd = [
        (f"m{i}", label, who, 1, "simulated")
        for i in range(6)
        for who, label in (("ann1", str(i % 2)), ("ann2", str(i % 2)), ("liar", str(1 - i % 2)))
    ]
    store.append_labels(settings, _annotations(seed + crowd))
    labels = training_data.training_labels(settings).set_index("id")
    assert labels["label"].to_dict() == {i: lab for i, lab, *_ in seed} | {
        f"m{i}": str(i % 2) for i in range(6)
    }
    assert labels.loc["m0", "n_votes"] == 3 and labels.loc["s0", "n_votes"] == 1


# ---------------------------------------------------------------- annotation quality control

POOL_IDS = [f"p{i}" for i in range(8)]
HOLDOUT_IDS = [f"h{i}" for i in range(10)]


@pytest.fixture
def crowd_settings(make_settings) -> Settings:
    """Eight pool items (round 1's manifest), ten holdout rows, two classes, k=3 annotators."""
    settings = make_settings(
        data={"classes": ["a", "b"]},
        annotation={
            "overlap_share": 1.0,
            "annotators_per_item": 3,
            "gold_fraction": 0.2,
            "max_annotators": 4,
        },
    )
    paths = store.data_paths(settings)
    now = pd.Timestamp("2026-01-01", tz="UTC")
    pool = pd.DataFrame({"id": POOL_IDS, "ingest_batch": 1, "first_seen": now, "x": 0.5})
    store.write_parquet_atomic(pool, paths.pool)
    holdout = pd.DataFrame(
        {"id": HOLDOUT_IDS, "ingest_batch": 1, "first_seen": now, "x": 0.5, "label": "b"}
    )
    store.write_parquet_atomic(holdout, paths.holdout)
    store.write_manifest(settings, 1, POOL_IDS, [1.0] * len(POOL_IDS), strategy="margin")
    return settings


@dataclass
class HeldRequests(SimulatedBackend):
    """Simulated annotators whose extra answers (``request_more``) come only on ``release``."""

    requests: list[list[str]] = field(default_factory=list)

    def request_more(self, ids):
        self.requests.append(list(ids))
        return list(ids)

    def release(self) -> list[str]:
        return SimulatedBackend.request_more(self, [i for ids in self.requests for i in ids])


def _crowd(settings, backend_class=SimulatedBackend, names=("ann1", "ann2", "ann3")):
    """k=3 of: the honest ``names`` and one adversarial annotator (always the other class)."""
    truth = {i: "a" for i in POOL_IDS} | {i: "b" for i in HOLDOUT_IDS}
    honest = [SimulatedAnnotator(n) for n in names]
    return backend_class(
        truth=truth,
        classes=["a", "b"],
        state_file=settings.project.work_dir / "annotation" / "simulated.parquet",
        annotators=[*honest[:2], SimulatedAnnotator("liar", adversarial=True), *honest[2:]],
        annotators_per_item=3,
        seed=1,
    )


def _answers(backend) -> pd.DataFrame:
    return pd.read_parquet(backend.state_file)


class Recorder:
    name = "recorder"

    def __init__(self):
        self.batches: list[pd.DataFrame] = []

    def dispatch(self, batch, round_):
        self.batches.append(batch)
        return list(batch["id"])


def test_dispatch_mixes_unused_holdout_rows_in_as_gold_and_records_them(crowd_settings):
    backend = Recorder()
    state = labeling.dispatch(crowd_settings, 1, backend)
    gold = state.info["gold_ids"]
    assert len(gold) == 2 and set(gold) <= set(HOLDOUT_IDS)  # 0.2 of the 10 items sent
    sent = backend.batches[0]
    assert set(sent["id"]) == set(POOL_IDS) | set(gold)
    assert not {"gold", "label"} & set(sent.columns)  # nothing tells an annotator it is a test
    assert list(store.read_manifest(crowd_settings, 1)["id"]) == POOL_IDS
    assert state.info["n_dispatched"] == len(POOL_IDS)

    store.write_manifest(crowd_settings, 2, POOL_IDS[:4], [1.0] * 4, strategy="margin")
    again = labeling.dispatch(crowd_settings, 2, backend).info["gold_ids"]
    assert again and not set(again) & set(gold)  # a gold item is used in one round only


def test_dispatch_without_gold_fraction_sends_the_manifest_only(crowd_settings):
    crowd_settings.annotation.gold_fraction = 0.0
    backend = Recorder()
    assert labeling.dispatch(crowd_settings, 1, backend).info["gold_ids"] == []
    assert list(backend.batches[0]["id"]) == POOL_IDS


def test_low_agreement_items_get_one_more_annotator_and_the_round_waits_for_them(
    crowd_settings,
):
    backend = _crowd(crowd_settings, HeldRequests)
    state = labeling.dispatch(crowd_settings, 1, backend)
    first = _answers(backend)
    liar_items = set(first.loc[first["annotator"] == "liar", "id"]) & set(POOL_IDS)
    assert liar_items  # agreement 2/3 < 0.7 on each of them

    waiting = labeling.collect(crowd_settings, 1, backend)
    assert waiting.status == "waiting" and not waiting.done("collected")
    assert set(waiting.info["more_requested"]) == liar_items
    assert waiting.info["n_labeled"] == len(POOL_IDS) - len(liar_items)  # pending: not labeled
    assert labeling.collect(crowd_settings, 1, backend).status == "waiting"
    assert sorted(i for ids in backend.requests for i in ids) == sorted(liar_items)  # asked once

    backend.release()
    done = labeling.collect(crowd_settings, 1, backend)
    assert done.done("collected") and done.info["annotation_flagged"] == []  # 3 of 4 agree now
    per_item = _answers(backend).groupby("id").size()
    assert {i for i in POOL_IDS if per_item[i] == 4} == liar_items

    log = store.read_labels(crowd_settings)
    assert not set(log["id"]) & set(HOLDOUT_IDS)  # gold answers never reach the label log
    gold = quality.gold_answers(crowd_settings)
    assert set(gold["id"]) == set(state.info["gold_ids"]) and len(gold) == 6
    labels = training_data.training_labels(crowd_settings)
    assert sorted(labels["id"]) == sorted(POOL_IDS) and set(labels["label"]) == {"a"}


def test_low_agreement_items_at_max_annotators_are_flagged_not_sent_again(crowd_settings):
    crowd_settings.annotation.max_annotators = 3
    backend = _crowd(crowd_settings, HeldRequests)
    labeling.dispatch(crowd_settings, 1, backend)
    first = _answers(backend)
    liar_items = set(first.loc[first["annotator"] == "liar", "id"]) & set(POOL_IDS)
    state = labeling.collect(crowd_settings, 1, backend)
    assert state.done("collected") and backend.requests == []
    assert set(state.info["annotation_flagged"]) == liar_items


def test_low_agreement_items_nobody_is_left_to_annotate_are_flagged(crowd_settings):
    crowd_settings.annotation.max_annotators = 5
    backend = _crowd(crowd_settings, names=("ann1", "ann2"))  # all 3 annotators see every item
    labeling.dispatch(crowd_settings, 1, backend)
    state = labeling.collect(crowd_settings, 1, backend)
    assert state.done("collected") and state.info["more_requested"] == {}
    assert set(state.info["annotation_flagged"]) == set(POOL_IDS)
    assert _answers(backend).groupby("id").size().max() == 3
