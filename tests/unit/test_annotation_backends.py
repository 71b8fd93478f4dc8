"""Simulated and files annotation backends, the factory and Label Studio's label configs."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.annotation import (
    AnnotationBackend,
    AnnotationBackendError,
    SimulatedAnnotator,
    SimulatedBackend,
    make_backend,
)
from tasks.annotation.files import AnnotationFileError, FilesBackend
from tasks.annotation.label_studio_config import KINDS, label_config
from tasks.data.labels import unseen
from tasks.settings import Settings

pytestmark = pytest.mark.unit
CLASSES = ["a", "b", "c"]


def batch(ids, round_=1) -> pd.DataFrame:
    ids = list(ids)
    return pd.DataFrame(
        {
            "id": ids,
            "round": round_,
            "rank": range(1, len(ids) + 1),
            "score": np.linspace(1.0, 0.0, len(ids)),
            "text": [f"text of {i}" for i in ids],
        }
    )


def truth(n: int, seed: int = 0) -> dict[str, str]:
    rng = np.random.default_rng(seed)
    return {f"i{i}": CLASSES[int(rng.integers(3))] for i in range(n)}


class Clock:
    def __init__(self):
        self.now = pd.Timestamp("2026-01-01", tz="UTC")

    def __call__(self) -> pd.Timestamp:
        return self.now


# -- simulated ---------------------------------------------------------------------------------


def test_simulated_constructor_stays_compatible_and_is_a_backend(tmp_path):
    backend = SimulatedBackend({"x": "a"}, CLASSES, tmp_path / "s.parquet")
    assert isinstance(backend, AnnotationBackend)
    assert backend.dispatch(batch(["x"]), 1) == ["x"]
    assert backend.collect(1)["label"].tolist() == ["a"]


def test_simulated_noise_follows_the_annotators_accuracy(tmp_path):
    t = truth(3000)
    backend = SimulatedBackend(
        t, CLASSES, tmp_path / "s.parquet", annotators=[SimulatedAnnotator("n", accuracy=0.7)]
    )
    backend.dispatch(batch(t), 1)
    got = backend.collect(1)
    share = (got["label"] == got["id"].map(t)).mean()
    assert share == pytest.approx(0.7, abs=0.03)


def test_simulated_confusion_matrix_is_followed_row_by_row(tmp_path):
    # true "a" is always answered "b"; "b" and "c" are answered correctly
    confusion = ((0.0, 1.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
    t = truth(300)
    backend = SimulatedBackend(
        t,
        CLASSES,
        tmp_path / "s.parquet",
        annotators=[SimulatedAnnotator("m", confusion=confusion)],
    )
    backend.dispatch(batch(t), 1)
    got = backend.collect(1).assign(true=lambda d: d["id"].map(t))
    assert (got.loc[got["true"] == "a", "label"] == "b").all()
    assert (got.loc[got["true"] != "a", "label"] == got.loc[got["true"] != "a", "true"]).all()


def test_bad_confusion_matrix_is_rejected():
    with pytest.raises(ValueError, match="rows summing to 1"):
        SimulatedAnnotator("x", confusion=((0.5, 0.4, 0.0),) * 3).matrix(3)


def test_adversarial_annotator_is_never_right(tmp_path):
    t = truth(200)
    backend = SimulatedBackend(
        t,
        CLASSES,
        tmp_path / "s.parquet",
        annotators=[SimulatedAnnotator("liar", adversarial=True)],
    )
    backend.dispatch(batch(t), 1)
    got = backend.collect(1)
    assert not (got["label"] == got["id"].map(t)).any()


def test_simulated_latency_hides_answers_until_the_clock_passes_them(tmp_path):
    clock = Clock()
    t = truth(20)
    backend = SimulatedBackend(
        t,
        CLASSES,
        tmp_path / "s.parquet",
        annotators=[SimulatedAnnotator("slow", latency=60.0)],
        clock=clock,
    )
    backend.dispatch(batch(t), 1)
    assert backend.collect(1).empty
    assert backend.progress(1).dispatched == 20 and backend.progress(1).annotated == 0
    clock.now += pd.Timedelta(seconds=60)
    partial = backend.progress(1).annotated
    assert 0 < partial < 20  # latency 30-90 s: some answers after 60 s, not all
    clock.now += pd.Timedelta(seconds=31)
    assert backend.progress(1).annotated == 20 and backend.progress(1).fraction == 1.0


def test_simulated_redispatch_is_a_no_op_and_overlap_share_sends_k(tmp_path):
    t = truth(400)
    crowd = [SimulatedAnnotator(f"a{i}") for i in range(4)]
    backend = SimulatedBackend(
        t,
        CLASSES,
        tmp_path / "s.parquet",
        annotators=crowd,
        annotators_per_item=3,
        overlap_share=0.25,
    )
    assert len(backend.dispatch(batch(t), 1)) == 400
    assert backend.dispatch(batch(t), 1) == []
    votes = backend.collect(1).groupby("id").size()
    assert set(votes.unique()) == {1, 3}
    assert (votes == 3).mean() == pytest.approx(0.25, abs=0.06)
    assert not backend.collect(1).duplicated(["id", "annotator"]).any()


def test_request_more_adds_one_annotator_who_had_not_seen_the_item(tmp_path):
    t = truth(5)
    crowd = [SimulatedAnnotator(f"a{i}") for i in range(3)]
    backend = SimulatedBackend(t, CLASSES, tmp_path / "s.parquet", annotators=crowd)
    backend.dispatch(batch(t), 1)
    assert backend.request_more(["i0", "i1"]) == ["i0", "i1"]
    votes = backend.collect(1)
    assert votes.groupby("id").size().to_dict() == {"i0": 2, "i1": 2, "i2": 1, "i3": 1, "i4": 1}
    assert not votes.duplicated(["id", "annotator"]).any()


def test_new_annotations_drops_rows_already_stored(tmp_path):
    t = truth(4)
    backend = SimulatedBackend(t, CLASSES, tmp_path / "s.parquet")
    backend.dispatch(batch(t), 1)
    got = backend.collect(1)
    assert len(unseen(got, got.iloc[:3])) == 1
    assert len(unseen(got, got.iloc[:0])) == 4


# -- files -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_files_round_trip(tmp_path, fmt):
    backend = FilesBackend(tmp_path, file_format=fmt, classes=CLASSES)
    assert backend.dispatch(batch(["p1", "p2", "p3"], 2), 2) == ["p1", "p2", "p3"]
    assert backend.dispatch(batch(["p1", "p2", "p4"], 2), 2) == ["p4"]
    out = sorted((tmp_path / "outbox").iterdir())
    assert [p.name for p in out] == [f"round-0002-1.{fmt}", f"round-0002-2.{fmt}"]
    answers = pd.DataFrame(
        {"id": ["p1", "p2", "p1"], "label": ["a", "b", "c"], "annotator": ["ann", "ann", "bob"]}
    )
    (tmp_path / "inbox").mkdir()
    if fmt == "csv":
        answers.to_csv(tmp_path / "inbox" / "done.csv", index=False)
    else:
        answers.to_json(tmp_path / "inbox" / "done.jsonl", orient="records", lines=True)
    got = backend.collect(2)
    assert got[["id", "label", "annotator"]].values.tolist() == answers.values.tolist()
    assert (got["round"] == 2).all() and (got["source"] == "human").all()
    assert backend.progress(2).dispatched == 4 and backend.progress(2).annotated == 2
    assert backend.collect(1).empty


@pytest.mark.parametrize(
    ("content", "row", "column", "message"),
    [
        ("id,label,annotator\np1,a,ann\np2,zebra,ann\n", 3, "label", "not one of"),
        ("id,label,annotator\np1,a,\n", 2, "annotator", "empty value"),
        ("id,label,annotator\nnope,a,ann\n", 2, "id", "never dispatched"),
        ("id,label\np1,a\n", None, "annotator", "missing column"),
        ("id,label,annotator,time\np1,a,ann,yesterday-ish\n", 2, "time", "not a date-time"),
    ],
)
def test_files_bad_rows_name_file_row_and_column(tmp_path, content, row, column, message):
    backend = FilesBackend(tmp_path, classes=CLASSES)
    backend.dispatch(batch(["p1", "p2"]), 1)
    path = tmp_path / "inbox" / "answers.csv"
    path.parent.mkdir()
    path.write_text(content)
    with pytest.raises(AnnotationFileError, match=message) as info:
        backend.collect()
    assert (info.value.file, info.value.row, info.value.column) == (path, row, column)
    assert str(path) in str(info.value)


def test_files_bad_jsonl_line_is_reported_with_its_line_number(tmp_path):
    backend = FilesBackend(tmp_path, file_format="jsonl", classes=CLASSES)
    backend.dispatch(batch(["p1"]), 1)
    path = tmp_path / "inbox" / "a.jsonl"
    path.parent.mkdir()
    path.write_text(json.dumps({"id": "p1", "label": "a", "annotator": "x"}) + "\n{oops\n")
    with pytest.raises(AnnotationFileError, match="not valid JSON") as info:
        backend.collect()
    assert info.value.row == 2


# -- factory and Label Studio configs ------------------------------------------------------------


def settings(tmp_path: Path, **annotation) -> Settings:
    return Settings.model_validate(
        {
            "project": {"work_dir": str(tmp_path / "w")},
            "data": {"classes": CLASSES},
            "annotation": annotation,
        }
    )


def test_make_backend_builds_each_configured_backend(tmp_path, monkeypatch):
    sim = make_backend(settings(tmp_path), truth={"x": "a"})
    assert isinstance(sim, SimulatedBackend) and sim.classes == CLASSES
    files = make_backend(settings(tmp_path, backend="files", file_format="jsonl"))
    assert isinstance(files, FilesBackend) and files.directory == tmp_path / "w" / "annotation"
    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    with pytest.raises(AnnotationBackendError, match="LABEL_STUDIO_URL"):
        make_backend(settings(tmp_path, backend="label_studio"))
    monkeypatch.setenv("LABEL_STUDIO_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", "secret-token-value")
    ls = make_backend(settings(tmp_path, backend="label_studio", project_title="p1x"))
    assert ls.project_title == "p1x" and "secret-token-value" not in repr(ls)
    with pytest.raises(ValueError, match="truth"):
        make_backend(settings(tmp_path))


def test_label_studio_unreachable_raises_with_url_and_without_token(tmp_path, monkeypatch):
    from tasks.annotation.label_studio import LabelStudioBackend

    backend = LabelStudioBackend(
        url="http://127.0.0.1:9", token="secret-token-value", classes=CLASSES, retry_seconds=1.0
    )
    with pytest.raises(AnnotationBackendError) as info:
        backend.collect()
    assert "http://127.0.0.1:9/api/projects" in str(info.value)
    assert "secret-token-value" not in str(info.value)


def test_unknown_annotation_setting_is_rejected():
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        Settings.model_validate({"annotation": {"url": "http://x"}})


@pytest.mark.parametrize("kind", KINDS)
def test_label_configs_are_valid_xml_with_a_label_control(kind):
    root = ET.fromstring(label_config(kind, ["PER", 'O&<>"']))
    control = root.find(".//*[@name='label']")
    assert control is not None and control.tag == ("Labels" if kind == "ner" else "Choices")
    assert [c.get("value") for c in control] == ["PER", 'O&<>"']


# -- waiting for a quorum ------------------------------------------------------------------------


# -- the local Label Studio server's set-up --------------------------------------------------------


def test_server_environment_drops_stray_variables_and_hides_secrets(tmp_path, monkeypatch):
    from tasks.annotation.server import LabelStudioServer, credentials, local_server

    monkeypatch.setenv("PORT", "1234")
    monkeypatch.setenv("USERNAME", "someone")
    monkeypatch.setenv("LABEL_STUDIO_HOST", "http://elsewhere")
    server = LabelStudioServer(tmp_path / "venv", tmp_path / "data", port=9999)
    env = server.environment()
    assert "PORT" not in env and "USERNAME" not in env and "LABEL_STUDIO_HOST" not in env
    assert env["LABEL_STUDIO_USER_TOKEN"] == server.token
    assert env["LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN"] == "true"
    assert server.token not in repr(server) and server.password not in repr(server)
    first = credentials(tmp_path / "data")
    assert credentials(tmp_path / "data") == first  # the token survives restarts
    assert (tmp_path / "data" / "labelwise-credentials.json").stat().st_mode & 0o077 == 0
    assert local_server(tmp_path / "venv", tmp_path / "data").token == first["token"]
