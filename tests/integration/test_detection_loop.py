"""Object detection through the real loop with the user's own detector (``model.task:
detection``, ``model.kind: external``): images with one drawn rectangle each, a detector that
returns one scored box per image, ranked by the box's margin; the simulated annotators (and a
real Label Studio server, through its API) answer with boxes, which the label log keeps as JSON
in pixels; the round logs the detector's box F1 on the holdout; ``labelwise export`` writes
COCO and YOLO from the loop's labels."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tasks.data import store
from tasks.data.export import export
from tasks.data.profile import DataProfile, resolve
from tasks.loop import demo, labeling, rounds
from tasks.tracking.runs import setup_tracking
from tests.integration import label_studio_client as ls

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

BATCH, N_IMAGES, WIDTH, HEIGHT = 6, 60, 48, 32

DETECTOR = '''
import json, os
import pandas as pd

MODEL_VERSION = "det-1"


def predict(items):
    """One box per image where the truth has one: the true box, sure of its class on images
    whose number is even, unsure (0.55) on odd ones; no box where the truth has none."""
    truth = json.loads(open(os.environ["DETECTOR_TRUTH"]).read())
    rows = []
    for item, path in zip(items["id"], items["image_path"]):
        for n, box in enumerate(truth[path]):
            sure = int(os.path.basename(path)[3:6]) % 2 == 0
            p = 0.97 if sure else 0.55
            other = "tall" if box["label"] == "wide" else "wide"
            rows.append({"id": item, "box_id": n, f"p_{box['label']}": p, f"p_{other}": 1 - p,
                         "x": box["x"], "y": box["y"], "w": box["w"], "h": box["h"]})
    columns = ["id", "box_id", "p_wide", "p_tall", "x", "y", "w", "h"]
    return pd.DataFrame(rows, columns=columns)
'''


def _images(root: Path) -> pd.DataFrame:
    """60 grey 48x32 images, each with one white rectangle (wide or tall) but every tenth,
    which is empty; their boxes as the label column holds them."""
    rng = np.random.default_rng(4)
    folder = root / "images"
    folder.mkdir()
    paths, labels = [], []
    for k in range(N_IMAGES):
        pixels = np.full((HEIGHT, WIDTH), 40, dtype=np.uint8)
        boxes = []
        if k % 10:
            w, h = (16, 6) if k % 3 else (6, 14)
            x, y = int(rng.integers(0, WIDTH - w)), int(rng.integers(0, HEIGHT - h))
            pixels[y : y + h, x : x + w] = 255
            label = "wide" if w > h else "tall"
            boxes = [{"label": label, "x": float(x), "y": float(y), "w": float(w), "h": float(h)}]
        path = folder / f"img{k:03d}.png"
        Image.fromarray(pixels).save(path)
        paths.append(str(path))
        labels.append(json.dumps(boxes))
    return pd.DataFrame({"image_path": paths, "label": labels})


@pytest.fixture
def detection_project(tmp_path, monkeypatch, make_settings):
    """The images as a detection project, and the detector module on the path."""
    monkeypatch.chdir(tmp_path)
    frame = _images(tmp_path)
    truth = {
        p: json.loads(label) for p, label in zip(frame["image_path"], frame["label"], strict=True)
    }
    (tmp_path / "truth.json").write_text(json.dumps(truth))
    monkeypatch.setenv("DETECTOR_TRUTH", str(tmp_path / "truth.json"))
    (tmp_path / "user_detector.py").write_text(DETECTOR)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("user_detector", None)

    def build(**annotation):
        settings = make_settings(
            project={"name": "it-detect", "seed": 3},
            data={"kind": "image", "classes": ["wide", "tall"]},
            model={"kind": "external", "task": "detection", "predict": "user_detector:predict"},
            strategy={"name": "margin", "batch_size": BATCH},
            monitor={"enabled": False},
            versioning={"enabled": True},
            annotation=annotation or {"backend": "simulated"},
            loop={"max_rounds": 2, "initial_labels": 0, "stop_set_size": 0},
        )
        return settings

    settings = build()
    profile = DataProfile(kind="image", task="detection", source="test images")
    assert demo.seed_project(settings, (frame, profile, "test images"))
    return build, truth


def test_a_detection_loop_ranks_by_box_margin_and_keeps_box_answers(detection_project, tmp_path):
    from flows.loop import loop_flow

    build, truth = detection_project
    settings = build()
    result = loop_flow(settings)

    assert result.status == "stopped" and len(result.rounds) == 2
    resolved = resolve(settings)
    assert resolved.evaluate.metric == "box_f1"
    pool = store.read_pool(settings).set_index("id")
    first = store.read_manifest(settings, 1)
    odd = [int(Path(p).stem[3:]) % 2 == 1 for p in pool.loc[first["id"], "image_path"]]
    assert all(odd)  # the unsure boxes (margin 0.1) before every sure one (0.94)
    assert set(first["source"]) == {"margin"} and set(first["model_version"]) == {"external:det-1"}

    log = store.read_labels(settings)
    assert len(log) == 2 * BATCH
    for item, label in zip(log["id"], log["label"], strict=True):
        assert json.loads(label) == truth[pool.loc[item, "image_path"]]

    state = rounds.load_round(settings, 2)
    assert state.status == "complete"
    # the holdout's boxes are found where the detector is sure (>= 0.5 claims every box here)
    assert state.info["metrics"]["box_recall"] == pytest.approx(1.0)
    assert state.info["metrics"]["box_f1"] == pytest.approx(1.0)
    runs = mlflow.search_runs(
        [setup_tracking(settings).experiment_id], filter_string="tags.`labelwise.kind` = 'round'"
    )
    assert len(runs) == 2 and (runs["metrics.box_f1"] == 1.0).all()

    coco_path, n = export(resolved, 2, "coco", tmp_path / "out" / "coco.json")
    coco = json.loads(coco_path.read_text())
    assert n == 2 * BATCH and len(coco["images"]) == n
    assert {(i["width"], i["height"]) for i in coco["images"]} == {(WIDTH, HEIGHT)}
    n_boxes = sum(len(json.loads(label)) for label in log["label"])
    assert len(coco["annotations"]) == n_boxes
    folder, _ = export(resolved, 2, "yolo", tmp_path / "out" / "yolo")
    assert len(list((folder / "labels").glob("*.txt"))) == n


def test_label_studio_shows_the_detectors_boxes_and_collects_the_drawn_ones(
    detection_project, label_studio, monkeypatch
):
    from flows.round import round_flow

    build, truth = detection_project
    settings = build(
        backend="label_studio",
        label_config="object_detection",
        project_title="labelwise it-detect",
    )
    monkeypatch.setenv("LABEL_STUDIO_URL", label_studio.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio.token)

    first = round_flow(settings, 1)
    assert first.status == "waiting"
    pool = store.read_pool(settings).set_index("id")
    backend = labeling.make_backend(settings)
    tasks = ls.tasks(label_studio, backend.project_id)
    assert len(tasks) == BATCH
    drawn = {}
    for task in tasks:
        item = task["data"]["lw_id"]
        boxes = truth[pool.loc[item, "image_path"]]
        (prediction,) = task["predictions"]
        regions = prediction["result"]
        assert len(regions) == len(boxes)
        for region, box in zip(regions, boxes, strict=True):  # percent of the 48x32 image
            assert region["type"] == "rectanglelabels"
            assert region["value"]["x"] == pytest.approx(100 * box["x"] / WIDTH)
            assert region["value"]["height"] == pytest.approx(100 * box["h"] / HEIGHT)
            assert region["value"]["rectanglelabels"] == [box["label"]]
        # the annotator moves each box 2 px right and keeps its class
        moved = [dict(r, value=dict(r["value"], x=r["value"]["x"] + 200 / WIDTH)) for r in regions]
        for r in moved:
            r.pop("score", None)
        ls.annotate(label_studio, task["id"], moved)
        drawn[item] = [dict(b, x=b["x"] + 2) for b in boxes]

    done = round_flow(settings, 1)
    assert done.status == "complete"
    log = store.read_labels(settings)
    assert len(log) == BATCH
    for item, label in zip(log["id"], log["label"], strict=True):
        got = json.loads(label)
        want = drawn[item]
        assert len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert g["label"] == w["label"]
            assert [g[k] for k in "xywh"] == pytest.approx([w[k] for k in "xywh"])
