"""Property-based fuzzing of label payloads: what the label gate, the files backend and Label
Studio's task JSON receive. Every bad payload ends in an error of ours naming the file (row and
column where there is one) and a quarantine entry; the label log and the pool stay byte for byte,
or grow by exactly the valid rows with every earlier row unchanged."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import event, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tasks.annotation.base import ANNOTATION_COLUMNS, AnnotationBackendError
from tasks.annotation.files import AnnotationFileError, FilesBackend
from tasks.annotation.label_studio import ID_KEY, ROUND_KEY, LabelStudioBackend
from tasks.data import store
from tasks.data.labels import collect_labels, read_label_file
from tasks.data.validate import ValidationError
from tests.data.conftest import FUZZ, copy_project, examples, snapshot

pytestmark = pytest.mark.data

CLASSES = ("cat", "dog")
ANNOTATORS = ("ann", "bob", "cy")
_counter = itertools.count()


@pytest.fixture
def workspace(tmp_path: Path, seeded_template: Path):
    """``new()`` -> (settings, folder, pool ids): a fresh copy of the seeded project."""
    ids = pq.read_table(seeded_template / "data" / "pool.parquet")["id"].to_pylist()

    def new():
        folder = tmp_path / f"example-{next(_counter)}"
        return copy_project(seeded_template, folder), folder, ids

    return new


# --- label rows: (row, is it bad) ------------------------------------------------------------------

GOOD_TIMES = st.sampled_from(
    [
        "2026-01-02T03:04:05Z",
        "2026-01-02 03:04",
        "02/01/2026 10:00:00+02:00",
        "2026-01-01T00:00:00.000000001+02:00",  # finer than the log keeps
        pd.Timestamp("2026-03-01", tz="Europe/Paris"),
        pd.Timestamp("2026-03-01 12:00"),
    ]
)
BAD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "id": st.sampled_from([None, math.nan, "no-such-id", "", 7, ["a"], {"id": 1}]),
    "label": st.sampled_from([None, math.nan, "", "bird", "Cat", "cat ", 1, 2.5, ["cat"], {}]),
    "annotator": st.sampled_from([None, math.nan, "", "   ", ["ann"], {"a": 1}]),
    "round": st.sampled_from([None, math.nan, "x", "2", 2.5, math.inf, True, 2**70, [2]]),
    "time": st.sampled_from([None, "not a time", "9999-01-01", "0001-01-01", 5, 1.5, [1]]),
    "source": st.sampled_from([None, "guess", "", 1, ["human"]]),
}


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _key(row: dict[str, Any]) -> tuple | None:
    """(id, annotator, round) when each is present and of a type the gate keeps, else None."""
    id_, annotator, round_ = row["id"], row["annotator"], row["round"]
    if any(_blank(v) or isinstance(v, (list, dict)) for v in (id_, annotator)):
        return None
    if isinstance(round_, bool) or not isinstance(round_, (int, float)) or _blank(round_):
        return None
    if not (math.isfinite(round_) and float(round_).is_integer() and abs(round_) < 2**63):
        return None
    return (str(id_), str(annotator), int(round_))


@st.composite
def label_payload(draw, ids: list[str]):
    """(rows, bad row numbers) for ``collect_labels``: good rows, rows with one bad cell,
    repeated rows, and second opinions on already-labeled items (good: the log appends)."""
    rows, bad = [], set()
    for number in range(1, draw(st.integers(1, 8)) + 1):
        kind = draw(st.sampled_from(["good", "good", "good", "bad", "repeat", "relabel"]))
        row = {
            "id": draw(st.sampled_from(ids[2:])),
            "label": draw(st.sampled_from(CLASSES)),
            "annotator": draw(st.sampled_from(ANNOTATORS)),
            "round": draw(st.sampled_from([2, 3, 2.0])),
            "time": draw(GOOD_TIMES),
            "source": draw(st.sampled_from(store.LABEL_SOURCES)),
        }
        if kind == "bad":
            column = draw(st.sampled_from(sorted(BAD_VALUES)))
            row[column] = draw(BAD_VALUES[column])
            bad.add(number)
        elif kind == "repeat" and rows:
            earlier = draw(st.integers(0, len(rows) - 1))
            row = dict(rows[earlier])
            if earlier + 1 in bad:
                bad.add(number)
        elif kind == "relabel":  # the seeded log holds ids[0] -> cat, ids[1] -> dog by "ann"
            item = draw(st.sampled_from([0, 1]))
            row.update(id=ids[item], annotator="ann", round=1, label=CLASSES[1 - item])
        rows.append(row)
    seen: set[tuple] = set()
    for number, row in enumerate(rows, start=1):
        key = _key(row)
        if key in seen:
            bad.add(number)  # the same annotator twice on one item in one round
        elif key is not None:
            seen.add(key)
    return rows, bad


def labels_outcome(payload: pd.DataFrame, project, file: str) -> ValidationError | int:
    """``collect_labels``; check the invariants of either outcome; the error or rows appended."""
    before = snapshot(project)
    log_before = store.read_labels(project)
    try:
        after = collect_labels(payload, project, round_=2, file=file)
    except ValidationError as error:  # any other exception fails the test with its traceback
        text = str(error)
        assert error.file == file and text.startswith(file), text
        if error.row is not None:
            assert f"row {error.row}" in text
        if error.column is not None:
            assert f"column {error.column!r}" in text
        quarantined = pd.read_parquet(error.quarantine)
        assert (quarantined["file"] == file).all() and quarantined["reason"].str.len().min() > 0
        assert snapshot(project) == before, "a rejected payload changed the labels or the pool"
        return error
    now = snapshot(project)
    assert now["pool.parquet"] == before["pool.parquet"]
    assert len(after) == len(log_before) + len(payload)
    pd.testing.assert_frame_equal(after.iloc[: len(log_before)], log_before)
    pd.testing.assert_frame_equal(store.read_labels(project), after)
    assert after["label"].isin(CLASSES).all() and after["time"].notna().all()
    return len(payload)


def quarantined_rows(error: ValidationError) -> set[int]:
    return {int(r) for r in pd.read_parquet(error.quarantine)["row"].dropna()}


# --- the label gate --------------------------------------------------------------------------------


@hsettings(FUZZ, max_examples=examples(20))
@given(data=st.data())
def test_label_payloads_quarantine_exactly_the_bad_rows(workspace, data):
    project, _, ids = workspace()
    rows, bad = data.draw(label_payload(ids))
    outcome = labels_outcome(pd.DataFrame(rows), project, "payload.json")
    event("rejected" if isinstance(outcome, ValidationError) else "accepted")
    if bad:
        assert isinstance(outcome, ValidationError), f"bad rows {sorted(bad)} were accepted"
        assert quarantined_rows(outcome) == bad
    else:
        assert outcome == len(rows)


junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=10),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
    st.datetimes().map(pd.Timestamp),
)


@hsettings(FUZZ, max_examples=examples(20))
@given(
    data=st.data(),
    columns=st.lists(
        st.sampled_from([*ANNOTATION_COLUMNS, "extra"]), min_size=0, max_size=8, unique=False
    ),
)
def test_label_payloads_of_any_shape_and_type_never_escape_the_gate(workspace, data, columns):
    project, _, ids = workspace()
    n = data.draw(st.integers(0, 4))
    values = st.one_of(junk, st.sampled_from([*ids, *CLASSES, *ANNOTATORS]))
    payload = pd.DataFrame(
        [[data.draw(values) for _ in columns] for _ in range(n)], columns=columns, dtype=object
    )
    outcome = labels_outcome(payload, project, "any.json")
    event("rejected" if isinstance(outcome, ValidationError) else "accepted")


@hsettings(FUZZ, max_examples=examples(12))
@given(data=st.data(), fmt=st.sampled_from(["csv", "jsonl"]), cut=st.floats(0.05, 1.0))
def test_truncated_label_files_are_rejected_or_give_whole_rows(workspace, data, fmt, cut):
    project, folder, ids = workspace()
    rows, _ = data.draw(label_payload(ids))
    frame = pd.DataFrame(rows)[["id", "label", "annotator"]]
    path = folder / f"labels.{fmt}"
    if fmt == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True)
    raw = path.read_bytes()
    path.write_bytes(raw[: max(1, int(len(raw) * cut))])
    try:
        payload = read_label_file(path, project)
    except ValidationError as error:
        assert error.file == str(path) and str(error).startswith(str(path))
        event("unreadable")
        return
    outcome = labels_outcome(payload, project, str(path))
    event("rejected" if isinstance(outcome, ValidationError) else "accepted")


# --- the files backend -----------------------------------------------------------------------------


def _answer_file(rows: list[dict], fmt: str, path: Path, columns: list[str]) -> None:
    if fmt == "csv":
        pd.DataFrame(rows).reindex(columns=columns).to_csv(path, index=False)
    else:
        path.write_text(
            "".join(json.dumps({c: r.get(c) for c in columns}, default=str) + "\n" for r in rows)
        )


@hsettings(FUZZ, max_examples=examples(60))
@given(
    data=st.data(),
    fmt=st.sampled_from(["csv", "jsonl"]),
    damage=st.sampled_from(["none", "truncate", "bytes", "latin-1", "columns"]),
)
def test_files_backend_rejects_bad_answer_files_naming_them(tmp_path_factory, data, fmt, damage):
    folder = tmp_path_factory.mktemp("files")
    backend = FilesBackend(folder, classes=list(CLASSES))
    sent = ["a1", "a2", "a3"]
    backend.dispatch(
        pd.DataFrame({"id": sent, "round": 1, "rank": [1, 2, 3], "score": [0.3, 0.2, 0.1]}), 1
    )
    good = st.sampled_from([*sent, "ghost", *CLASSES, "ann", "2026-01-01"])
    values = st.one_of(good, good, good, junk)
    rows = data.draw(
        st.lists(
            st.fixed_dictionaries(
                {"id": values, "label": values, "annotator": values, "time": values}
            ),
            max_size=5,
        )
    )
    columns = ["id", "label", "annotator", "time"]
    if damage == "columns":
        columns = data.draw(st.lists(st.sampled_from([*columns, "", "id"]), max_size=6))
    backend.inbox.mkdir(parents=True)
    path = backend.inbox / f"answers.{fmt}"
    _answer_file(rows, fmt, path, columns)
    raw = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(raw[: data.draw(st.integers(0, len(raw)))])
    elif damage == "bytes":
        path.write_bytes(data.draw(st.binary(max_size=200)))
    elif damage == "latin-1":
        path.write_bytes(raw.decode("utf-8").encode("latin-1", errors="replace") + b"\xe9\n")
    try:
        collected = backend.collect()
    except AnnotationFileError as error:  # ours, naming the file (and row, column if known)
        text = str(error)
        assert text.startswith(str(path)), text
        if error.row is not None:
            assert f"row {error.row}" in text
        event("rejected")
        return
    event("accepted")
    assert list(collected.columns) == list(ANNOTATION_COLUMNS)
    assert collected["id"].isin(sent).all() and collected["label"].isin(CLASSES).all()
    assert collected["annotator"].map(lambda a: isinstance(a, str) and a.strip() != "").all()
    assert all(isinstance(t, pd.Timestamp) and str(t.tz) == "UTC" for t in collected["time"])
    assert not collected.duplicated(["id", "annotator"]).any()


# --- Label Studio's task JSON ----------------------------------------------------------------------


class OfflineLabelStudio(LabelStudioBackend):
    """A Label Studio backend whose server answers with the given tasks (no network)."""

    def __init__(self, tasks: list[Any]):
        super().__init__(url="http://ls.test", token="t", classes=list(CLASSES))
        self._tasks = tasks

    def tasks(self) -> list[Any]:
        return self._tasks

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        assert (method, path) == ("GET", "/api/users")
        return [{"id": 1, "email": "ann@example.org"}, {"id": 2, "username": "bob"}]


json_junk = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)


def _maybe(draw, good: Any) -> Any:
    """The good value most of the time, else junk of any JSON type (or the key left out)."""
    return draw(st.one_of(st.just(good), st.just(good), st.just(good), json_junk))


@st.composite
def ls_task(draw, number: int):
    choices = _maybe(draw, [draw(st.sampled_from([*CLASSES, "bird"]))])
    result = _maybe(
        draw,
        [{"from_name": "label", "type": "choices", "value": _maybe(draw, {"choices": choices})}],
    )
    annotation = {
        "id": number * 10,
        "result": result,
        "completed_by": _maybe(draw, draw(st.sampled_from([1, 2, 3, {"id": 1}]))),
        "created_at": _maybe(draw, "2026-01-02T03:04:05.123456Z"),
        "was_cancelled": _maybe(draw, False),
    }
    data = {ID_KEY: _maybe(draw, f"item-{number}"), ROUND_KEY: _maybe(draw, 1), "text": "t"}
    task = {"id": number, "data": _maybe(draw, data), "annotations": _maybe(draw, [annotation])}
    return draw(st.one_of(st.just(task), st.just(task), json_junk))


@hsettings(FUZZ, max_examples=examples(100))
@given(tasks=st.lists(st.integers(1, 10**6).flatmap(ls_task), max_size=4))
def test_label_studio_task_json_is_parsed_or_rejected_with_the_task(tasks):
    backend = OfflineLabelStudio(tasks)
    try:
        collected = backend.collect()
    except AnnotationBackendError as error:  # ours: which task, which field
        assert error.where and error.where.startswith("http://ls.test/api/tasks/")
        assert "task" in str(error) or "annotation" in str(error)
        event("rejected")
        return
    event("accepted" if len(collected) else "nothing to collect")
    assert list(collected.columns) == list(ANNOTATION_COLUMNS)
    for row in collected.itertuples(index=False):
        assert isinstance(row.id, str) and isinstance(row.label, str)
        assert isinstance(row.annotator, str) and isinstance(row.round, int)
        assert isinstance(row.time, pd.Timestamp) and row.time is not pd.NaT
