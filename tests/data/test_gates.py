"""Every bad input fails its gate with file, row and column, is quarantined with a reason, and
leaves the pool and the labels byte for byte as they were."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from tasks.data import store
from tasks.data.ingest import ingest
from tasks.data.labels import collect_labels
from tasks.data.validate import ValidationError, validate_training
from tests.data.conftest import good_rows, snapshot

pytestmark = pytest.mark.data


def _csv(df: pd.DataFrame, name: str = "bad.csv") -> Path:
    df.to_csv(name, index=False)
    return Path(name)


def wrong_schema(project) -> Path:
    return _csv(good_rows(3).drop(columns=["x2"]))


def nan_value(project) -> Path:
    df = good_rows(3)
    df.loc[1, "x1"] = float("nan")
    return _csv(df)


def duplicate_ids(project) -> Path:
    project.data.id_column = "item_id"
    return _csv(good_rows(3).assign(item_id=["a", "b", "b"]))


def out_of_range(project) -> Path:
    df = good_rows(3)
    df.loc[2, "x1"] = 1000.0
    return _csv(df)


def not_a_number(project) -> Path:
    df = good_rows(3).astype({"x2": object})
    df.loc[1, "x2"] = "abc"
    return _csv(df)


def non_utf8_csv(project) -> Path:
    path = Path("bad.csv")
    path.write_bytes(b"x1,x2,note\n1,2,fine\n3,4,caf\xe9\n")
    return path


def non_utf8_text_file(project) -> Path:
    project.data.feature_columns = []
    folder = Path("texts")
    folder.mkdir()
    (folder / "a.txt").write_text("fine", encoding="utf-8")
    (folder / "b.txt").write_bytes(b"caf\xe9 latin-1")
    return folder


def empty_file(project) -> Path:
    path = Path("bad.csv")
    path.write_bytes(b"")
    return path


def header_only(project) -> Path:
    path = Path("bad.csv")
    path.write_text("x1,x2,note\n")
    return path


def truncated_parquet(project) -> Path:
    good_rows(50).to_parquet("whole.parquet", index=False)
    raw = Path("whole.parquet").read_bytes()
    Path("bad.parquet").write_bytes(raw[: len(raw) // 2])
    return Path("bad.parquet")


def bad_jsonl(project) -> Path:
    path = Path("bad.jsonl")
    path.write_text('{"x1": 1, "x2": 2, "note": "a"}\n{"x1": 2, "x2": \n')
    return path


def id_in_holdout(project) -> Path:
    ingest(
        _csv(good_rows(2, start=40).assign(label=["cat", "dog"]), "h.csv"), project, holdout=True
    )
    return _csv(good_rows(2, start=40))


# case -> (expected row, expected column, words in the reason)
INGEST_CASES: dict[str, tuple[Callable, int | None, str | None, str]] = {
    "wrong schema": (wrong_schema, None, "x2", "missing column"),
    "NaN": (nan_value, 2, "x1", "missing value"),
    "duplicate ids": (duplicate_ids, 2, "item_id", "duplicate id"),
    "value out of range": (out_of_range, 3, "x1", "outside [0.0, 100.0]"),
    "not a number": (not_a_number, 2, "x2", "not a number: 'abc'"),
    "non-UTF-8 CSV": (non_utf8_csv, 2, "note", "not UTF-8"),
    "non-UTF-8 text file": (non_utf8_text_file, 2, "text", "b.txt: not UTF-8"),
    "empty file": (empty_file, None, None, "empty file"),
    "header only": (header_only, None, None, "no rows"),
    "truncated Parquet": (truncated_parquet, None, None, "not a readable Parquet file"),
    "broken JSONL line": (bad_jsonl, 2, None, "not valid JSON"),
    "id in the holdout": (id_in_holdout, 1, "id", "id is in the holdout"),
}


def _quarantine(error: ValidationError) -> pd.DataFrame:
    assert error.quarantine is not None and error.quarantine.exists()
    assert error.quarantine.parent == Path("data/quarantine")
    return pd.read_parquet(error.quarantine)


@pytest.mark.parametrize("case", INGEST_CASES, ids=list(INGEST_CASES))
def test_bad_input_is_rejected_quarantined_and_changes_nothing(seeded_project, case):
    make, row, column, reason = INGEST_CASES[case]
    path = make(seeded_project)
    before = snapshot(seeded_project)
    with pytest.raises(ValidationError) as info:
        ingest(path, seeded_project)
    error = info.value
    assert (error.file, error.row, error.column) == (str(path), row, column)
    assert reason in error.reason
    text = str(error)
    assert text.startswith(str(path)) and reason in text
    if row is not None:
        assert f"row {row}" in text
    if column is not None:
        assert f"column {column!r}" in text
    quarantined = _quarantine(error)
    entry = quarantined[quarantined["reason"].str.contains(reason, regex=False)]
    assert len(entry) >= 1 and (entry["file"] == str(path)).all()
    assert entry["row"].iloc[0] == row if row is not None else pd.isna(entry["row"].iloc[0])
    assert snapshot(seeded_project) == before
    summary = store.read_validation_summary(seeded_project, 1)["ingest"]
    assert summary["success"] is False and summary["quarantine"] == str(error.quarantine)


def test_every_failing_row_is_quarantined_with_its_own_reason(seeded_project):
    df = good_rows(5)
    df.loc[1, "x1"] = float("nan")
    df.loc[3, "x1"] = -5.0
    with pytest.raises(ValidationError) as info:
        ingest(_csv(df), seeded_project)
    quarantined = _quarantine(info.value).set_index("row")
    assert info.value.failures == 2
    assert quarantined.loc[2, "reason"] == "missing value"
    assert "outside" in quarantined.loc[4, "reason"]
    assert quarantined.loc[4, "record"] and '"x1": -5.0' in quarantined.loc[4, "record"]


def _labels(project, **overrides) -> pd.DataFrame:
    ids = store.read_pool(project)["id"].tolist()
    rows = {"id": [ids[2], ids[3]], "label": ["cat", "dog"], "annotator": ["ann", "bob"]}
    rows.update(overrides)
    return pd.DataFrame(rows)


LABEL_CASES = {
    "unknown label": ({"label": ["cat", "bird"]}, 2, "label", "label not in data.classes"),
    "unknown id": ({"id": ["nope", None]}, 1, "id", "id not in pool"),
    "no annotator": ({"annotator": ["ann", None]}, 2, "annotator", "missing value"),
    "blank annotator": ({"annotator": ["  ", "bob"]}, 1, "annotator", "empty annotator"),
    "bad source": ({"source": ["human", "guess"]}, 2, "source", "source not one of"),
}


@pytest.mark.parametrize("case", LABEL_CASES, ids=list(LABEL_CASES))
def test_bad_labels_are_rejected_quarantined_and_change_nothing(seeded_project, case):
    overrides, row, column, reason = LABEL_CASES[case]
    before = snapshot(seeded_project)
    with pytest.raises(ValidationError) as info:
        collect_labels(
            _labels(seeded_project, **overrides), seeded_project, round_=2, file="export.csv"
        )
    error = info.value
    assert (error.file, error.row, error.column) == ("export.csv", row, column)
    assert reason in error.reason
    quarantined = _quarantine(error)
    assert ((quarantined["row"] == row) & (quarantined["column"] == column)).any()
    assert snapshot(seeded_project) == before
    summary = store.read_validation_summary(seeded_project, 2)["labels"]
    assert summary["success"] is False and summary["failed_rows"] >= 1


def test_good_labels_pass_and_are_summarised_per_round(seeded_project):
    collect_labels(_labels(seeded_project), seeded_project, round_=2)
    summary = store.read_validation_summary(seeded_project, 2)["labels"]
    assert summary["success"] is True and summary["rows"] == 2
    assert len(store.read_labels(seeded_project)) == 4


def test_training_gate_needs_min_per_class(seeded_project):
    with pytest.raises(ValidationError) as info:
        validate_training(store.read_labels(seeded_project), seeded_project, round_=1)
    assert info.value.column == "label"
    assert "class 'cat' has 1 label(s), fewer than data.min_per_class=2" in info.value.reason
    assert info.value.failures == 2  # cat and dog
    collect_labels(_labels(seeded_project), seeded_project, round_=2)
    assert validate_training(store.read_labels(seeded_project), seeded_project, round_=2)["success"]


def test_training_gate_rejects_holdout_ids(seeded_project):
    seeded_project.data.min_per_class = 1
    ingest(_csv(good_rows(2, start=60).assign(label=["cat", "dog"])), seeded_project, holdout=True)
    leaked = store.read_holdout(seeded_project).iloc[[0]][["id", "label"]]
    labels = pd.concat([store.read_labels(seeded_project), leaked], ignore_index=True)
    with pytest.raises(ValidationError) as info:
        validate_training(labels, seeded_project, round_=1)
    assert (info.value.row, info.value.column) == (3, "id")
    assert "holdout id" in info.value.reason


def test_cli_ingest_prints_one_clear_error_line(seeded_project):
    from flows.cli import app

    nan_value(seeded_project)
    before = snapshot(seeded_project)
    Path("params.yaml").write_text(
        "data:\n  feature_columns: [x1, x2]\n  classes: [cat, dog]\n", encoding="utf-8"
    )
    result = CliRunner().invoke(app, ["ingest", "bad.csv"])
    assert result.exit_code == 1
    output = " ".join(result.output.split())
    assert "error: bad.csv, row 2, column 'x1': missing value" in output
    assert "data/quarantine/ingest-" in output
    assert snapshot(seeded_project) == before
    ok = CliRunner().invoke(app, ["ingest", str(_csv(good_rows(2, start=80), "ok.csv"))])
    assert ok.exit_code == 0, ok.output
    assert "2 new row(s) added to the pool" in " ".join(ok.output.split())
