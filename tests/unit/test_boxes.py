"""Box answers: the label log's JSON, Label Studio's percent units and back, the interface XML,
and every box ``check_boxes`` refuses, with its message."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET

import pytest

from tasks.annotation.boxes import (
    Box,
    BoxError,
    Polygon,
    area,
    bounds,
    box_label_config,
    boxes_from_result,
    check_boxes,
    decode_boxes,
    encode_boxes,
    image_size,
    prediction_results,
)

pytestmark = pytest.mark.unit

CLASSES = ["car", "person"]
PENTAGON = Polygon("car", [(10, 20), (60, 20), (60, 60), (35, 70), (10, 60)])


# -- shapes ----------------------------------------------------------------------------------------


def test_a_polygon_holds_its_points_as_float_pairs_and_is_hashable():
    polygon = Polygon("car", [[1, 2], (3, 4.5), [5, 6]])
    assert polygon.points == ((1.0, 2.0), (3.0, 4.5), (5.0, 6.0))
    assert polygon == Polygon("car", ((1, 2), (3, 4.5), (5, 6)))
    assert len({polygon, Polygon("car", [(1, 2), (3, 4.5), (5, 6)])}) == 1
    with pytest.raises(AttributeError):
        polygon.label = "person"  # type: ignore[misc]


def test_areas_by_hand_a_box_and_the_shoelace_formula_in_either_orientation():
    assert area(Box("car", 10, 20, 50, 40)) == 2000
    assert area(Polygon("car", [(0, 0), (4, 0), (0, 3)])) == 6
    assert area(Polygon("car", [(0, 0), (0, 3), (4, 0)])) == 6  # clockwise: still positive
    # a 50 x 40 rectangle with a triangle of base 50 and height 10 on it: 2000 + 250
    assert area(PENTAGON) == 2250
    # an L: a 4 x 4 square without its 2 x 2 top-right quarter
    assert area(Polygon("car", [(0, 0), (4, 0), (4, 2), (2, 2), (2, 4), (0, 4)])) == 12


def test_bounds_of_a_box_and_of_a_polygon():
    assert bounds(Box("car", 1, 2, 3, 4)) == (1, 2, 3, 4)
    assert bounds(PENTAGON) == (10, 20, 50, 50)


# -- the label log ---------------------------------------------------------------------------------


def test_a_box_answer_is_this_json_text():
    boxes = [Box("person", 120, 10, 30, 80), Box("car", 10, 20, 50, 40, score=0.9)]
    assert encode_boxes(boxes) == (
        '[{"label": "car", "x": 10.0, "y": 20.0, "w": 50.0, "h": 40.0, "score": 0.9}, '
        '{"label": "person", "x": 120.0, "y": 10.0, "w": 30.0, "h": 80.0}]'
    )
    assert encode_boxes([Polygon("car", [(0, 0), (4, 0), (0, 3.5)])]) == (
        '[{"label": "car", "points": [[0.0, 0.0], [4.0, 0.0], [0.0, 3.5]]}]'
    )


def test_no_object_is_the_empty_list_and_a_valid_answer():
    assert encode_boxes([]) == "[]"
    assert decode_boxes("[]") == []


def test_equal_answers_drawn_in_another_order_are_the_same_text():
    a = [Box("car", 5, 5, 1, 1), PENTAGON, Box("car", 1, 1, 1, 1), Box("bus", 9, 9, 1, 1)]
    b = [a[3], a[1], a[0], a[2]]
    assert encode_boxes(a) == encode_boxes(b)
    assert decode_boxes(encode_boxes(a)) == [a[3], a[2], a[0], PENTAGON]  # boxes, then polygons


def test_decoding_gives_back_the_regions_exactly():
    regions = [Box("car", 0.1 + 0.2, 1 / 3, 2 / 7, 50, score=0.123456789), PENTAGON]
    assert decode_boxes(encode_boxes(regions)) == regions


def test_nan_cannot_be_stored():
    with pytest.raises(BoxError, match="a box with NaN or infinity cannot be stored"):
        encode_boxes([Box("car", math.nan, 0, 1, 1)])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("car", "item 'img-3': expected a JSON list of boxes, got 'car'"),
        ('{"label": "car"}', "item 'img-3': expected a JSON list of boxes"),
        ('["car"]', "item 'img-3', box 0: expected an object, got 'car'"),
        ('[{"x": 1, "y": 1, "w": 1, "h": 1}]', "box 0, field 'label': expected the class as text"),
        ('[{"label": "car", "x": 1, "y": 1, "w": 1}]', "box 0, field 'h': missing"),
        ('[{"label": "car", "x": "1", "y": 1, "w": 1, "h": 1}]', "field 'x': expected a number"),
        ('[{"label": "car", "x": true, "y": 1, "w": 1, "h": 1}]', "field 'x': expected a number"),
        ('[{"label": "car", "points": [[1, 2], [3]]}]', "field 'points': expected a list of"),
        ('[{"label": "car", "points": [[1, 2], [3, null]]}]', "field 'points[1]': expected a"),
        (
            '[{"label": "car", "x": 1, "y": 1, "w": 1, "h": 1}, {"label": "car", "points": 3}]',
            "item 'img-3', box 1, field 'points'",
        ),
        ('[{"label": "car", "x": 1, "y": 1, "w": 1, "h": 1, "score": "hi"}]', "field 'score'"),
    ],
)
def test_a_stored_answer_in_another_shape_names_the_box_and_field(text, message):
    with pytest.raises(BoxError) as error:
        decode_boxes(text, item="img-3")
    assert message in str(error.value)


# -- the interface ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "tag"), [("rectangle", "RectangleLabels"), ("polygon", "PolygonLabels")]
)
def test_the_interface_draws_the_shape_of_each_class_on_the_image(shape, tag):
    view = ET.fromstring(box_label_config(["car", 'a "big" <truck> & co'], shape))
    image, control = list(view)
    assert (image.tag, image.get("name"), image.get("value")) == ("Image", "image", "$image")
    assert (control.tag, control.get("name"), control.get("toName")) == (tag, "label", "image")
    assert [label.get("value") for label in control] == ["car", 'a "big" <truck> & co']
    assert {label.tag for label in control} == {"Label"}
    if shape == "rectangle":
        assert control.get("canRotate") == "false"


@pytest.mark.parametrize(
    ("classes", "shape", "message"),
    [
        (CLASSES, "ellipse", "unknown box shape 'ellipse'; use one of rectangle, polygon"),
        ([], "rectangle", "a rectangle config needs at least one class"),
        (["car", "car"], "polygon", "the classes of a polygon config repeat"),
    ],
)
def test_an_interface_that_cannot_be_built_says_why(classes, shape, message):
    with pytest.raises(ValueError, match=message):
        box_label_config(classes, shape)


# -- Label Studio's percent units ------------------------------------------------------------------


def test_a_predicted_box_is_a_rectangle_in_percent_of_the_image():
    [result] = prediction_results([Box("car", 10, 20, 50, 40, score=0.8)], 200, 100)
    assert result == {
        "id": "lw0",
        "from_name": "label",
        "to_name": "image",
        "type": "rectanglelabels",
        "original_width": 200,
        "original_height": 100,
        "image_rotation": 0,
        "value": {
            "x": 5.0,
            "y": 20.0,
            "width": 25.0,
            "height": 40.0,
            "rotation": 0,
            "rectanglelabels": ["car"],
        },
        "score": 0.8,
    }


def test_a_predicted_polygon_has_its_points_in_percent_and_no_score_if_it_has_none():
    [result] = prediction_results(
        [Polygon("person", [(20, 10), (100, 10), (100, 60)])], 200, 100, "objects", "photo"
    )
    assert (result["from_name"], result["to_name"], result["type"]) == (
        "objects",
        "photo",
        "polygonlabels",
    )
    assert result["value"] == {
        "points": [[10.0, 10.0], [50.0, 10.0], [50.0, 60.0]],
        "closed": True,
        "polygonlabels": ["person"],
    }
    assert "score" not in result
    assert (result["original_width"], result["original_height"]) == (200, 100)


def test_regions_get_distinct_ids():
    results = prediction_results([Box("car", 0, 0, 1, 1)] * 3, 10, 10)
    assert len({r["id"] for r in results}) == 3


def test_numpy_sizes_and_coordinates_give_plain_json():
    import numpy as np

    [result] = prediction_results([Box("car", np.int64(10), 20, 50, 40)], np.int64(200), 100)
    assert json.loads(json.dumps(result))["original_width"] == 200
    assert result["value"]["x"] == 5.0
    check_boxes(
        "img", [Box("car", np.int64(10), np.float32(20), 50, 40)], np.int64(200), 100, CLASSES
    )


def test_pixels_to_percent_and_back_within_1e_9():
    regions = [
        Box("car", 1 / 3, 417.77, 213.3333, 0.01, score=0.5),
        Box("person", 0, 0, 640, 427),
        Polygon("car", [(0.1, 0.2), (639.99, 1 / 7), (320.5, 426.999)], score=0.25),
    ]
    back = boxes_from_result(prediction_results(regions, 640, 427))
    assert [type(r) for r in back] == [Box, Box, Polygon]
    for got, want in zip(back[:2], regions[:2], strict=True):
        assert (got.label, got.score) == (want.label, want.score)
        assert (got.x, got.y, got.w, got.h) == pytest.approx(
            (want.x, want.y, want.w, want.h), abs=1e-9
        )
    assert (back[2].label, back[2].score) == ("car", 0.25)
    for got, want in zip(back[2].points, regions[2].points, strict=True):
        assert got == pytest.approx(want, abs=1e-9)


def _rect(x, y, w, h, label="car", **more) -> dict:
    value = {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [label]}
    value.update(more.pop("value", {}))
    return {
        "from_name": "label",
        "to_name": "image",
        "type": "rectanglelabels",
        "value": value,
        **more,
    }


def test_the_size_recorded_in_the_result_wins_over_the_one_passed():
    result = [_rect(10, 10, 50, 50, original_width=400, original_height=300)]
    assert boxes_from_result(result, 200, 100) == [Box("car", 40, 30, 200, 150)]
    assert boxes_from_result([_rect(10, 10, 50, 50)], 200, 100) == [Box("car", 20, 10, 100, 50)]


def test_without_a_size_a_result_cannot_be_read():
    with pytest.raises(BoxError, match=r"box 0: no image size: .*pass width and height"):
        boxes_from_result([_rect(10, 10, 50, 50)])


def test_other_results_and_regions_without_a_class_are_skipped():
    result = [
        {
            "from_name": "label",
            "to_name": "image",
            "type": "choices",
            "value": {"choices": ["car"]},
        },
        _rect(10, 10, 10, 10, value={"rectanglelabels": []}),
        _rect(10, 10, 10, 10, label="person", from_name="other"),
        _rect(50, 50, 10, 10),
        {
            "from_name": "label",
            "type": "rectangle",
            "value": {"x": 1, "y": 1, "width": 1, "height": 1},
        },
    ]
    assert boxes_from_result(result, 100, 100) == [
        Box("person", 10, 10, 10, 10),
        Box("car", 50, 50, 10, 10),
    ]
    assert boxes_from_result(result, 100, 100, from_name="label") == [Box("car", 50, 50, 10, 10)]
    assert boxes_from_result([], 100, 100) == []


def test_a_rotated_box_or_image_is_refused():
    with pytest.raises(BoxError) as error:
        boxes_from_result([_rect(1, 1, 5, 5), _rect(10, 10, 5, 5, value={"rotation": 30})], 9, 9)
    assert str(error.value).startswith("box 1, field 'value.rotation': rotated by 30 degrees")
    with pytest.raises(BoxError, match="box 0, field 'image_rotation': rotated by 90 degrees"):
        boxes_from_result([_rect(1, 1, 5, 5, image_rotation=90)], 9, 9)


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (_rect("5", 1, 1, 1), "box 0, field 'value.x': expected a finite number, got '5'"),
        (_rect(1, 1, 1, math.nan), "box 0, field 'value.height': expected a finite number"),
        (
            {"type": "polygonlabels", "value": {"points": [[1, 2], [1]], "polygonlabels": ["car"]}},
            "box 0, field 'value.points': expected a list of [x, y] pairs",
        ),
        (
            {
                "type": "polygonlabels",
                "value": {"points": [[1, 2], [1, "a"]], "polygonlabels": ["car"]},
            },
            "box 0, field 'value.points[1]': expected a finite number",
        ),
        ({"type": "rectanglelabels", "value": None}, "box 0, field 'value': expected an object"),
    ],
)
def test_a_result_in_another_shape_names_the_region_and_field(item, message):
    with pytest.raises(BoxError) as error:
        boxes_from_result([item], 100, 100)
    assert message in str(error.value)


def test_a_result_error_names_the_item_when_told_it():
    with pytest.raises(BoxError) as error:
        boxes_from_result([_rect(1, 1, 5, 5, value={"rotation": 45})], 9, 9, item="img-9")
    assert (error.value.item, error.value.index, error.value.field) == (
        "img-9",
        0,
        "value.rotation",
    )
    assert str(error.value).startswith("item 'img-9', box 0, field 'value.rotation': rotated by 45")


@pytest.mark.parametrize(("width", "height"), [(0, 100), (200, -1), ("200", 100), (math.inf, 9)])
def test_an_image_size_that_is_no_positive_number_is_refused(width, height):
    with pytest.raises(BoxError, match="the image size must be positive numbers, got "):
        prediction_results([Box("car", 1, 1, 1, 1)], width, height)
    with pytest.raises(BoxError, match="box 0: the image size must be positive numbers"):
        boxes_from_result([_rect(1, 1, 1, 1, original_width=width, original_height=height)])


# -- validation ------------------------------------------------------------------------------------


def _refused(boxes, width=200, height=100) -> BoxError:
    with pytest.raises(BoxError) as error:
        check_boxes("img-7", boxes, width, height, CLASSES)
    return error.value


OK = Box("car", 10, 20, 50, 40)


@pytest.mark.parametrize(
    ("bad", "field", "message"),
    [
        (Box("car", math.nan, 20, 50, 40), "x", "nan is not a finite number"),
        (Box("car", 10, 20, math.inf, 40), "w", "inf is not a finite number"),
        (Box("car", 10, 20, 0, 40), "w", "width must be > 0, got 0"),
        (Box("car", 10, 20, -5, 40), "w", "width must be > 0, got -5"),
        (Box("car", 10, 20, 50, 0), "h", "height must be > 0, got 0"),
        (Box("car", 10, 20, 50, -0.5), "h", "height must be > 0, got -0.5"),
        (Box("car", 180, 20, 30, 40), "x", "spans x 180..210, outside the image's 200 px (1 px "),
        (Box("car", -1.5, 20, 30, 40), "x", "spans x -1.5..28.5, outside the image's 200 px"),
        (Box("car", 10, 70, 50, 40), "y", "spans y 70..110, outside the image's 100 px"),
        (Box("car", 10, -3, 50, 40), "y", "spans y -3..37, outside the image's 100 px"),
        (Box("truck", 10, 20, 50, 40), "label", "unknown class 'truck'; the classes are car, "),
        (Box("car", 10, 20, 50, 40, score=math.nan), "score", "nan is not a finite number"),
        (Box("car", "10", 20, 50, 40), "x", "expected a number, got '10'"),  # type: ignore[arg-type]
        (Box("car", 10, 20, 50, True), "h", "expected a number, got True"),
        (Polygon("car", [(1, 1), (5, 1)]), "points", "a polygon needs at least 3 points, got 2"),
        (Polygon("car", [(1, 1), (5, math.nan), (5, 5)]), "points[1]", "(5.0, nan) is not a "),
        (Polygon("car", [(1, 1), (5, 1), (202, 5)]), "points[2]", "spans x 202..202, outside "),
        (Polygon("car", [(1, 1), (5, 1), (5, 101.5)]), "points[2]", "spans y 101.5..101.5, "),
        (Polygon("car", [(1, 1), (5, 5), (9, 9)]), "points", "the polygon has no area"),
        (Polygon("bus", [(1, 1), (5, 1), (5, 5)]), "label", "unknown class 'bus'"),
    ],
)
def test_every_refused_box_names_the_item_the_box_and_the_field(bad, field, message):
    error = _refused([OK, bad])
    assert isinstance(error, ValueError)
    assert (error.item, error.index, error.field) == ("img-7", 1, field)
    assert str(error).startswith(f"item 'img-7', box 1, field {field!r}: {message}")


def test_a_box_may_overhang_the_image_by_one_pixel():
    check_boxes("img-7", [Box("car", -1, -1, 202, 102)], 200, 100, CLASSES)
    check_boxes("img-7", [Polygon("car", [(-1, -1), (201, -1), (201, 101)])], 200, 100, CLASSES)
    assert _refused([Box("car", -1, -1, 202.01, 50)]).field == "x"


def test_the_first_bad_box_is_the_one_named():
    assert _refused([OK, OK, Box("car", 1, 1, 0, 0), Box("bus", 1, 1, 1, 1)]).index == 2


def test_valid_answers_pass_and_none_is_valid():
    check_boxes("img-7", [], 200, 100, CLASSES)
    check_boxes(
        "img-7", [OK, PENTAGON, Box("person", 0, 0, 200, 100, score=0.1)], 200, 100, CLASSES
    )


@pytest.mark.parametrize(("width", "height"), [(0, 100), (200, -1), (math.nan, 100)])
def test_an_image_without_a_positive_size_is_refused(width, height):
    error = _refused([OK], width, height)
    assert str(error).startswith("item 'img-7': the image ")
    assert "must be a positive number" in str(error)


# -- image size ------------------------------------------------------------------------------------


def test_image_size_follows_the_exif_orientation(tmp_path):
    from PIL import Image

    Image.new("RGB", (200, 100)).save(tmp_path / "plain.png")
    turned = Image.new("RGB", (200, 100))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    turned.save(tmp_path / "turned.jpg", exif=exif)
    assert image_size(tmp_path / "plain.png") == (200, 100)
    assert image_size(tmp_path / "turned.jpg") == (100, 200)


def test_the_json_text_is_plain_json_other_tools_read():
    text = encode_boxes([OK, PENTAGON])
    assert json.loads(text)[1]["points"][3] == [35.0, 70.0]
