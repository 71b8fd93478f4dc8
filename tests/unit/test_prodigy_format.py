"""The files backend in Prodigy's JSONL format: tasks out (``annotation.file_format: prodigy``),
Prodigy's answers (``prodigy db-out``) in, for classification (choice and binary) and NER.

Every answer file here is written by hand the way Prodigy writes it; the expected labels are
worked out by hand from Prodigy's documented meaning of ``accept``/``reject``/``ignore``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.annotation import make_backend
from tasks.annotation.files import AnnotationFileError, FilesBackend, input_hash
from tasks.annotation.spans import as_tag_answer
from tasks.settings import Settings

pytestmark = pytest.mark.unit

CLASSES = ["ham", "spam", "eggs"]
OPTIONS = [{"id": c, "text": c} for c in CLASSES]
NEW_YEAR = 1767225600  # 2026-01-01T00:00:00Z in unix seconds
TOKENS = ["Ada", "Lovelace", "visited", "Paris"]  # "Ada Lovelace visited Paris": 26 characters


def batch(ids, round_=1, **columns) -> pd.DataFrame:
    ids = list(ids)
    frame = pd.DataFrame(
        {
            "id": ids,
            "round": round_,
            "rank": range(1, len(ids) + 1),
            "score": np.linspace(1.0, 0.0, len(ids)) if len(ids) > 1 else [0.5],
        }
    )
    return frame.assign(**columns) if columns else frame.assign(text=[f"text of {i}" for i in ids])


def outbox(backend: FilesBackend) -> list[dict]:
    """Every task the backend wrote, in file order."""
    return [
        json.loads(line)
        for path in sorted(backend.outbox.glob("round-*"))
        for line in path.read_text(encoding="utf-8").splitlines()
    ]


def answer_file(backend: FilesBackend, records: list[dict], name: str = "db-out.jsonl") -> Path:
    path = backend.inbox / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def rows(collected: pd.DataFrame) -> list[tuple]:
    return [tuple(r) for r in collected[["id", "label", "annotator"]].itertuples(index=False)]


# -- tasks out ----------------------------------------------------------------------------------


def test_dispatch_writes_prodigy_choice_tasks_with_options_meta_and_pre_annotation(tmp_path):
    backend = FilesBackend(tmp_path, file_format="prodigy", classes=CLASSES)
    sent = batch(["p1", "p2"]).assign(prediction=["spam", None], prediction_score=[0.9, np.nan])
    assert backend.dispatch(sent, 1) == ["p1", "p2"]
    assert [p.name for p in backend.outbox.iterdir()] == ["round-0001-1.jsonl"]
    first, second = outbox(backend)
    assert first == {
        "text": "text of p1",
        "options": OPTIONS,
        "accept": ["spam"],  # the model's prediction, pre-selected
        "meta": {"id": "p1", "score": 1.0, "round": 1, "rank": 1},
        "_input_hash": first["_input_hash"],
        "_task_hash": first["_task_hash"],
    }
    assert "accept" not in second and second["meta"] == {
        "id": "p2",
        "score": 0.0,
        "round": 1,
        "rank": 2,
    }
    assert backend.dispatch(sent, 1) == []  # already sent: nothing written
    assert backend.dispatched()[["id", "round"]].values.tolist() == [["p1", 1], ["p2", 1]]


def test_prodigy_hashes_are_stable_ints_per_item(tmp_path):
    one = FilesBackend(tmp_path / "one", file_format="prodigy", classes=CLASSES)
    two = FilesBackend(tmp_path / "two", file_format="prodigy", classes=CLASSES)
    one.dispatch(batch(["p1", "p2"]), 1)
    two.dispatch(batch(["p2", "p1"]), 3)  # another round, another order, another directory
    by_id = {t["meta"]["id"]: t for t in outbox(one)}
    for task in outbox(two):
        same = by_id[task["meta"]["id"]]
        assert (task["_input_hash"], task["_task_hash"]) == (
            same["_input_hash"],
            same["_task_hash"],
        )
    hashes = [t["_input_hash"] for t in outbox(one)]
    assert len(set(hashes)) == 2 and all(-(2**31) <= h < 2**31 for h in hashes)
    assert hashes[0] == input_hash("p1")


def test_tabular_rows_become_readable_text_and_a_missing_score_is_null(tmp_path):
    backend = FilesBackend(tmp_path, file_format="prodigy", classes=CLASSES)
    rows_ = batch(["t1"], petal=[1.5], colour=["red"]).assign(score=[np.nan], model_version="v2")
    backend.dispatch(rows_.assign(prediction=["eggs"], prediction_score=[0.7]), 2)
    (task,) = outbox(backend)
    assert task["text"] == "petal: 1.5\ncolour: red"
    assert task["meta"] == {"id": "t1", "score": None, "round": 2, "rank": 1}
    assert task["accept"] == ["eggs"]
    assert '"score": null' in next(backend.outbox.glob("*.jsonl")).read_text()


def test_dispatch_writes_ner_tasks_with_tokens_and_predicted_spans(tmp_path):
    backend = FilesBackend(tmp_path, file_format="prodigy")  # no classes: NER from token lists
    tags = json.dumps(["B-PER", "I-PER", "O", "B-LOC"])
    backend.dispatch(batch(["n1"], text=[json.dumps(TOKENS)], prediction=[tags]), 1)
    (task,) = outbox(backend)
    assert task["text"] == "Ada Lovelace visited Paris"
    assert task["tokens"] == [
        {"text": "Ada", "start": 0, "end": 3, "id": 0, "ws": True},
        {"text": "Lovelace", "start": 4, "end": 12, "id": 1, "ws": True},
        {"text": "visited", "start": 13, "end": 20, "id": 2, "ws": True},
        {"text": "Paris", "start": 21, "end": 26, "id": 3, "ws": False},
    ]
    assert task["spans"] == [
        {"start": 0, "end": 12, "label": "PER", "token_start": 0, "token_end": 1},
        {"start": 21, "end": 26, "label": "LOC", "token_start": 3, "token_end": 3},
    ]
    assert "options" not in task


def test_existing_formats_still_write_their_files(tmp_path):
    for fmt in ("csv", "jsonl"):
        backend = FilesBackend(tmp_path / fmt, file_format=fmt, classes=CLASSES)
        backend.dispatch(batch(["p1"]), 1)
        assert [p.name for p in backend.outbox.iterdir()] == [f"round-0001-1.{fmt}"]


# -- answers in ---------------------------------------------------------------------------------


def test_choice_binary_and_ignore_answers_become_labels_by_hand(tmp_path):
    backend = FilesBackend(tmp_path, file_format="prodigy", classes=CLASSES)
    backend.dispatch(batch(["p1", "p2", "p3", "p4", "p5"]), 1)
    hash_of = {t["meta"]["id"]: t["_input_hash"] for t in outbox(backend)}
    answer_file(
        backend,
        [
            {  # textcat.manual: one option accepted
                "text": "text of p1",
                "options": OPTIONS,
                "accept": ["spam"],
                "answer": "accept",
                "_input_hash": hash_of["p1"],
                "_task_hash": 11,
                "_view_id": "choice",
                "config": {"choice_style": "single"},
                "meta": {"id": "p1", "score": 1.0},
                "_session_id": "news-alice",
                "_annotator_id": "news-alice",
                "_timestamp": NEW_YEAR,
            },
            {  # textcat.teach: a binary label accepted; only a session id
                "text": "text of p2",
                "label": "ham",
                "answer": "accept",
                "_input_hash": hash_of["p2"],
                "_task_hash": 12,
                "meta": {"id": "p2", "score": 0.75},
                "_session_id": "news-bob",
                "_timestamp": NEW_YEAR + 3600,
            },
            {  # a binary reject with three classes names no class: skipped
                "text": "text of p3",
                "label": "ham",
                "answer": "reject",
                "_input_hash": hash_of["p3"],
                "_task_hash": 13,
                "meta": {"id": "p3"},
                "_annotator_id": "news-bob",
            },
            {  # ignored: skipped
                "text": "text of p4",
                "options": OPTIONS,
                "accept": [],
                "answer": "ignore",
                "_input_hash": hash_of["p4"],
                "_task_hash": 14,
                "meta": {"id": "p4"},
                "_annotator_id": "news-alice",
            },
            {  # no meta.id: the item from its _input_hash; no annotator: "prodigy"
                "text": "text of p5",
                "options": OPTIONS,
                "accept": ["eggs"],
                "answer": "accept",
                "_input_hash": hash_of["p5"],
                "_task_hash": 15,
                "meta": {"score": 0.0},
            },
            {  # the team's own option ids: the class is the accepted option's text
                "text": "text of p3",
                "options": [
                    {"id": 0, "text": "ham"},
                    {"id": 1, "text": "spam"},
                    {"id": 2, "text": "eggs"},
                ],
                "accept": [2],
                "answer": "accept",
                "_input_hash": hash_of["p3"],
                "_task_hash": 16,
                "meta": {"id": "p3"},
                "_annotator_id": "news-alice",
                "_timestamp": NEW_YEAR + 60,
            },
        ],
    )
    got = backend.collect()
    assert rows(got) == [
        ("p1", "spam", "news-alice"),
        ("p2", "ham", "news-bob"),
        ("p5", "eggs", "prodigy"),
        ("p3", "eggs", "news-alice"),
    ]
    assert dict(backend.skipped) == {"reject": 1, "ignore": 1}
    assert got["time"].tolist()[:2] == [
        pd.Timestamp("2026-01-01 00:00", tz="UTC"),
        pd.Timestamp("2026-01-01 01:00", tz="UTC"),
    ]
    assert (got["round"] == 1).all() and (got["source"] == "human").all()
    assert backend.progress(1).annotated == 4 and backend.progress(1).dispatched == 5


def test_a_binary_reject_in_a_two_class_project_is_the_other_class(tmp_path):
    backend = FilesBackend(tmp_path, file_format="prodigy", classes=["ham", "spam"])
    backend.dispatch(batch(["p1", "p2", "p3"]), 1)
    base = {"answer": "accept", "_input_hash": 1, "_task_hash": 2}
    answer_file(
        backend,
        [
            {
                **base,
                "text": "text of p1",
                "label": "spam",
                "answer": "reject",
                "meta": {"id": "p1"},
            },
            {**base, "text": "text of p2", "label": "spam", "meta": {"id": "p2"}},
            {
                **base,
                "text": "text of p3",
                "label": "ham",
                "answer": "ignore",
                "meta": {"id": "p3"},
            },
        ],
    )
    assert rows(backend.collect()) == [("p1", "ham", "prodigy"), ("p2", "spam", "prodigy")]
    assert dict(backend.skipped) == {"ignore": 1}


def test_ner_round_trip_spans_come_back_as_the_tags_the_loop_stores(tmp_path):
    backend = FilesBackend(tmp_path, file_format="prodigy")
    other = ["Grace", "Hopper", "wrote", "code"]
    texts = [json.dumps(TOKENS), json.dumps(other), json.dumps(other)]
    backend.dispatch(batch(["n1", "n2", "n3"], text=texts), 1)
    sent = {t["meta"]["id"]: t for t in outbox(backend)}
    answer_file(
        backend,
        [
            {  # ner.manual, written as Prodigy keeps it: tokens, spans with token indices
                **sent["n1"],
                "spans": [
                    {"start": 21, "end": 26, "label": "LOC", "token_start": 3, "token_end": 3},
                    {"start": 0, "end": 12, "label": "PER", "token_start": 0, "token_end": 1},
                ],
                "answer": "accept",
                "_view_id": "ner_manual",
                "_annotator_id": "ner-carol",
                "_timestamp": NEW_YEAR,
            },
            {**sent["n2"], "spans": [], "answer": "accept", "_annotator_id": "ner-carol"},
            {**sent["n3"], "spans": [], "answer": "reject", "_annotator_id": "ner-carol"},
        ],
    )
    got = backend.collect()
    assert got["id"].tolist() == ["n1", "n2"] and dict(backend.skipped) == {"reject": 1}
    n1, n2 = got["label"]
    assert json.loads(n1) == [
        {"start": 0, "end": 12, "label": "PER"},
        {"start": 21, "end": 26, "label": "LOC"},
    ]
    assert json.loads(as_tag_answer(n1, TOKENS)) == ["B-PER", "I-PER", "O", "B-LOC"]
    assert json.loads(as_tag_answer(n2, other)) == ["O", "O", "O", "O"]


def test_prodigy_answers_are_recognised_whatever_the_format_setting(tmp_path):
    backend = FilesBackend(tmp_path, file_format="csv", classes=CLASSES)
    backend.dispatch(batch(["p1", "p2"]), 1)
    answer_file(
        backend,
        [
            {
                "text": "text of p1",
                "accept": ["eggs"],
                "answer": "accept",
                "_input_hash": 5,
                "_task_hash": 6,
                "meta": {"id": "p1"},
                "_annotator_id": "x-dan",
            },
        ],
    )
    # the backend's own JSONL answers still read as before
    answer_file(backend, [{"id": "p2", "label": "ham", "annotator": "erin"}], name="plain.jsonl")
    assert rows(backend.collect()) == [("p1", "eggs", "x-dan"), ("p2", "ham", "erin")]


def test_make_backend_builds_a_prodigy_files_backend(tmp_path):
    settings = Settings.model_validate(
        {
            "project": {"work_dir": str(tmp_path / "w")},
            "data": {"classes": CLASSES},
            "annotation": {"backend": "files", "file_format": "prodigy"},
        }
    )
    backend = make_backend(settings)
    assert isinstance(backend, FilesBackend) and backend.file_format == "prodigy"
    with pytest.raises(ValueError, match="prodigy"):
        FilesBackend(tmp_path, file_format="xml")


# -- bad input ------------------------------------------------------------------------------------

GOOD = {"text": "text of p1", "accept": ["spam"], "answer": "accept", "meta": {"id": "p1"}}
BAD = {
    "missing hash": (
        {
            "text": "text of p2",
            "accept": ["spam"],
            "answer": "accept",
            "_input_hash": 12345,
            "meta": {},
        },
        "_input_hash",
        "missing hash",
    ),
    "neither meta.id nor a hash": (
        {"text": "text of p2", "accept": ["spam"], "answer": "accept", "_task_hash": 7},
        "_input_hash",
        "missing hash",
    ),
    "unknown answer": (
        {**GOOD, "answer": "maybe"},
        "answer",
        "'maybe' is not one of accept, reject, ignore",
    ),
    "option not a class": ({**GOOD, "accept": ["toast"]}, "accept", "'toast' is not one of"),
    "two options for one class": ({**GOOD, "accept": ["ham", "spam"]}, "accept", "one class"),
    "id never dispatched": ({**GOOD, "meta": {"id": "ghost"}}, "meta.id", "never dispatched"),
    "timestamp not unix seconds": (
        {**GOOD, "_timestamp": "yesterday"},
        "_timestamp",
        "unix seconds",
    ),
    "binary label not a class": (
        {"text": "t", "label": "toast", "answer": "accept", "meta": {"id": "p2"}},
        "label",
        "not one of",
    ),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_classification_answers_name_the_file_line_and_field(tmp_path, case):
    record, column, message = BAD[case]
    backend = FilesBackend(tmp_path, file_format="prodigy", classes=CLASSES)
    backend.dispatch(batch(["p1", "p2"]), 1)
    assert input_hash("p2") != 12345
    path = answer_file(backend, [GOOD, record])
    with pytest.raises(AnnotationFileError, match=message) as info:
        backend.collect()
    assert (info.value.file, info.value.row, info.value.column) == (path, 2, column)
    assert str(info.value).startswith(f"{path}, row 2, column {column!r}: ")


@pytest.mark.parametrize(
    ("span", "column"),
    [
        ({"start": 21, "end": 40, "label": "LOC"}, "spans.1.end"),
        ({"start": -1, "end": 3, "label": "PER"}, "spans.1.start"),
        ({"start": 26, "end": 27, "label": "LOC"}, "spans.1.start"),
    ],
)
def test_a_span_outside_the_text_names_the_file_line_and_span(tmp_path, span, column):
    backend = FilesBackend(tmp_path, file_format="prodigy")
    backend.dispatch(batch(["n1"], text=[json.dumps(TOKENS)]), 1)
    (task,) = outbox(backend)
    good_span = {"start": 0, "end": 3, "label": "PER"}
    path = answer_file(
        backend,
        [
            {**task, "spans": [good_span], "answer": "accept"},
            {**task, "spans": [good_span, span], "answer": "accept"},
        ],
    )
    with pytest.raises(AnnotationFileError, match="outside the text") as info:
        backend.collect()
    assert (info.value.file, info.value.row, info.value.column) == (path, 2, column)
    assert f"{path}, row 2, column {column!r}" in str(info.value)


def test_spans_on_another_text_than_the_one_sent_are_refused(tmp_path):
    backend = FilesBackend(tmp_path, file_format="prodigy")
    backend.dispatch(batch(["n1"], text=[json.dumps(TOKENS)]), 1)
    (task,) = outbox(backend)
    edited = {**task, "text": "Ada  Lovelace visited Paris", "spans": [], "answer": "accept"}
    path = answer_file(backend, [edited])
    with pytest.raises(AnnotationFileError, match="not the text dispatched") as info:
        backend.collect()
    assert (info.value.row, info.value.column) == (1, "text") and info.value.file == path


def test_a_bad_file_fails_the_collect_and_loses_nothing(tmp_path):
    backend = FilesBackend(tmp_path, file_format="prodigy", classes=CLASSES)
    backend.dispatch(batch(["p1", "p2"]), 1)
    good = answer_file(backend, [{**GOOD, "_annotator_id": "a"}], name="a-good.jsonl")
    bad = answer_file(backend, [{**GOOD, "answer": "perhaps"}], name="b-bad.jsonl")
    before = good.read_bytes(), bad.read_bytes()
    with pytest.raises(AnnotationFileError) as info:
        backend.collect()
    assert info.value.file == bad and (good.read_bytes(), bad.read_bytes()) == before
    bad.unlink()  # the team fixes or removes the bad file: every good answer is still there
    assert rows(backend.collect()) == [("p1", "spam", "a")]
