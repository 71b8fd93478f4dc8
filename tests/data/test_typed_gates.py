"""Bad input of each data type, at the gates: an empty text, a text column of numbers, a missing
or broken image file, a sentence's tags of the wrong length, overlapping spans, a regression
label that is not a (finite) number. Each is an error naming the file, row and column, the bad
rows are quarantined, and the pool and the label log are byte-for-byte what they were; an NER
round whose answers fail goes on once the answer file is fixed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tasks.data import store
from tasks.data.gates import ValidationError
from tasks.data.ingest import ingest
from tasks.data.labels import collect_labels
from tasks.data.profile import DataProfile, write_profile
from tasks.settings import Settings

pytestmark = pytest.mark.data


def _project(root: Path, kind: str, task: str, **data: object) -> Settings:
    settings = Settings.model_validate(
        {
            "project": {"work_dir": str(root / ".labelwise"), "data_dir": str(root / "data")},
            "data": {"kind": kind, **data},
            "model": {"task": task},
        }
    )
    Path(settings.project.data_dir).mkdir(parents=True, exist_ok=True)
    write_profile(settings, DataProfile(kind=kind, task=task))
    return settings


def _bytes(settings: Settings) -> dict[str, bytes | None]:
    paths = store.data_paths(settings)
    return {p.name: (p.read_bytes() if p.exists() else None) for p in (paths.pool, paths.labels)}


def _rejected(settings: Settings, call, *, row: int, column: str, says: str) -> ValidationError:
    before = _bytes(settings)
    with pytest.raises(ValidationError) as info:
        call()
    error = info.value
    assert f"row {row}" in error.message and f"column {column!r}" in error.message, error.message
    assert says in error.message, error.message
    quarantined = pd.read_parquet(error.quarantine)
    assert row in set(quarantined["row"])
    assert _bytes(settings) == before
    return error


def test_an_empty_or_blank_text_is_rejected_by_row(tmp_path):
    settings = _project(tmp_path, "text", "classification")
    file = tmp_path / "texts.csv"
    texts = pd.DataFrame({"text": ["a real message", "   ", "another one"], "channel": "email"})
    texts.to_csv(file, index=False)
    _rejected(settings, lambda: ingest(file, settings), row=2, column="text", says="whitespace")


def test_a_text_column_of_numbers_is_rejected_as_the_wrong_column(tmp_path):
    settings = _project(tmp_path, "text", "classification")
    file = tmp_path / "texts.csv"
    pd.DataFrame({"text": [1.5, 2.0, 3.25]}).to_csv(file, index=False)
    before = _bytes(settings)
    with pytest.raises(ValidationError, match="holds numbers, not text"):
        ingest(file, settings)
    assert _bytes(settings) == before


def test_a_text_file_that_is_not_utf8_is_rejected_naming_the_file(tmp_path):
    settings = _project(tmp_path, "text", "classification")
    file = tmp_path / "texts.csv"
    file.write_bytes(b"text\nfine\ncaf\xe9 latin-1\n")
    before = _bytes(settings)
    with pytest.raises(ValidationError, match="UTF-8"):
        ingest(file, settings)
    assert _bytes(settings) == before


def _png(path: Path, mode: str = "L") -> Path:
    pixels = np.arange(64, dtype=np.uint8).reshape(8, 8) * 3
    image = Image.fromarray(pixels).convert(mode)
    image.save(path)
    return path


@pytest.mark.parametrize("problem", ["missing", "broken"])
def test_a_missing_or_broken_image_file_is_rejected_by_row(tmp_path, problem):
    settings = _project(tmp_path, "image", "classification")
    good = _png(tmp_path / "good.png")
    bad = tmp_path / "bad.png"
    if problem == "broken":
        bad.write_bytes(b"\x89PNG\r\n\x1a\n not an image at all")
    file = tmp_path / "images.csv"
    pd.DataFrame({"image_path": [str(good), str(bad)]}).to_csv(file, index=False)
    says = "no image file" if problem == "missing" else "not a readable image"
    _rejected(settings, lambda: ingest(file, settings), row=2, column="image_path", says=says)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "CMYK", "I;16"])
def test_images_of_every_mode_are_read_as_the_same_grey_pixels(tmp_path, mode):
    from tasks.features.images import image_pixels

    grey = image_pixels([_png(tmp_path / "grey.png")], size=(8, 8))
    suffix = ".tif" if mode in ("CMYK", "I;16") else ".png"  # what each mode can be saved as
    other = tmp_path / f"other{suffix}"
    Image.open(tmp_path / "grey.png").convert(mode).save(other)
    pixels = image_pixels([other], size=(8, 8))
    tolerance = 0.01 if mode in ("P", "CMYK", "I;16") else 1e-6
    np.testing.assert_allclose(pixels, grey, atol=tolerance)


def _ner(tmp_path: Path) -> tuple[Settings, list[str]]:
    settings = _project(tmp_path, "tokens", "ner", classes=["person", "place"])
    file = tmp_path / "sentences.jsonl"
    sentences = [["Ann", "met", "Bo"], ["in", "Rome", "today"]]
    file.write_text("".join(json.dumps({"text": json.dumps(s)}) + "\n" for s in sentences))
    ingest(file, settings)
    return settings, store.read_pool(settings)["id"].tolist()


def _answers(ids: list[str], labels: list[str]) -> pd.DataFrame:
    return pd.DataFrame({"id": ids, "label": labels, "annotator": "ann", "source": "human"})


def test_tags_of_the_wrong_length_or_an_unknown_type_are_rejected(tmp_path):
    settings, ids = _ner(tmp_path)
    good = json.dumps(["B-person", "O", "B-person"])
    short = json.dumps(["O", "B-place"])
    _rejected(
        settings,
        lambda: collect_labels(_answers(ids, [good, short]), settings, round_=1),
        row=2,
        column="label",
        says="2 tags for a sentence of 3 tokens",
    )
    unknown = json.dumps(["O", "B-date", "O"])
    _rejected(
        settings,
        lambda: collect_labels(_answers(ids, [good, unknown]), settings, round_=1),
        row=2,
        column="label",
        says="'B-date' is not O, B-<type> or I-<type>",
    )


def test_overlapping_spans_are_rejected_and_clean_spans_become_tags(tmp_path):
    settings, ids = _ner(tmp_path)
    # "Ann met Bo": Ann 0-3, met 4-7, Bo 8-10; two spans both covering "met"
    overlapping = json.dumps(
        [{"start": 0, "end": 7, "label": "person"}, {"start": 4, "end": 10, "label": "person"}]
    )
    _rejected(
        settings,
        lambda: collect_labels(_answers(ids[:1], [overlapping]), settings, round_=1),
        row=1,
        column="label",
        says="overlaps another span",
    )


def test_a_regression_label_that_is_not_a_finite_number_is_rejected(tmp_path):
    settings = _project(tmp_path, "tabular", "regression")
    file = tmp_path / "rows.csv"
    pd.DataFrame({"x": [1.0, 2.0, 3.0]}).to_csv(file, index=False)
    ingest(file, settings)
    ids = store.read_pool(settings)["id"].tolist()
    for bad, says in (("lots", "not a number"), ("inf", "not a finite number")):
        _rejected(
            settings,
            lambda bad=bad: collect_labels(_answers(ids, ["1.5", bad, "2"]), settings, round_=1),
            row=2,
            column="label",
            says=says,
        )
    collect_labels(_answers(ids, ["1.5", "-2e3", "7"]), settings, round_=1)
    assert store.read_labels(settings)["label"].tolist() == ["1.5", "-2e3", "7"]


def test_an_ner_round_whose_answers_fail_goes_on_once_the_file_is_fixed(tmp_path):
    from tasks.loop import labeling, rounds

    settings, ids = _ner(tmp_path)
    settings = settings.model_copy(
        update={
            "annotation": settings.annotation.model_copy(
                update={"backend": "files", "files_dir": tmp_path / "team"}
            )
        }
    )
    store.write_manifest(settings, 1, ids, [None, None], strategy="random")
    rounds.save_round(settings, rounds.RoundState(round=1, id="round-0001"))
    labeling.dispatch(settings, 1)
    inbox = tmp_path / "team" / "inbox"
    inbox.mkdir(parents=True)
    answers = inbox / "answers.csv"
    spans = json.dumps([{"start": 0, "end": 3, "label": "person"}])  # "Ann" in "Ann met Bo"
    bad = json.dumps(
        [{"start": 3, "end": 9, "label": "place"}, {"start": 4, "end": 6, "label": "place"}]
    )
    pd.DataFrame({"id": ids, "label": [spans, bad], "annotator": "ann"}).to_csv(
        answers, index=False
    )
    before = _bytes(settings)
    with pytest.raises(ValidationError, match="overlaps another span"):
        labeling.collect(settings, 1)
    assert _bytes(settings) == before and not rounds.load_round(settings, 1).done("collected")

    good = json.dumps([{"start": 3, "end": 8, "label": "place"}])  # "Rome" in "in Rome today"
    pd.DataFrame({"id": ids, "label": [spans, good], "annotator": "ann"}).to_csv(
        answers, index=False
    )
    state = labeling.collect(settings, 1)
    assert state.done("collected")
    stored = dict(zip(*store.read_labels(settings)[["id", "label"]].T.to_numpy(), strict=True))
    assert json.loads(stored[ids[0]]) == ["B-person", "O", "O"]
    assert json.loads(stored[ids[1]]) == ["O", "B-place", "O"]
