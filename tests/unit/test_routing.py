"""annotation.routing: quality: hard items go to the annotators with the best record, easy ones
to the rest (hand-computed), the record comes from gold once there is enough of it, the
simulated annotators answer only what they were routed, and Label Studio Community is refused
with the reason."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.annotation.simulated import SimulatedAnnotator, SimulatedBackend
from tasks.loop.rounds import RoundError
from tasks.loop.routing import routes, with_routes

pytestmark = pytest.mark.unit


def _batch(scores):
    n = len(scores)
    return pd.DataFrame(
        {"id": [f"i{k}" for k in range(n)], "round": 1, "rank": range(1, n + 1), "score": scores}
    )


def test_the_harder_half_goes_to_the_better_half_of_the_annotators():
    record = pd.Series({"a": 0.95, "b": 0.9, "c": 0.6})  # d has no record: the median, 0.9
    batch = _batch([0.2, 0.9, np.nan, 0.7, 0.1])
    got = routes(batch, record, ["a", "b", "c", "d"]).tolist()
    # scored 0.9 and 0.7 are the harder half (2 of 4 scored); a, b (then d, c) by record
    assert got == ["d|c", "a|b", "a|b|c|d", "a|b", "d|c"]


def test_one_annotator_or_none_scored_routes_nothing():
    batch = _batch([0.5, 0.4])
    assert routes(batch, pd.Series(dtype=float), ["solo"]).tolist() == ["solo", "solo"]
    unscored = _batch([np.nan, np.nan])
    assert routes(unscored, pd.Series({"a": 1.0}), ["a", "b"]).tolist() == ["a|b", "a|b"]


def test_the_record_is_gold_accuracy_once_there_is_enough_gold(make_settings):
    from tasks.loop.rounds import RoundState, save_round
    from tasks.loop.routing import annotator_record

    settings = make_settings()
    stats = [
        {"annotator": "a", "gold_n": 6, "gold_accuracy": 0.5, "ds_accuracy": 0.9},
        {"annotator": "b", "gold_n": 2, "gold_accuracy": 1.0, "ds_accuracy": 0.7},
        {"annotator": "c", "gold_n": 0, "majority_agreement": 0.8},
    ]
    save_round(settings, RoundState(round=1, id="round-0001", info={"annotator_stats": stats}))
    record = annotator_record(settings, 2)
    assert record.to_dict() == {"a": 0.5, "b": 0.7, "c": 0.8}
    assert annotator_record(settings, 1).empty  # only earlier rounds count


def test_simulated_annotators_answer_only_what_they_were_routed(tmp_path):
    people = [SimulatedAnnotator(name) for name in ("good", "fine", "weak")]
    truth = {f"i{k}": "x" for k in range(30)}
    backend = SimulatedBackend(truth, ["x", "y"], tmp_path / "state.parquet", people)
    batch = _batch(list(np.linspace(0, 1, 30)))
    batch["route"] = ["good"] * 15 + ["fine|weak"] * 15
    backend.dispatch(batch, 1)
    answers = backend.collect(1).set_index("id")["annotator"]
    assert set(answers[[f"i{k}" for k in range(15)]]) == {"good"}
    assert set(answers[[f"i{k}" for k in range(15, 30)]]) == {"fine", "weak"}


def test_label_studio_community_cannot_be_routed(make_settings):
    class Community:
        name = "label_studio"

    with pytest.raises(RoundError, match="Label Studio Community does not support"):
        with_routes(make_settings(), 1, _batch([0.5]), Community())


def test_a_round_dispatch_routes_by_the_last_rounds_record(make_settings):
    from tasks.data import store
    from tasks.loop import labeling
    from tasks.loop.rounds import RoundState, save_round

    settings = make_settings(data={"classes": ["x", "y"]}, annotation={"routing": "quality"})
    ids = [f"i{k}" for k in range(8)]
    now = pd.Timestamp("2026-01-01", tz="UTC")
    pool = pd.DataFrame({"id": ids, "ingest_batch": 1, "first_seen": now, "v": 0.5})
    store.write_parquet_atomic(pool, store.data_paths(settings).pool)
    stats = [{"annotator": n, "ds_accuracy": a} for n, a in (("sure", 0.95), ("weak", 0.6))]
    save_round(settings, RoundState(round=1, id="round-0001", info={"annotator_stats": stats}))
    scores = [0.9, 0.1, 0.8, 0.2, 0.7, 0.3, 0.6, 0.4]  # i0, i2, i4, i6 are the hard half
    store.write_manifest(settings, 2, ids, scores, strategy="margin")
    people = [SimulatedAnnotator("weak"), SimulatedAnnotator("sure")]
    backend = SimulatedBackend(
        dict.fromkeys(ids, "x"), ["x", "y"], settings.project.work_dir / "s.parquet", people
    )
    labeling.dispatch(settings, 2, backend)
    who = backend.collect(2).set_index("id")["annotator"]
    assert who[["i0", "i2", "i4", "i6"]].tolist() == ["sure"] * 4
    assert who[["i1", "i3", "i5", "i7"]].tolist() == ["weak"] * 4
