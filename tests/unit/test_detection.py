"""Detection pieces of the loop: box IoU and F1 on hand-computed cases, Label Studio's box
answers read into the label log's JSON (an empty answer is an answer; a rotated box names the
task), the collect gate on regions, and the settings that tie detection to your own model."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tasks.annotation.boxes import Box, Polygon
from tasks.annotation.label_studio_payloads import PayloadError, read_task
from tasks.data.typed_checks import label_failures
from tasks.model.metrics import box_f1, box_iou, evaluate_detector
from tasks.settings import Settings

pytestmark = pytest.mark.unit


def test_iou_of_boxes_by_hand():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[5, 0, 10, 10], [20, 20, 5, 5], [0, 0, 10, 10]])
    # overlap 5x10 = 50, union 100 + 100 - 50 = 150
    np.testing.assert_allclose(box_iou(a, b), [[50 / 150, 0.0, 1.0]])


def test_f1_matches_each_true_box_once_by_score_and_class():
    truth = [[Box("car", 0, 0, 10, 10), Box("car", 30, 0, 10, 10)], [Box("dog", 0, 0, 4, 4)]]
    pred = [
        [
            Box("car", 0, 0, 10, 10, 0.9),  # matches the first car
            Box("car", 1, 0, 10, 10, 0.8),  # IoU 0.82 with the same car: already taken
            Box("dog", 30, 0, 10, 10, 0.7),  # right place, wrong class
        ],
        [Polygon("dog", ((0, 0), (4, 0), (4, 4), (0, 4)), 0.6)],  # its bounds match
    ]
    metrics = evaluate_detector(truth, pred)
    assert metrics["box_precision"] == pytest.approx(2 / 4)
    assert metrics["box_recall"] == pytest.approx(2 / 3)
    assert box_f1(truth, pred) == pytest.approx(2 * 2 / (4 + 3))
    assert box_f1([[]], [[]]) == 1.0  # nothing to find, nothing claimed


def _task(result):
    return {
        "id": 7,
        "data": {"lw_id": "img-1", "lw_round": 1},
        "annotations": [
            {"id": 3, "completed_by": 1, "created_at": "2026-12-03T00:00:00Z", "result": result}
        ],
    }


def _rectangle(**value):
    return {
        "from_name": "label",
        "to_name": "image",
        "type": "rectanglelabels",
        "original_width": 200,
        "original_height": 100,
        "value": {"x": 5, "y": 20, "width": 25, "height": 40, "rectanglelabels": ["car"]} | value,
    }


def test_label_studio_box_answers_become_pixel_json_and_nothing_drawn_is_an_answer():
    task = read_task(_task([_rectangle()]), "object_detection")
    (answer,) = task.annotations
    assert json.loads(answer.label) == [{"label": "car", "x": 10, "y": 20, "w": 50, "h": 40}]
    empty = read_task(_task([]), "polygon_segmentation")
    assert empty.annotations[0].label == "[]"
    with pytest.raises(PayloadError, match=r"task 7 \(item 'img-1'\).*rotated by 30 degrees"):
        read_task(_task([_rectangle(rotation=30)]), "object_detection")


def test_the_collect_gate_names_a_box_outside_its_image(tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(np.zeros((20, 30), dtype=np.uint8)).save(path)  # 30 wide, 20 high
    settings = Settings.model_validate(
        {
            "data": {"kind": "image", "classes": ["car"]},
            "model": {"kind": "external", "task": "detection", "predict": "m:f"},
        }
    )
    pool = pd.DataFrame({"id": ["a"], "image_path": [str(path)]})
    answers = pd.DataFrame(
        {
            "id": ["a", "a", "a"],
            "label": [
                json.dumps([{"label": "car", "x": 0, "y": 0, "w": 30, "h": 20}]),
                json.dumps([{"label": "car", "x": 25, "y": 0, "w": 10, "h": 5}]),
                json.dumps([{"label": "bus", "x": 0, "y": 0, "w": 5, "h": 5}]),
            ],
        }
    )
    failures = label_failures(answers, settings, pool)
    assert [f.row for f in failures] == [1, 2]
    assert "box 0, field 'x'" in failures[0].reason and "30 px" in failures[0].reason
    assert "bus" in failures[1].reason


def test_detection_needs_your_own_model():
    with pytest.raises(ValueError, match=r"model.task detection needs model.kind external"):
        Settings.model_validate({"model": {"task": "detection"}})
    ok = Settings.model_validate(
        {"model": {"kind": "external", "task": "detection", "predict": "m:f"}}
    )
    assert ok.model.task == "detection"
