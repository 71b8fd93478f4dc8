"""Regression tests for the bugs the fuzzing of ingest files and label payloads found: each input
used to escape as a raw pandas/pyarrow/json error, or to land silently changed."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from tasks.annotation.base import AnnotationBackendError
from tasks.annotation.files import AnnotationFileError, FilesBackend
from tasks.data import store
from tasks.data.ingest import ingest
from tasks.data.labels import collect_labels
from tasks.data.validate import ValidationError
from tests.data.conftest import snapshot

pytestmark = pytest.mark.data


def _rejected(path: Path, project, row, column, reason) -> ValidationError:
    before = snapshot(project)
    with pytest.raises(ValidationError) as info:
        ingest(path, project)
    error = info.value
    assert (error.file, error.row, error.column) == (str(path), row, column)
    assert reason in error.reason, error.reason
    assert error.quarantine is not None and error.quarantine.exists()
    assert snapshot(project) == before
    return error


INGEST_REGRESSIONS = {
    # was a StoreError naming data/pool.parquet, no row, no quarantine
    "number where the pool has text": (
        "bad.csv",
        b"x1,x2,note\n1,2,5\n",
        1,
        "note",
        "number value 5 in a column of text values",
    ),
    "mixed types in a JSONL column": (
        "bad.jsonl",
        b'{"x1": 1, "x2": 2, "note": "a"}\n{"x1": 3, "x2": 2, "note": 5}\n',
        2,
        "note",
        "number value 5 in a column of text values",
    ),
    "nested JSONL value": (
        "bad.jsonl",
        b'{"x1": 1, "x2": 2, "note": {"a": 1}}\n',
        1,
        "note",
        "nested object value",
    ),
    # was a raw OverflowError
    "integer beyond 64 bits": (
        "bad.jsonl",
        b'{"x1": 1, "x2": 2, "note": "a", "big": 123456789012345678901234567890}\n',
        1,
        "big",
        "integer too large for a 64-bit column",
    ),
    # was accepted as columns 'note' and 'note.1'
    "repeated CSV column": (
        "bad.csv",
        b"x1,x2,note,note\n1,2,a,b\n",
        None,
        "note",
        "column name appears twice",
    ),
    # was accepted as a column 'Unnamed: 3'
    "CSV column without a name": (
        "bad.csv",
        b"x1,x2,note,\n1,2,a,b\n",
        None,
        None,
        "column 4 has no name",
    ),
    # was accepted keeping the last value
    "repeated JSONL key": (
        "bad.jsonl",
        b'{"x1": 1, "x2": 1, "x2": 2, "note": "a"}\n',
        1,
        "x2",
        "key appears twice",
    ),
    # was accepted shifted by one column (pandas took the first field as the index)
    "CSV row with a field too many": (
        "bad.csv",
        b"x1,x2,note\n1,2,3,a\n",
        1,
        None,
        "4 fields but the header has 3",
    ),
    # were accepted into the pool
    "infinite feature": ("bad.csv", b"x1,x2,note\n1,inf,a\n", 1, "x2", "not a finite number"),
    "JSON Infinity": (
        "bad.jsonl",
        b'{"x1": 1, "x2": -Infinity, "note": "a"}\n',
        1,
        "x2",
        "not a finite number",
    ),
    # was "row 0, column '\\x00x...'"
    "UTF-16 file": ("bad.csv", "x1,x2,note\n1,2,a\n".encode("utf-16"), None, None, "header line"),
}


@pytest.mark.parametrize("case", INGEST_REGRESSIONS, ids=list(INGEST_REGRESSIONS))
def test_ingest_regression(seeded_copy, case):
    name, raw, row, column, reason = INGEST_REGRESSIONS[case]
    Path(name).write_bytes(raw)
    _rejected(Path(name), seeded_copy, row, column, reason)


def test_repeated_parquet_column_is_named_not_called_damaged(seeded_copy):
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = [pa.array([1.0]), pa.array([2.0]), pa.array(["a"]), pa.array(["b"])]
    pq.write_table(pa.Table.from_arrays(arrays, names=["x1", "x2", "note", "note"]), "d.parquet")
    error = _rejected(Path("d.parquet"), seeded_copy, None, "note", "appears twice")
    assert "damaged" not in error.reason


def _label(project, **overrides) -> pd.DataFrame:
    ids = store.read_pool(project)["id"].tolist()
    row = {"id": ids[3], "label": "cat", "annotator": "bob", "round": 2, "source": "human"}
    row["time"] = "2026-01-02T03:04:05Z"
    return pd.DataFrame([{**row, **overrides}])


LABEL_REGRESSIONS = {
    # raw ValueError / OverflowError; 2.5 was stored as round 2
    "round 'x'": ({"round": "x"}, "round", "round is not a whole number"),
    "round 2**70": ({"round": 2**70}, "round", "round is not a whole number"),
    "round 2.5": ({"round": 2.5}, "round", "round is not a whole number"),
    # raw DateParseError / OutOfBoundsDatetime; a bare number was stored as 1970 + n ns
    "unparsable time": ({"time": "not a time"}, "time", "not a date-time"),
    "time out of range": ({"time": "9999-01-01"}, "time", "not a date-time"),
    "time as a number": ({"time": 5}, "time", "not a date-time"),
    # stored as the text "{'a': 1}"
    "annotator as an object": ({"annotator": {"a": 1}}, "annotator", "not a text value"),
}


@pytest.mark.parametrize("case", LABEL_REGRESSIONS, ids=list(LABEL_REGRESSIONS))
def test_label_regression(seeded_copy, case):
    overrides, column, reason = LABEL_REGRESSIONS[case]
    before = snapshot(seeded_copy)
    with pytest.raises(ValidationError) as info:
        collect_labels(_label(seeded_copy, **overrides), seeded_copy, round_=2, file="p")
    assert (info.value.row, info.value.column) == (1, column)
    assert reason in info.value.reason
    assert snapshot(seeded_copy) == before


def test_the_same_annotation_twice_in_one_payload_is_rejected(seeded_copy):
    payload = pd.concat([_label(seeded_copy), _label(seeded_copy, label="dog")])
    before = snapshot(seeded_copy)
    with pytest.raises(ValidationError) as info:
        collect_labels(payload, seeded_copy, round_=2, file="p")
    assert (info.value.row, info.value.column) == (2, "id")
    assert "same id, annotator and round as row 1" in info.value.reason
    assert snapshot(seeded_copy) == before


def test_repeated_payload_column_is_named(seeded_copy):
    payload = _label(seeded_copy)
    payload.columns = ["id", "label", "annotator", "label", "source", "time"]
    with pytest.raises(ValidationError, match="column 'label': column name appears twice"):
        collect_labels(payload, seeded_copy, round_=2, file="p")


def test_a_backend_repeating_an_annotation_stores_it_once(seeded_copy):
    # the label gate now refuses a payload with the same (id, annotator, round) twice, so
    # store_annotations keeps one, as label_log.new_annotations does: the latest answer (equal
    # times: the later row), the one that supersedes
    from tasks.annotation import store_annotations

    twice = pd.concat([_label(seeded_copy), _label(seeded_copy, label="dog")], ignore_index=True)
    before = store.read_labels(seeded_copy)
    stored = store_annotations(twice, seeded_copy, round_=2)
    assert len(stored) == 1 and stored["label"].tolist() == ["dog"]
    assert len(store.read_labels(seeded_copy)) == len(before) + 1


def test_times_in_several_formats_and_finer_than_microseconds_are_stored(seeded_copy):
    # was a raw ValueError (format taken from the first row) and, after the gate had passed, a
    # raw ArrowInvalid (nanoseconds do not fit the log's microseconds)
    ids = store.read_pool(seeded_copy)["id"].tolist()
    payload = pd.DataFrame(
        {
            "id": ids[3:5],
            "label": ["cat", "dog"],
            "annotator": "bob",
            "time": ["2026-01-02", "03/01/2026 10:00:00.000000001+02:00"],
        }
    )
    log = collect_labels(payload, seeded_copy, round_=2, file="p")
    assert log["time"].iloc[-2:].tolist() == [
        pd.Timestamp("2026-01-02", tz="UTC"),
        pd.Timestamp("2026-03-01 08:00", tz="UTC"),
    ]


# --- annotation backends ---------------------------------------------------------------------------


@pytest.fixture
def files_backend(tmp_path: Path) -> FilesBackend:
    backend = FilesBackend(tmp_path, classes=["cat", "dog"])
    backend.dispatch(pd.DataFrame({"id": ["a1"], "round": 1, "rank": [1], "score": [0.5]}), 1)
    backend.inbox.mkdir()
    return backend


FILES_REGRESSIONS = {
    # raw UnicodeDecodeError
    "latin-1 JSONL": ("a.jsonl", b'{"id": "a1", "label": "cat", "annotator": "caf\xe9"}\n', 1),
    # raw EmptyDataError
    "empty CSV": ("a.csv", b"", None),
    # silently renamed 'label.1'
    "repeated CSV column": ("a.csv", b"id,label,annotator,label\na1,cat,ann,dog\n", 1),
    # the row's fields shifted by one (first field taken as the index)
    "CSV row with a field too many": ("a.csv", b"id,label,annotator\nx,a1,cat,ann\n", 2),
    # NaT accepted as the time, later blamed on 'files annotations'
    "time 'nan'": ("a.csv", b"id,label,annotator,time\na1,cat,ann,nan\n", 2),
    # stored as the text "['cat']"... or not one of the classes without a reason
    "list value in JSONL": ("a.jsonl", b'{"id": "a1", "label": ["cat"], "annotator": "a"}\n', 1),
}


@pytest.mark.parametrize("case", FILES_REGRESSIONS, ids=list(FILES_REGRESSIONS))
def test_files_backend_regression(files_backend, case):
    name, raw, row = FILES_REGRESSIONS[case]
    path = files_backend.inbox / name
    path.write_bytes(raw)
    with pytest.raises(AnnotationFileError) as info:
        files_backend.collect()
    assert info.value.file == path and info.value.row == row
    assert str(info.value).startswith(str(path))


def test_files_backend_reads_a_spreadsheet_csv_with_a_byte_order_mark(files_backend):
    (files_backend.inbox / "a.csv").write_bytes(b"\xef\xbb\xbfid,label,annotator\na1,cat,ann\n")
    assert files_backend.collect()["label"].tolist() == ["cat"]


def test_files_backend_reports_the_real_line_after_a_quoted_newline(files_backend):
    path = files_backend.inbox / "a.csv"
    path.write_bytes(b'id,label,annotator\na1,cat,"two\nlines"\nghost,cat,ann\n')
    with pytest.raises(AnnotationFileError) as info:
        files_backend.collect()
    assert (info.value.row, info.value.column) == (4, "id")


def _label_studio(annotation: dict, data: dict | None = None):
    from tests.data.test_fuzz_labels import OfflineLabelStudio

    data = {"lw_id": "item-1", "lw_round": 1} if data is None else data
    return OfflineLabelStudio([{"id": 7, "data": data, "annotations": [annotation]}])


def _annotation(**overrides) -> dict:
    result = [{"from_name": "label", "type": "choices", "value": {"choices": ["cat"]}}]
    return {"id": 70, "result": result, "completed_by": 1, "created_at": "2026-01-02", **overrides}


def test_label_studio_choices_as_text_are_rejected_not_cut_to_a_letter():
    # "choices": "cat" was collected as the label "c"
    result = [{"from_name": "label", "type": "choices", "value": {"choices": "cat"}}]
    with pytest.raises(AnnotationBackendError, match=r"result\.0\.value\.choices: .*list") as info:
        _label_studio(_annotation(result=result)).collect()
    assert info.value.where == "http://ls.test/api/tasks/7"


@pytest.mark.parametrize(
    ("annotation", "data", "path"),
    [
        (_annotation(created_at=None), None, "annotations.0.created_at"),  # KeyError
        (_annotation(result={"a": 1}), None, "annotations.0.result"),  # AttributeError
        (_annotation(), {"lw_id": "item-1", "lw_round": "one"}, "data.lw_round"),
        (_annotation(completed_by=[1]), None, "annotations.0.completed_by"),  # TypeError
    ],
)
def test_label_studio_malformed_annotations_name_the_task(annotation, data, path):
    with pytest.raises(AnnotationBackendError, match=rf"task 7\b.*: {re.escape(path)}: ") as info:
        _label_studio(annotation, data).collect()
    assert info.value.where == "http://ls.test/api/tasks/7"


def test_label_studio_expanded_user_is_accepted():
    # newer servers send completed_by as the user object: was a raw TypeError
    collected = _label_studio(_annotation(completed_by={"id": 2, "email": "x"})).collect()
    assert collected["annotator"].tolist() == ["bob"]
    assert collected["round"].tolist() == [1]
