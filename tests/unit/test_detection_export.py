"""COCO and YOLO exports of boxes and polygons, against numbers worked out by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from tasks.annotation.boxes import Box, BoxError, Polygon, encode_boxes
from tasks.export.detection import ExportError, to_coco, write_coco, write_yolo

pytestmark = pytest.mark.unit

CLASSES = ["car", "person"]
TRIANGLE = Polygon("person", [(20, 10), (100, 10), (100, 60)])  # legs 80 and 50: area 2000
PENTAGON = Polygon("car", [(10, 20), (60, 20), (60, 60), (35, 70), (10, 60)])  # 2000 + 250


def _images():
    return [
        ("street", "photos/street.png", 200, 100, [Box("car", 10, 20, 50, 40)]),
        ("yard", "yard.jpg", 200, 100, [TRIANGLE, Box("person", 150, 0, 50, 100, score=0.5)]),
        ("empty", "empty.png", 640, 480, []),
    ]


# -- YOLO ------------------------------------------------------------------------------------------


def test_a_box_on_a_200_by_100_image_is_this_yolo_line(tmp_path):
    [path] = write_yolo(tmp_path, [("a", "a.png", 200, 100, [Box("car", 10, 20, 50, 40)])], CLASSES)
    # centre (35, 40) / (200, 100), size (50, 40) / (200, 100)
    assert path == tmp_path / "labels" / "a.txt"
    assert path.read_text() == "0 0.175 0.4 0.25 0.4\n"


def test_a_yolo_folder_has_a_label_file_per_image_the_classes_and_data_yaml(tmp_path):
    written = write_yolo(tmp_path, _images(), CLASSES)
    labels = tmp_path / "labels"
    assert written == [labels / "street.txt", labels / "yard.txt", labels / "empty.txt"]
    # a polygon among the regions: every region is a segmentation line, a box as its 4 corners
    assert (labels / "street.txt").read_text() == "0 0.05 0.2 0.3 0.2 0.3 0.6 0.05 0.6\n"
    assert (labels / "yard.txt").read_text() == (
        "1 0.1 0.1 0.5 0.1 0.5 0.6\n1 0.75 0 1 0 1 1 0.75 1\n"
    )
    assert (labels / "empty.txt").read_text() == ""  # an image with no object: an empty file
    assert (tmp_path / "classes.txt").read_text() == "car\nperson\n"
    data = yaml.safe_load((tmp_path / "data.yaml").read_text())
    assert data["names"] == CLASSES and data["nc"] == 2
    assert data["path"] == str(tmp_path.resolve())
    assert (data["train"], data["val"]) == ("images", "images")


def test_boxes_alone_are_detection_lines(tmp_path):
    images = [
        ("a", "a.png", 200, 100, [Box("car", 10, 20, 50, 40), Box("person", 150, 0, 50, 100)]),
        ("b", "b.png", 640, 480, []),
    ]
    write_yolo(tmp_path, images, CLASSES)
    # centres (35, 40) and (175, 50) of 200 x 100; sizes (50, 40) and (50, 100)
    assert (tmp_path / "labels" / "a.txt").read_text() == (
        "0 0.175 0.4 0.25 0.4\n1 0.875 0.5 0.25 1\n"
    )
    assert (tmp_path / "labels" / "b.txt").read_text() == ""


def test_yolo_reads_the_label_logs_json_text(tmp_path):
    text = encode_boxes([Box("person", 0, 0, 100, 50)])
    [path] = write_yolo(tmp_path, [("a", "a.png", 200, 100, text)], CLASSES)
    assert path.read_text() == "1 0.25 0.25 0.5 0.5\n"


def test_a_box_overhanging_by_the_tolerance_is_clipped_to_the_image(tmp_path):
    [path] = write_yolo(
        tmp_path, [("a", "a.png", 200, 100, [Box("car", -1, 50, 201, 50.5)])], CLASSES
    )
    assert path.read_text() == "0 0.5 0.75 1 0.5\n"  # x 0..200, y 50..100


def test_two_images_with_one_file_stem_are_refused(tmp_path):
    images = [
        ("a", "train/cat.jpg", 10, 10, []),
        ("b", "val/cat.png", 10, 10, []),
    ]
    with pytest.raises(ExportError) as error:
        write_yolo(tmp_path, images, CLASSES)
    assert str(error.value) == (
        "images 'a' and 'b' have the same file stem 'cat' ('val/cat.png'): YOLO names a label "
        "file by its image's stem; rename one"
    )
    assert not (tmp_path / "labels").exists()  # nothing half-written


def test_exporting_again_overwrites_but_label_files_of_other_images_are_refused(tmp_path):
    write_yolo(tmp_path, _images(), CLASSES)
    again = [("street", "street.png", 200, 100, []), *_images()[1:]]  # the car was removed
    write_yolo(tmp_path, again, CLASSES)
    assert (tmp_path / "labels" / "street.txt").read_text() == ""
    with pytest.raises(ExportError) as error:
        write_yolo(tmp_path, again[:2], CLASSES)  # empty.txt is of an image not exported now
    assert "labels already holds label files of images not in this export (empty.txt" in str(
        error.value
    )


def test_an_invalid_box_stops_the_export_naming_the_image(tmp_path):
    images = [
        *_images(),
        ("bad", "bad.png", 200, 100, [Box("car", 0, 0, 5, 5), Box("bus", 1, 1, 1, 1)]),
    ]
    with pytest.raises(BoxError, match="item 'bad', box 1, field 'label': unknown class 'bus'"):
        write_yolo(tmp_path, images, CLASSES)
    with pytest.raises(BoxError, match="item 'bad', box 1, field 'label'"):
        to_coco(images, CLASSES)


# -- COCO ------------------------------------------------------------------------------------------


def test_coco_images_annotations_and_categories_by_hand():
    coco = to_coco(_images(), CLASSES)
    assert coco["categories"] == [
        {"id": 1, "name": "car", "supercategory": ""},
        {"id": 2, "name": "person", "supercategory": ""},
    ]
    assert coco["images"] == [
        {"id": 1, "file_name": "photos/street.png", "width": 200, "height": 100, "lw_id": "street"},
        {"id": 2, "file_name": "yard.jpg", "width": 200, "height": 100, "lw_id": "yard"},
        {"id": 3, "file_name": "empty.png", "width": 640, "height": 480, "lw_id": "empty"},
    ]
    box, triangle, person = coco["annotations"]
    assert box == {
        "id": 1,
        "image_id": 1,
        "category_id": 1,
        "bbox": [10, 20, 50, 40],
        "area": 2000,
        "iscrowd": 0,
    }
    assert triangle == {
        "id": 2,
        "image_id": 2,
        "category_id": 2,
        "bbox": [20, 10, 80, 50],
        "segmentation": [[20, 10, 100, 10, 100, 60]],
        "area": 2000,  # half of 80 x 50
        "iscrowd": 0,
    }
    assert (person["id"], person["image_id"], person["category_id"]) == (3, 2, 2)
    assert (person["bbox"], person["area"], person["score"]) == ([150, 0, 50, 100], 5000, 0.5)


def test_a_polygons_coco_area_is_its_shoelace_area_not_its_boxes():
    [annotation] = to_coco([(1, "p.png", 100, 100, [PENTAGON])], CLASSES)["annotations"]
    assert annotation["bbox"] == [10, 20, 50, 50]  # the box would be 2500
    assert annotation["area"] == 2250
    assert annotation["segmentation"] == [[10, 20, 60, 20, 60, 60, 35, 70, 10, 60]]


def test_whole_number_image_ids_are_kept_and_others_numbered():
    kept = to_coco([(7, "a.png", 9, 9, []), (3, "b.png", 9, 9, [Box("car", 0, 0, 1, 1)])], CLASSES)
    assert [i["id"] for i in kept["images"]] == [7, 3]
    assert kept["annotations"][0]["image_id"] == 3
    mixed = to_coco([(7, "a.png", 9, 9, []), ("x", "b.png", 9, 9, [])], CLASSES)
    assert [(i["id"], i["lw_id"]) for i in mixed["images"]] == [(1, "7"), (2, "x")]


def test_a_repeated_image_id_or_no_classes_is_refused():
    with pytest.raises(ExportError, match="image id 'a' appears twice"):
        to_coco([("a", "a.png", 9, 9, []), ("a", "b.png", 9, 9, [])], CLASSES)
    with pytest.raises(ExportError, match="an export needs at least one class"):
        to_coco([], [])
    with pytest.raises(ExportError, match="the classes repeat"):
        to_coco([], ["car", "car"])


def test_write_coco_writes_the_same_json(tmp_path):
    path = write_coco(tmp_path / "out" / "coco.json", _images(), CLASSES)
    assert json.loads(path.read_text()) == to_coco(_images(), CLASSES)


def test_numpy_values_export_as_plain_json(tmp_path):
    ids, widths, heights = np.array([4, 9]), np.array([200, 200]), np.array([100, 100])
    boxes = [[Box("car", np.int64(10), np.int64(20), np.float64(50), np.int64(40))], []]
    images = list(zip(ids, ["a.png", "b.png"], widths, heights, boxes, strict=True))
    assert isinstance(images[0][0], np.integer) and isinstance(images[0][2], np.integer)
    path = write_coco(tmp_path / "coco.json", images, CLASSES)
    coco = json.loads(path.read_text())
    assert [(i["id"], i["width"], i["height"]) for i in coco["images"]] == [
        (4, 200, 100),
        (9, 200, 100),
    ]
    assert coco["annotations"][0]["bbox"] == [10, 20, 50, 40]
    [label] = write_yolo(tmp_path / "yolo", images[:1], CLASSES)
    assert label.read_text() == "0 0.175 0.4 0.25 0.4\n"
