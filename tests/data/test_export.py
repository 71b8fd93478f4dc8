"""``labelwise export``: the labels of rounds up to N, one consensus label per item (a later
answer of an annotator supersedes, several annotators are aggregated), with the item's raw
columns; the holdout only when asked; a round the log does not hold is refused."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from flows.cli import app
from tasks.data import store
from tasks.data.export import ExportError, export, labels_at
from tasks.data.profile import resolve
from tasks.loop import demo

pytestmark = pytest.mark.data


@pytest.fixture
def project(make_settings, tmp_path, monkeypatch):
    """The digits demo (20 seed labels in round 0) and answers of rounds 1 and 2 written to the
    label log by hand: in round 2 annotator a changes their answer on an item of round 1, and
    three annotators answer one item (majority 7)."""
    monkeypatch.chdir(tmp_path)
    settings = make_settings(
        project={"name": "export", "seed": 2},
        loop={"demo_rows": 120, "initial_labels": 20, "stop_set_size": 10},
    )
    assert demo.seed_project(settings)
    seeds = set(store.read_labels(settings)["id"])
    free = [i for i in store.read_pool(settings)["id"] if i not in seeds]
    now = pd.Timestamp("2026-12-03", tz="UTC")
    rows = [
        (free[0], "3", "a", 1, now),
        (free[1], "4", "a", 1, now),
        (free[0], "5", "a", 2, now + pd.Timedelta("1h")),  # a's second answer supersedes
        (free[2], "7", "a", 2, now),
        (free[2], "7", "b", 2, now),
        (free[2], "1", "c", 2, now),
    ]
    log = pd.DataFrame(rows, columns=["id", "label", "annotator", "round", "time"])
    store.append_labels(settings, log.assign(source="human"))
    return resolve(settings), free


def test_labels_up_to_a_round_with_the_items_raw_columns(project):
    settings, free = project
    first = labels_at(settings, 1).set_index("id")
    assert len(first) == 22 and free[2] not in first.index
    assert first.loc[free[0], "label"] == "3" and first.loc[free[0], "round"] == 1
    pool = store.read_pool(settings).set_index("id")
    pixel = [c for c in first.columns if c.startswith("px")][20]
    assert first.loc[free[1], pixel] == pool.loc[free[1], pixel]  # the raw input travels along
    assert set(first["split"]) == {"train"} and "ingest_batch" not in first.columns

    second = labels_at(settings, 2).set_index("id")
    assert len(second) == 23
    assert second.loc[free[0], "label"] == "5"  # the later answer, as training reads it
    assert second.loc[free[2], "label"] == "7"  # two of three annotators


def test_the_holdout_only_when_asked_and_never_a_round_the_log_lacks(project, tmp_path):
    settings, _ = project
    n_holdout = len(store.read_holdout(settings))
    with_holdout = labels_at(settings, 2, include_holdout=True)
    assert (with_holdout["split"] == "holdout").sum() == n_holdout
    with pytest.raises(ExportError, match=r"--round 9: the label log has rounds 0..2"):
        export(settings, 9, "csv", tmp_path / "x.csv")


def test_the_export_command_writes_csv_and_parquet(project, tmp_path):
    settings, free = project
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(settings.model_dump(mode="json")))
    out = tmp_path / "exports" / "labels.csv"
    result = CliRunner().invoke(app, ["export", "--params", str(params), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "exported 23 labeled item(s) up to round 2 as csv" in result.output
    written = pd.read_csv(out, dtype={"id": str, "label": str})
    assert dict(zip(written["id"], written["label"], strict=True))[free[0]] == "5"

    parquet = tmp_path / "labels-r1.parquet"
    args = ["export", "--params", str(params), "--round", "1", "--out", str(parquet)]
    assert CliRunner().invoke(app, args).exit_code == 0
    assert len(pd.read_parquet(parquet)) == 22

    bad = CliRunner().invoke(app, [*args[:-1], str(parquet), "--format", "pascal"])
    assert bad.exit_code == 1 and "one of csv, coco, yolo" in bad.output


def test_a_class_label_project_has_no_boxes_to_export(project, tmp_path):
    settings, _ = project
    with pytest.raises(ExportError, match="this project labels tabular items: use --format csv"):
        export(settings, 2, "coco", tmp_path / "coco.json")


@pytest.fixture
def box_project(make_settings, tmp_path, monkeypatch):
    """A project of 16x16 PNG images (digits) without seed labels, and box answers for three of
    them in the label log (one image with no object)."""
    import json

    import numpy as np
    from PIL import Image

    from flows.cli.run import own_items

    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "images"
    for k in range(30):
        kind = folder / ("cat", "dog")[k % 2]
        kind.mkdir(parents=True, exist_ok=True)
        pixels = np.full((16, 16), 16 * k % 255, dtype=np.uint8)
        Image.fromarray(pixels).save(kind / f"img{k:02d}.png")
    settings = make_settings(
        project={"name": "boxes", "seed": 2},
        data={"classes": ["cat", "dog"]},
        loop={"initial_labels": 0, "stop_set_size": 2, "holdout_fraction": 0.2},
    )
    assert demo.seed_project(settings, own_items(settings, folder, "label", None))
    settings = resolve(settings)
    ids = list(store.read_pool(settings)["id"][:3])
    answers = [
        [{"label": "dog", "x": 2.0, "y": 4.0, "w": 8.0, "h": 6.0}],
        [{"label": "cat", "points": [[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]]}],
        [],
    ]
    now = pd.Timestamp("2026-12-03", tz="UTC")
    log = pd.DataFrame(
        {
            "id": ids,
            "label": [json.dumps(a) for a in answers],
            "annotator": "a",
            "round": 1,
            "time": now,
            "source": "human",
        }
    )
    store.append_labels(settings, log)
    return settings, ids


def test_box_answers_export_as_coco_and_yolo(box_project, tmp_path):
    import json

    settings, ids = box_project
    path, n = export(settings, 1, "coco", tmp_path / "coco" / "labels.json")
    coco = json.loads(path.read_text())
    assert n == 3 and [c["name"] for c in coco["categories"]] == ["cat", "dog"]
    assert {(i["width"], i["height"]) for i in coco["images"]} == {(16, 16)}
    by_image = {i["lw_id"]: i["id"] for i in coco["images"]}
    boxes = {a["image_id"]: a for a in coco["annotations"]}
    dog = boxes[by_image[ids[0]]]
    assert dog["bbox"] == [2.0, 4.0, 8.0, 6.0] and dog["category_id"] == 2
    assert boxes[by_image[ids[1]]]["area"] == pytest.approx(32.0)  # the triangle's shoelace
    assert by_image[ids[2]] not in boxes  # no object in the third image

    folder, _ = export(settings, 1, "yolo", tmp_path / "yolo")
    labels = sorted((folder / "labels").glob("*.txt"))
    assert len(labels) == 3 and (folder / "classes.txt").read_text() == "cat\ndog\n"
    lines = {p.read_text() for p in labels}
    # a polygon in the export: every box as its four corners (segmentation lines)
    assert "1 0.125 0.25 0.625 0.25 0.625 0.625 0.125 0.625\n" in lines
    assert "" in lines


def test_register_model_is_for_your_own_model_only(project, tmp_path):
    settings, _ = project
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(settings.model_dump(mode="json")))
    args = ["register-model", "--params", str(params), "--uri", "s3://x/model"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert "labelwise registers its own models each round" in result.output
