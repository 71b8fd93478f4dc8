"""Boxes and polygons against the real Label Studio server: a project with ``box_label_config``,
an image task imported with the user's predicted boxes as a pre-annotation
(``prediction_results``), an annotator's drawing submitted through the API, read back as
``LabelStudioBackend.tasks()`` reads every task, and turned into pixels by ``boxes_from_result``.

What is checked: the server parses the interface as a RectangleLabels / PolygonLabels control over
the image with the classes; it stores and returns the prediction, which reads back as the
predicted pixel boxes; what the annotator drew (in Label Studio's percent units, as its editor
submits it) comes back as the pixel boxes drawn; an image with nothing drawn is an empty answer;
``to_coco`` of what was read agrees with Label Studio's own COCO export of the project (boxes,
areas, polygon segmentations).
"""

from __future__ import annotations

import io
import json
import zipfile

import httpx
import pytest
from PIL import Image, ImageDraw

from tasks.annotation.boxes import (
    Box,
    Polygon,
    boxes_from_result,
    check_boxes,
    decode_boxes,
    encode_boxes,
    prediction_results,
)
from tasks.annotation.label_studio import LabelStudioBackend, image_source
from tasks.annotation.label_studio_config import box_label_config
from tasks.export.detection import to_coco
from tests.integration import label_studio_client as ls

pytestmark = pytest.mark.integration

CLASSES = ["car", "person"]
WIDTH, HEIGHT = 200, 100


def _close(got: list, want: list) -> None:
    """The same regions, coordinates within 1e-9 px (percent units do not round-trip exactly)."""
    assert [type(g) for g in got] == [type(w) for w in want]
    for g, w in zip(got, want, strict=True):
        assert (g.label, g.score) == (w.label, w.score)
        if isinstance(w, Box):
            assert (g.x, g.y, g.w, g.h) == pytest.approx((w.x, w.y, w.w, w.h), abs=1e-9)
        else:
            assert len(g.points) == len(w.points)
            for gp, wp in zip(g.points, w.points, strict=True):
                assert gp == pytest.approx(wp, abs=1e-9)


@pytest.fixture
def image(tmp_path) -> str:
    """A 200 x 100 PNG (a car-ish block and a person-ish block), as the task's ``data:`` URI."""
    picture = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(picture)
    draw.rectangle((10, 20, 60, 60), fill="red")
    draw.rectangle((120, 10, 150, 90), fill="blue")
    path = tmp_path / "street.png"
    picture.save(path)
    return image_source(path)


def _project(server, title: str, shape: str) -> int:
    project = ls.api(
        server,
        "POST",
        "/api/projects",
        json={"title": title, "label_config": box_label_config(CLASSES, shape)},
    )
    return int(project["id"])


def _import(server, project: int, tasks: list[dict]) -> None:
    ls.api(
        server,
        "POST",
        f"/api/projects/{project}/import",
        params={"return_task_ids": "true"},
        json=tasks,
    )


def _backend(server, title: str) -> LabelStudioBackend:
    """The loop's backend on the project titled ``title`` (its ``tasks()`` is how collect reads)."""
    return LabelStudioBackend(
        url=server.url,
        token=server.token,
        classes=CLASSES,
        kind="image_classification",
        project_title=title,
    )


def _by_id(backend: LabelStudioBackend) -> dict[str, dict]:
    return {t["data"]["lw_id"]: t for t in backend.tasks()}


def _submitted(task: dict) -> list[dict]:
    [annotation] = [a for a in task["annotations"] if not a.get("was_cancelled")]
    return annotation["result"]


def _coco(annotations: list[dict], categories: list[dict]) -> list[tuple]:
    """COCO annotations as (class, bbox, area, segmentation), in a canonical order."""
    names = {c["id"]: c["name"] for c in categories}
    out = [
        (names[a["category_id"]], a["bbox"], a["area"], a.get("segmentation") or [])
        for a in annotations
    ]
    return sorted(out, key=lambda a: (a[0], a[1]))


def _server_coco(server, project: int) -> list[tuple]:
    """The annotations of Label Studio's own COCO export of the project."""
    response = httpx.get(
        f"{server.url}/api/projects/{project}/export",
        params={"exportType": "COCO"},
        headers={"Authorization": f"Token {server.token}"},
        timeout=60,
    )
    response.raise_for_status()
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        [name] = [n for n in archive.namelist() if n.endswith(".json")]
        coco = json.loads(archive.read(name))
    return _coco(coco["annotations"], coco["categories"])


def _agree_with_the_server(server, project: int, regions: list) -> None:
    """``to_coco`` of ``regions`` gives the boxes, areas and polygons of the server's export
    (category ids differ: Label Studio counts from 0, COCO and labelwise from 1)."""
    ours = to_coco([("street", "street.png", WIDTH, HEIGHT, regions)], CLASSES)
    mine = _coco(ours["annotations"], ours["categories"])
    theirs = _server_coco(server, project)
    assert [a[0] for a in theirs] == [a[0] for a in mine]
    for (_, bbox, area, segmentation), (_, bbox_, area_, segmentation_) in zip(
        theirs, mine, strict=True
    ):
        assert bbox == pytest.approx(bbox_, abs=1e-6)
        assert area == pytest.approx(area_, abs=1e-6)
        assert len(segmentation) == len(segmentation_)
        for polygon, polygon_ in zip(segmentation, segmentation_, strict=True):
            assert polygon == pytest.approx(polygon_, abs=1e-6)


def _drawn(kind: str, value: dict, region: str) -> dict:
    """A region as Label Studio's editor submits it: percent units, the image's natural size."""
    return {
        "id": region,
        "from_name": "label",
        "to_name": "image",
        "type": kind,
        "origin": "manual",
        "original_width": WIDTH,
        "original_height": HEIGHT,
        "image_rotation": 0,
        "value": value,
    }


