"""Relabel or label new (ActiveLab): the scores, the merged queue and its cap, and a relabel pick
answered by one more annotator in a round (dispatch and collect, simulated backend)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from strategies import relabel
from tasks.annotation.simulated import SimulatedAnnotator, SimulatedBackend
from tasks.data import store
from tasks.loop import labeling, rounds, training_data
from tasks.loop import relabel as loop_relabel
from tasks.loop.rounds import RoundError
from tasks.settings import Settings

pytestmark = pytest.mark.unit


# -- the pure scores ----------------------------------------------------------------------------


def test_source_weight_is_one_minus_the_error_relative_to_the_baseline():
    assert relabel.source_weight(0.9, 0.5) == pytest.approx(0.8)
    assert relabel.source_weight(1.0, 0.5) == pytest.approx(1.0)
    assert relabel.source_weight(0.4, 0.5) == relabel.MIN_WEIGHT  # worse than the common class


def test_weighted_votes_count_each_answer_with_its_annotators_weight():
    counts = np.array([[[1, 0], [0, 1]], [[1, 0], [1, 0]]])  # 2 items, 2 annotators, 2 classes
    votes = relabel.weighted_votes(counts, np.array([0.8, 0.2]))
    np.testing.assert_allclose(votes, [[0.8, 0.2], [1.0, 0.0]])


def test_consensus_wrong_by_hand():
    votes = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]])
    probas = np.array([[0.8, 0.2], [0.8, 0.2], [0.8, 0.2]])
    wrong = relabel.consensus_wrong(votes, probas, model_weight=1.0, prior_weight=1.0)
    # q = (w_M p[c] + V[c] + w_bar / K) / (w_M + sum V + w_bar)
    np.testing.assert_allclose(wrong, [1 - 2.3 / 3, 1 - 1.7 / 3, 1 - 3.3 / 4])
    assert wrong[1] > wrong[0] > wrong[2]  # the model disagrees; one vote; two agreeing votes
    given_consensus = relabel.consensus_wrong(
        votes, probas, np.array([1, 1, 0]), model_weight=1.0, prior_weight=1.0
    )
    assert given_consensus[0] == pytest.approx(1 - (0.2 + 0.0 + 0.5) / 3)


def test_new_item_scores_by_hand():
    probas = np.array([[0.8, 0.2], [0.5, 0.5]])
    scores = relabel.new_item_scores(probas, model_weight=1.0, prior_weight=1.0)
    np.testing.assert_allclose(scores, [1 - 1.3 / 2, 0.5])


def test_merge_queues_by_hand():
    new, old = [0.9, 0.5, 0.3, 0.1], [0.6, 0.95, 0.2]

    def picks(share):
        kinds, index = relabel.merge_queues(np.array(new), np.array(old), 4, share)
        return [("R" if k else "N") + str(i) for k, i in zip(kinds, index, strict=True)]

    assert picks(0.5) == ["R1", "N0", "R0", "N1"]  # cap 2
    assert picks(0.25) == ["R1", "N0", "N1", "N2"]  # cap 1
    assert picks(0.0) == ["N0", "N1", "N2", "N3"]
    assert relabel.relabel_cap(100, 0.29) == 29 and relabel.relabel_cap(7, 0.2) == 1


scores = st.lists(st.floats(0.0, 1.0), max_size=15)


@given(scores, scores, st.integers(0, 20), st.floats(0.0, 1.0))
@settings(max_examples=200, deadline=None)
def test_the_cap_holds_and_no_share_is_the_plain_ranking(new, old, batch, share):
    new = np.sort(np.array(new))[::-1]
    old = np.array(old)
    kinds, index = relabel.merge_queues(new, old, batch, share)
    cap = relabel.relabel_cap(batch, share)
    assert kinds.sum() <= cap <= share * batch + 1e-6
    assert len(kinds) == min(batch, len(new) + min(cap, len(old)))
    assert len(set(index[kinds])) == kinds.sum() and len(set(index[~kinds])) == (~kinds).sum()
    chosen = np.sort(np.concatenate([old[index[kinds]], new[index[~kinds]]]))
    union = sorted([(s, True) for s in old] + [(s, False) for s in new], key=lambda p: -p[0])
    best, taken = [], 0  # brute force: the top of both kinds, relabels while under the cap
    for score, again in union:
        if len(best) < batch and (not again or taken < cap):
            best.append(score)
            taken += again
    np.testing.assert_allclose(chosen, np.sort(best))
    plain_kinds, plain = relabel.merge_queues(new, old, batch, 0.0)
    assert not plain_kinds.any() and plain.tolist() == list(range(min(batch, len(new))))


# -- scoring the labels of a round -------------------------------------------------------------


def test_score_labeled_puts_a_weak_single_vote_the_model_contradicts_first():
    answers = pd.DataFrame(
        [
            ("i0", "ann1", "a", 1),
            ("i0", "ann2", "a", 1),
            ("i1", "ann1", "b", 1),
            ("i2", "ann2", "a", 1),  # the model says b
            ("i3", "ann1", "b", 1),
        ],
        columns=["id", "annotator", "label", "round"],
    )
    labels = pd.Series(["a", "b", "a", "b"], index=["i0", "i1", "i2", "i3"])
    probas = np.array([[0.9, 0.1], [0.2, 0.8], [0.1, 0.9], [0.3, 0.7]])
    estimated = pd.Series({"ann1": 0.9, "ann2": 0.7})
    judged = loop_relabel.score_labeled(answers, labels, probas, ["a", "b"], estimated)
    assert judged.wrong.argmax() == 2 and judged.wrong.argmin() == 0
    # the model agrees with 3 of 4 consensus labels; baseline 0.5; 5 answers on 4 items
    assert judged.model_weight == pytest.approx(0.5 * np.sqrt(5 / 4))
    # model agreement 1 and 1/2, one answer each on a several-answered item (SHRINK = 20)
    accuracy = np.array([(0.9 + 20 * 1.0) / 21, (0.7 + 20 * 0.5) / 21])
    w1, w2 = 1 - (1 - accuracy) / 0.5
    assert judged.prior_weight == pytest.approx((w1 + w2) / 2)
    w_m, w_bar = judged.model_weight, judged.prior_weight
    assert judged.wrong[2] == pytest.approx(1 - (w_m * 0.1 + w2 + w_bar / 2) / (w_m + w2 + w_bar))
    new = judged.new_items(np.array([[0.5, 0.5]]))
    assert new[0] == pytest.approx(0.5)


def test_annotator_accuracy_is_model_agreement_moved_towards_dawid_skene():
    answers = pd.DataFrame(
        {
            "id": ["i0", "i1", "i2", "i3", "i3"],
            "annotator": ["x", "y", "y", "x", "y"],
            "label": ["a", "a", "b", "a", "a"],
        }
    )
    predicted = pd.Series(["a", "b", "b", "b"], index=["i0", "i1", "i2", "i3"])
    alone = loop_relabel.annotator_accuracy(answers, predicted, None)
    assert alone.to_dict() == pytest.approx({"x": 1 / 2, "y": 1 / 3})
    both = loop_relabel.annotator_accuracy(answers, predicted, pd.Series({"x": 0.8}))
    assert both.to_dict() == pytest.approx({"x": (0.8 + 20 * 0.5) / 21, "y": 1 / 3})


def test_candidates_are_loop_items_below_max_annotators():
    answers = pd.DataFrame(
        [("seed", "oracle", 0), ("one", "ann1", 1), ("two", "ann1", 1), ("two", "ann2", 2)],
        columns=["id", "annotator", "round"],
    )
    assert loop_relabel.candidates(answers, 2) == {"one"}
    assert loop_relabel.candidates(answers, 3) == {"one", "two"}


# -- a round: the relabel pick goes to one more annotator ---------------------------------------

POOL_IDS = ["p0", "p1", "p2", "p3", "p4"]


@pytest.fixture
def crowd(make_settings) -> Settings:
    settings = make_settings(
        data={"classes": ["a", "b"]},
        annotation={"aggregation": "majority", "relabel_share": 0.5, "max_annotators": 3},
        loop={"quorum": 1.0, "wait_seconds": 0},
    )
    now = pd.Timestamp("2026-01-01", tz="UTC")
    pool = pd.DataFrame({"id": POOL_IDS, "ingest_batch": 1, "first_seen": now, "x": 0.5})
    store.write_parquet_atomic(pool, store.data_paths(settings).pool)
    return settings


def backend(settings: Settings, *names: str) -> SimulatedBackend:
    """Truth ``a`` everywhere; ``liar`` always answers ``b``."""
    people = [SimulatedAnnotator(n, adversarial=n == "liar") for n in names]
    return SimulatedBackend(
        truth=dict.fromkeys(POOL_IDS, "a"),
        classes=["a", "b"],
        state_file=settings.project.work_dir / "annotation" / "simulated.parquet",
        annotators=people,
        seed=3,
    )


def test_a_relabel_pick_is_answered_by_another_annotator_and_the_consensus_follows(crowd):
    store.write_manifest(crowd, 1, POOL_IDS[:4], [1.0] * 4, strategy="margin")
    labeling.dispatch(crowd, 1, backend(crowd, "liar"))
    assert labeling.collect(crowd, 1, backend(crowd, "liar")).done("collected")
    assert set(training_data.training_labels(crowd)["label"]) == {"b"}  # the liar's answers

    store.write_manifest(
        crowd, 2, ["p4", "p0"], [0.4, 0.9], strategy="margin", source=["strategy", "relabel"]
    )
    everyone = backend(crowd, "liar", "ann1", "ann2")
    state = labeling.dispatch(crowd, 2, everyone)
    assert state.info["more_requested"] == {"p0": 1} and state.info["relabel_unserved"] == []
    assert state.info["n_dispatched"] == 2 and state.info["newly_sent"] == 1
    done = labeling.collect(crowd, 2, everyone)
    assert done.done("collected")
    answers = store.current_answers(store.read_labels(crowd)).groupby("id")["annotator"]
    # p0: liar, then an honest annotator (tie 1-1, agreement 0.5 < 0.7), then the other honest
    assert sorted(answers.get_group("p0")) == ["ann1", "ann2", "liar"]
    labels = training_data.consensus(crowd).labels.set_index("id")
    assert labels.loc["p0", "label"] == "a" and labels.loc["p0", "n_votes"] == 3
    assert labels.loc[["p1", "p2", "p3"], "label"].tolist() == ["b", "b", "b"]  # not asked
    assert labeling.annotations_spent(crowd, set(POOL_IDS)) == 7  # 4 + p4 + 2 more on p0


def test_the_round_waits_for_the_relabel_answer(crowd):
    crowd.annotation.agreement_threshold = 0.0  # a 1-1 tie asks nobody else
    store.write_manifest(crowd, 1, POOL_IDS[:2], [1.0] * 2, strategy="margin")
    labeling.dispatch(crowd, 1, backend(crowd, "liar"))
    labeling.collect(crowd, 1, backend(crowd, "liar"))
    store.write_manifest(crowd, 2, ["p0"], [0.9], strategy="margin", source=["relabel"])

    class Held(SimulatedBackend):
        def request_more(self, ids):
            return list(ids)  # asked; the answer comes later

    held = Held(**{**backend(crowd, "liar", "ann1").__dict__})
    labeling.dispatch(crowd, 2, held)
    waiting = labeling.collect(crowd, 2, held)
    assert waiting.status == "waiting" and waiting.info["n_labeled"] == 0
    SimulatedBackend.request_more(held, ["p0"])
    assert labeling.collect(crowd, 2, held).done("collected")


def test_a_backend_that_cannot_ask_again_fails_clearly(crowd):
    store.write_manifest(crowd, 1, ["p0"], [0.9], strategy="margin", source=["relabel"])

    class OneShot:
        name = "files"

        def dispatch(self, batch, round_):
            return list(batch["id"])

    with pytest.raises(RoundError, match="relabel_share"):
        labeling.dispatch(crowd, 1, OneShot())
    crowd.annotation.backend = "files"
    with pytest.raises(RoundError, match="files backend"):
        labeling.relabels_wanted(crowd, object())
    crowd.annotation.relabel_share = 0.0
    assert not labeling.relabels_wanted(crowd, object())


def test_relabel_share_is_a_share(make_settings):
    assert make_settings().annotation.relabel_share == 0.0
    with pytest.raises(ValidationError):
        make_settings(annotation={"relabel_share": 1.5})


def test_dispatch_run_again_asks_nobody_twice(crowd):
    crowd.annotation.agreement_threshold = 0.0
    store.write_manifest(crowd, 1, ["p0"], [1.0], strategy="margin")
    labeling.dispatch(crowd, 1, backend(crowd, "liar"))
    labeling.collect(crowd, 1, backend(crowd, "liar"))
    store.write_manifest(crowd, 2, ["p0"], [0.9], strategy="margin", source=["relabel"])
    everyone = backend(crowd, "liar", "ann1", "ann2")
    state = labeling.dispatch.__wrapped__(crowd, rounds.load_round(crowd, 2), everyone)
    again = labeling.dispatch.__wrapped__(crowd, rounds.load_round(crowd, 2), everyone)
    assert state["more_requested"] == again["more_requested"] == {"p0": 1}
    answers = pd.read_parquet(everyone.state_file)
    assert (answers["id"] == "p0").sum() == 2  # the liar's and one more, not two more


def test_the_label_budget_rule_counts_annotations_when_a_round_records_them():
    from tasks.loop.stopping import RoundRecord, should_stop
    from tasks.settings.loop import LoopSettings

    loop = LoopSettings(label_budget=40)
    items = [RoundRecord(1, n_labels=30, score=0.5, n_annotations=40)]
    assert should_stop(items, loop, metric="accuracy").rule == "label_budget"
    older = [RoundRecord(1, n_labels=30, score=0.5)]  # a round from before: its items
    assert not should_stop(older, loop, metric="accuracy").stop
