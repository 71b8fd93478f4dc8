"""One rule for a second answer by the same annotator on an item, in every path: the label log
keeps every answer, an exact repeat is not appended again, and a changed answer supersedes the
annotator's earlier one (training labels, votes, agreement, statistics, collect)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tasks.annotation import store_annotations
from tasks.annotation.files import FilesBackend
from tasks.annotation.label_studio import LabelStudioBackend
from tasks.data import store
from tasks.data.labels import collect_labels, read_label_file, unseen
from tasks.data.profile import resolve
from tasks.loop import labeling, quality, rounds, training_data
from tasks.settings import Settings

pytestmark = pytest.mark.unit

POOL_IDS = ["p0", "p1", "p2", "p3"]


def at(hour: int) -> pd.Timestamp:
    return pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(hours=hour)


@pytest.fixture
def settings(make_settings) -> Settings:
    """Four pool items (round 1's manifest), classes a and b, majority vote, no waiting."""
    settings = make_settings(
        data={"classes": ["a", "b"]},
        annotation={"aggregation": "majority", "gold_fraction": 0.0},
        loop={"quorum": 1.0, "wait_seconds": 0},
    )
    pool = pd.DataFrame({"id": POOL_IDS, "ingest_batch": 1, "first_seen": at(0), "x": 0.5})
    store.write_parquet_atomic(pool, store.data_paths(settings).pool)
    store.write_manifest(settings, 1, POOL_IDS, [1.0] * len(POOL_IDS), strategy="margin")
    return settings


def answers(*rows: tuple[str, str, str, int]) -> pd.DataFrame:
    """(id, label, annotator, hour) rows as a backend collects them in round 1."""
    return pd.DataFrame(
        [(i, label, who, 1, at(hour), "human") for i, label, who, hour in rows],
        columns=list(store.LABEL_COLUMNS),
    )


def training(settings: Settings) -> dict[str, str]:
    return training_data.training_labels(settings).set_index("id")["label"].to_dict()


# -- the rule -----------------------------------------------------------------------------------


def test_a_changed_answer_in_the_same_round_supersedes_and_both_rows_are_kept(settings):
    assert len(store_annotations(answers(("p0", "a", "ann", 1)), settings, round_=1)) == 1
    assert len(store_annotations(answers(("p0", "b", "ann", 2)), settings, round_=1)) == 1
    log = store.read_labels(settings)
    assert log["label"].tolist() == ["a", "b"]  # both kept, in the order given
    assert training(settings) == {"p0": "b"}
    current = store.current_answers(log)
    assert current[["id", "label", "annotator"]].values.tolist() == [["p0", "b", "ann"]]


def test_latest_is_by_answer_time_not_by_arrival(settings):
    store_annotations(answers(("p0", "b", "ann", 5)), settings, round_=1)
    late = store_annotations(answers(("p0", "a", "ann", 2)), settings, round_=1)
    assert len(late) == 1 and len(store.read_labels(settings)) == 2  # kept: nothing is lost
    assert training(settings) == {"p0": "b"}  # given earlier: it supersedes nothing


def test_equal_times_go_to_the_later_row_of_the_log(settings):
    store.append_labels(settings, answers(("p0", "a", "ann", 1), ("p0", "b", "ann", 1)))
    assert training(settings) == {"p0": "b"}


def test_collecting_the_same_answers_again_appends_nothing(settings):
    first = answers(("p0", "a", "ann", 1), ("p1", "b", "ann", 1))
    store_annotations(first, settings, round_=1)
    changed = answers(("p0", "a", "ann", 1), ("p1", "a", "ann", 3))
    assert len(store_annotations(changed, settings, round_=1)) == 1
    before = store.read_labels(settings)
    assert len(store_annotations(changed, settings, round_=1)) == 0
    assert len(store_annotations(first, settings, round_=1)) == 0  # a superseded one, again
    pd.testing.assert_frame_equal(store.read_labels(settings), before)
    assert training(settings) == {"p0": "a", "p1": "a"}


def test_an_answer_changed_back_is_again_the_current_one(settings):
    for label, hour in (("a", 1), ("b", 2), ("a", 3)):
        assert len(store_annotations(answers(("p0", label, "ann", hour)), settings, round_=1))
    assert store.read_labels(settings)["label"].tolist() == ["a", "b", "a"]
    assert training(settings) == {"p0": "a"}


def test_a_backend_reporting_an_annotators_history_gives_the_latest(settings):
    history = answers(("p0", "a", "ann", 1), ("p0", "b", "ann", 2))
    fresh = unseen(history, store.read_labels(settings))
    assert fresh["label"].tolist() == ["b"]  # the label gate takes one answer per round
    store_annotations(history, settings, round_=1)
    assert training(settings) == {"p0": "b"}


def test_a_changed_vote_flips_the_majority_and_counts_once(settings):
    votes = answers(("p0", "a", "ann1", 1), ("p0", "a", "ann2", 1), ("p0", "b", "ann3", 1))
    store_annotations(votes, settings, round_=1)
    assert training(settings) == {"p0": "a"}
    store_annotations(answers(("p0", "b", "ann2", 2)), settings, round_=1)
    assert len(store.read_labels(settings)) == 4
    agreed = training_data.consensus(settings)
    row = agreed.labels.set_index("id").loc["p0"]
    # counting both of ann2's votes: a 2 - b 2, a tie that goes to a (listed first), 4 votes
    assert (row["label"], row["n_votes"]) == ("b", 3)
    assert row["agreement"] == pytest.approx(2 / 3)
    assert sorted(agreed.votes["annotator"]) == ["ann1", "ann2", "ann3"]


def test_annotator_statistics_count_the_current_answer_only(settings):
    votes = answers(("p0", "a", "ann1", 1), ("p0", "a", "ann2", 1), ("p0", "b", "ann3", 1))
    store_annotations(votes, settings, round_=1)
    store_annotations(answers(("p0", "b", "ann2", 2)), settings, round_=1)
    settings = resolve(settings)
    stats = quality.annotation_stats(settings, 1, training_data.consensus(settings))
    stats = stats.set_index("annotator")
    assert stats["n"].to_dict() == {"ann1": 1, "ann2": 1, "ann3": 1}
    assert stats["majority_agreement"].to_dict() == {"ann1": 0.0, "ann2": 1.0, "ann3": 1.0}


def test_agreement_review_counts_a_changed_vote_once(settings):
    settings = resolve(settings)
    settings.annotation.agreement_threshold = 0.9
    store_annotations(answers(("p0", "a", "ann1", 1), ("p0", "b", "ann2", 1)), settings, round_=1)
    store_annotations(answers(("p0", "a", "ann2", 2)), settings, round_=1)  # now they agree
    asked: list[list[str]] = []

    class Backend:
        def request_more(self, ids: list[str]) -> list[str]:
            asked.append(list(ids))
            return list(ids)

    state = rounds.load_round(settings, 1)
    assert quality.review_agreement(settings, state, Backend(), set(POOL_IDS)) == (0, set())
    assert asked == []


# -- the label file import path -----------------------------------------------------------------


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def import_file(path: Path, settings: Settings) -> int:
    """Rows the import of ``path`` appended to the label log."""
    before = len(store.read_labels(settings))
    collect_labels(read_label_file(path, settings), settings, round_=1, file=str(path))
    return len(store.read_labels(settings)) - before


def test_a_label_file_import_without_times_appends_changes_only(settings, tmp_path):
    first = write_csv(tmp_path / "one.csv", [{"id": "p0", "label": "a", "annotator": "ann"}])
    assert import_file(first, settings) == 1
    assert import_file(first, settings) == 0  # imported again after a crash
    second = write_csv(tmp_path / "two.csv", [{"id": "p0", "label": "b", "annotator": "ann"}])
    assert import_file(second, settings) == 1
    assert training(settings) == {"p0": "b"}
    assert import_file(second, settings) == 0
    assert import_file(first, settings) == 1  # no time: the file says "a" now
    assert store.read_labels(settings)["label"].tolist() == ["a", "b", "a"]
    assert training(settings) == {"p0": "a"}


def test_a_label_file_import_with_times_goes_by_them(settings, tmp_path):
    rows = [{"id": "p0", "label": "a", "annotator": "ann", "time": "2026-01-01T01:00:00Z"}]
    first = write_csv(tmp_path / "one.csv", rows)
    assert import_file(first, settings) == 1
    later = [{**rows[0], "label": "b", "time": "2026-01-01T02:00:00Z"}]
    second = write_csv(tmp_path / "two.csv", later)
    assert import_file(second, settings) == 1
    assert import_file(first, settings) == 0  # an exact repeat of a stored answer
    assert import_file(second, settings) == 0
    assert training(settings) == {"p0": "b"}


# -- collect, from the backends -----------------------------------------------------------------


def drop_answers(backend: FilesBackend, name: str, rows: list[tuple[str, str, int]]) -> None:
    """An answer file by annotator ``ann``: (id, label, hour) rows."""
    backend.inbox.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(
        [(i, label, "ann", at(hour).isoformat()) for i, label, hour in rows],
        columns=["id", "label", "annotator", "time"],
    )
    frame.to_csv(backend.inbox / name, index=False)


def test_collect_picks_up_a_changed_answer_once_from_the_files_backend(settings, tmp_path):
    backend = FilesBackend(tmp_path / "files", classes=["a", "b"])
    labeling.dispatch(settings, 1, backend)
    drop_answers(backend, "1.csv", [("p0", "a", 1), ("p1", "a", 1), ("p2", "b", 1)])
    assert labeling.collect(settings, 1, backend).status == "waiting"  # p3 has no answer
    drop_answers(backend, "2.csv", [("p0", "b", 2)])  # ann changes their answer on p0
    state = labeling.collect(settings, 1, backend)
    assert state.status == "waiting" and state.info["n_collected"] == 4
    assert training(settings) == {"p0": "b", "p1": "a", "p2": "b"}
    state = labeling.collect(settings, 1, backend)  # nothing changed: nothing collected
    assert state.info["n_collected"] == 4 and len(store.read_labels(settings)) == 4
    drop_answers(backend, "3.csv", [("p0", "a", 3), ("p3", "a", 3)])  # back to a, and p3
    state = labeling.collect(settings, 1, backend)
    assert state.done("collected") and state.info["labeled_fraction"] == 1.0
    log = store.read_labels(settings)
    assert log.loc[log["id"] == "p0", "label"].tolist() == ["a", "b", "a"]
    assert training(settings) == {"p0": "a", "p1": "a", "p2": "b", "p3": "a"}


class OfflineLabelStudio(LabelStudioBackend):
    """A Label Studio backend whose server answers with ``self.answers`` (no network)."""

    def __init__(self) -> None:
        super().__init__(url="http://ls.test", token="t", classes=["a", "b"])
        self.answers: list[dict[str, Any]] = []

    def tasks(self) -> list[Any]:
        data = {"lw_id": "p0", "lw_round": 1, "text": "a text"}
        return [{"id": 7, "data": data, "annotations": self.answers}]

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        return [{"id": 1, "username": "ann"}]

    def answer(self, label: str, updated: int | None = None) -> None:
        choice = {"from_name": "label", "type": "choices", "value": {"choices": [label]}}
        answer = {"id": 70, "result": [choice], "completed_by": 1, "created_at": at(1).isoformat()}
        if updated is not None:
            answer["updated_at"] = at(updated).isoformat()
        self.answers = [answer]


def test_an_annotation_edited_in_label_studio_is_a_new_answer(settings):
    backend = OfflineLabelStudio()
    backend.answer("a")
    assert len(store_annotations(backend.collect(1), settings, round_=1)) == 1
    backend.answer("b", updated=2)  # the annotator edits it: Label Studio sets updated_at
    assert backend.collect(1)["time"].tolist() == [at(2)]
    assert len(store_annotations(backend.collect(1), settings, round_=1)) == 1
    assert len(store_annotations(backend.collect(1), settings, round_=1)) == 0
    backend.answer("a", updated=3)
    assert len(store_annotations(backend.collect(1), settings, round_=1)) == 1
    assert store.read_labels(settings)["label"].tolist() == ["a", "b", "a"]
    assert training(settings) == {"p0": "a"}


def test_gold_answers_follow_the_same_rule(settings):
    quality.store_gold_answers(settings, answers(("h0", "a", "ann", 1)))
    assert quality.store_gold_answers(settings, answers(("h0", "a", "ann", 1))) == 0
    assert quality.store_gold_answers(settings, answers(("h0", "b", "ann", 2))) == 1
    gold = quality.gold_answers(settings)
    assert gold["label"].tolist() == ["a", "b"]
    assert store.current_answers(gold)["label"].tolist() == ["b"]