def test_rectangles_predicted_and_drawn_come_back_as_the_pixel_boxes(label_studio, image):
    title = "lw-boxes-rectangles"
    project = _project(label_studio, title, "rectangle")
    config = ls.api(label_studio, "GET", f"/api/projects/{project}")["parsed_label_config"]
    assert config["label"]["type"] == "RectangleLabels"
    assert config["label"]["to_name"] == ["image"]
    assert config["label"]["labels"] == CLASSES

    predicted = [Box("car", 10, 20, 50, 40, score=0.9), Box("person", 118.5, 9, 33, 81, score=0.4)]
    check_boxes("street", predicted, WIDTH, HEIGHT, CLASSES)
    _import(
        label_studio,
        project,
        [
            {
                "data": {"image": image, "lw_id": "street", "lw_round": 1},
                "predictions": [
                    {
                        "model_version": "detector-v1",
                        "score": 0.4,
                        "result": prediction_results(predicted, WIDTH, HEIGHT),
                    }
                ],
            },
            {"data": {"image": image, "lw_id": "empty", "lw_round": 1}},
        ],
    )
    backend = _backend(label_studio, title)
    assert backend.project_id == project
    tasks = _by_id(backend)
    assert set(tasks) == {"street", "empty"}
    street = tasks["street"]
    assert street["data"]["image"] == image
    [prediction] = street["predictions"]
    assert prediction["model_version"] == "detector-v1"
    stored = prediction["result"]
    assert [r["type"] for r in stored] == ["rectanglelabels", "rectanglelabels"]
    assert stored[0]["value"]["x"] == pytest.approx(5.0)  # 10 px of 200: percent units
    assert stored[0]["value"]["height"] == pytest.approx(40.0)  # 40 px of 100
    assert [r["score"] for r in stored] == [0.9, 0.4]
    _close(boxes_from_result(stored), predicted)

    # the annotator keeps the car (nudged), redraws the person, and adds a second car; the
    # second image has nothing on it
    rectangles = [
        ("car", 6.0, 21.0, 24.5, 39.0),  # percent of 200 x 100
        ("person", 60.0, 10.0, 15.0, 80.0),
        ("car", 80.25, 50.5, 19.75, 49.5),
    ]
    ls.annotate(
        label_studio,
        street["id"],
        [
            _drawn(
                "rectanglelabels",
                {
                    "x": x,
                    "y": y,
                    "width": w,
                    "height": h,
                    "rotation": 0,
                    "rectanglelabels": [label],
                },
                f"r{n}",
            )
            for n, (label, x, y, w, h) in enumerate(rectangles)
        ],
    )
    ls.annotate(label_studio, tasks["empty"]["id"], [])

    tasks = _by_id(backend)
    boxes = boxes_from_result(_submitted(tasks["street"]))
    _close(
        boxes,
        [
            Box("car", 12.0, 21.0, 49.0, 39.0),
            Box("person", 120.0, 10.0, 30.0, 80.0),
            Box("car", 160.5, 50.5, 39.5, 49.5),
        ],
    )
    check_boxes("street", boxes, WIDTH, HEIGHT, CLASSES)
    assert decode_boxes(encode_boxes(boxes)) == sorted(boxes, key=lambda b: (b.label, b.x))
    assert boxes_from_result(_submitted(tasks["empty"])) == []
    assert encode_boxes([]) == "[]"
    _agree_with_the_server(label_studio, project, boxes)


def test_polygons_predicted_and_drawn_come_back_as_the_pixel_points(label_studio, image):
    title = "lw-boxes-polygons"
    project = _project(label_studio, title, "polygon")
    config = ls.api(label_studio, "GET", f"/api/projects/{project}")["parsed_label_config"]
    assert config["label"]["type"] == "PolygonLabels"
    assert config["label"]["labels"] == CLASSES

    predicted = [Polygon("car", [(10, 20), (60, 20), (60, 60), (10, 60)], score=0.7)]
    _import(
        label_studio,
        project,
        [
            {
                "data": {"image": image, "lw_id": "street", "lw_round": 2},
                "predictions": [
                    {
                        "model_version": "segmenter-v1",
                        "result": prediction_results(predicted, WIDTH, HEIGHT),
                    }
                ],
            }
        ],
    )
    backend = _backend(label_studio, title)
    [task] = backend.tasks()
    [prediction] = task["predictions"]
    [stored] = prediction["result"]
    assert stored["type"] == "polygonlabels"
    assert stored["value"]["points"][1] == pytest.approx([30.0, 20.0])  # (60, 20) px in percent
    _close(boxes_from_result(prediction["result"]), predicted)

    drawn = [  # percent of 200 x 100: a person as a triangle, a car as a pentagon
        ("person", [[60.0, 10.0], [75.0, 10.0], [67.5, 90.0]]),
        ("car", [[5.0, 20.0], [30.0, 20.0], [30.0, 60.0], [17.5, 70.0], [5.0, 60.0]]),
    ]
    ls.annotate(
        label_studio,
        task["id"],
        [
            _drawn("polygonlabels", {"points": p, "closed": True, "polygonlabels": [c]}, f"p{n}")
            for n, (c, p) in enumerate(drawn)
        ],
    )

    [task] = backend.tasks()
    polygons = boxes_from_result(_submitted(task))
    _close(
        polygons,
        [
            Polygon("person", [(120, 10), (150, 10), (135, 90)]),
            Polygon("car", [(10, 20), (60, 20), (60, 60), (35, 70), (10, 60)]),
        ],
    )
    check_boxes("street", polygons, WIDTH, HEIGHT, CLASSES)
    _agree_with_the_server(label_studio, project, polygons)
