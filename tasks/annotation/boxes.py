"""Object detection answers: boxes and polygons drawn on an image, in pixels of the original image.

A box answer sits in the label log's ``label`` column as JSON text (:func:`encode_boxes`): a
list of regions, ``[]`` meaning "no object in this image" (a valid answer). Label Studio speaks
in percent of the image's width and height; :func:`prediction_results` turns the user's predicted
boxes into pre-annotations and :func:`boxes_from_result` an annotation back into pixels.
:func:`check_boxes` refuses a box that no export could write, naming the item, box and field.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.annotation.label_studio_config import CONTROL, box_label_config

__all__ = [
    "RESULT_TYPES",
    "TOLERANCE",
    "Box",
    "BoxError",
    "Polygon",
    "Region",
    "area",
    "bounds",
    "box_label_config",
    "boxes_from_result",
    "check_boxes",
    "decode_boxes",
    "encode_boxes",
    "image_size",
    "prediction_results",
]

#: how far (pixels) a region may overhang the image: a drawing tool's rounding, not a mistake
TOLERANCE = 1.0
#: Label Studio's result type of each shape (``box_label_config``'s ``shape``, ``BOX_SHAPES``)
RESULT_TYPES = {"rectangle": "rectanglelabels", "polygon": "polygonlabels"}


class BoxError(ValueError):
    """A region that is no valid answer: which item, which region (0-based) and which field."""

    def __init__(
        self, message: str, item: Any = None, index: int | None = None, field: str | None = None
    ):
        self.item, self.index, self.field, self.detail = item, index, field, message
        where = []
        if item is not None:
            where.append(f"item {item!r}")
        if index is not None:
            where.append(f"box {index}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


@dataclass(frozen=True)
class Box:
    """An axis-aligned box: its top-left corner (``x``, ``y``) and size, in pixels."""

    label: str
    x: float
    y: float
    w: float
    h: float
    #: the model's confidence (predictions); None for a person's box
    score: float | None = None


@dataclass(frozen=True)
class Polygon:
    """A polygon: its vertices ``(x, y)`` in pixels, in drawing order (closed implicitly)."""

    label: str
    points: tuple[tuple[float, float], ...]
    score: float | None = None

    def __post_init__(self) -> None:
        # any sequence of pairs (a list, as JSON gives it) becomes a hashable tuple of tuples
        points = tuple((float(p[0]), float(p[1])) for p in self.points)
        object.__setattr__(self, "points", points)


#: one region of an answer
Region = Box | Polygon


def bounds(region: Region) -> tuple[float, float, float, float]:
    """The region's enclosing box ``(x, y, w, h)`` in pixels."""
    if isinstance(region, Box):
        return (region.x, region.y, region.w, region.h)
    xs = [p[0] for p in region.points]
    ys = [p[1] for p in region.points]
    return (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))


def area(region: Region) -> float:
    """The region's area in square pixels: ``w * h``, a polygon's by the shoelace formula."""
    if isinstance(region, Box):
        return region.w * region.h
    points = region.points
    twice = sum(
        x0 * y1 - x1 * y0
        for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1], strict=True)
    )
    return abs(twice) / 2


# -- the label log ---------------------------------------------------------------------------------


def _record(region: Region) -> dict[str, Any]:
    if isinstance(region, Box):
        out: dict[str, Any] = {
            "label": region.label,
            "x": float(region.x),
            "y": float(region.y),
            "w": float(region.w),
            "h": float(region.h),
        }
    elif isinstance(region, Polygon):
        out = {"label": region.label, "points": [[x, y] for x, y in region.points]}
    else:
        raise TypeError(f"a box answer holds Box and Polygon regions, not {type(region).__name__}")
    if region.score is not None:
        out["score"] = float(region.score)
    return out


def _order(region: Region) -> tuple[Any, ...]:
    return (
        isinstance(region, Polygon),
        region.label,
        bounds(region),
        _record(region).get("points"),
    )


def encode_boxes(regions: Iterable[Region]) -> str:
    """An answer as the label log's text: a JSON list of ``{label, x, y, w, h[, score]}`` and
    ``{label, points[, score]}``, boxes first then by label and position, so that two equal
    answers are equal texts. ``[]``: no object in the image. NaN or infinity is refused."""
    records = [_record(r) for r in sorted(regions, key=_order)]
    try:
        return json.dumps(records, allow_nan=False)
    except ValueError:
        raise BoxError("a box with NaN or infinity cannot be stored") from None


def _is_number(value: Any) -> bool:
    """A real number (numpy's too, as a DataFrame gives them), not a flag."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _number(value: Any, index: int, field: str, item: Any) -> float:
    if not _is_number(value):
        raise BoxError(f"expected a number, got {value!r:.40}", item, index, field)
    return float(value)


def _score(record: dict[str, Any], index: int, item: Any) -> float | None:
    value = record.get("score")
    return None if value is None else _number(value, index, "score", item)


def _region(record: Any, index: int, item: Any) -> Region:
    if not isinstance(record, dict):
        raise BoxError(f"expected an object, got {record!r:.40}", item, index)
    label = record.get("label")
    if not isinstance(label, str):
        raise BoxError(f"expected the class as text, got {label!r:.40}", item, index, "label")
    if "points" in record:
        points = record["points"]
        if not isinstance(points, list) or not all(
            isinstance(p, list | tuple) and len(p) == 2 for p in points
        ):
            raise BoxError(
                f"expected a list of [x, y] pairs, got {points!r:.60}", item, index, "points"
            )
        pairs = [
            (
                _number(p[0], index, f"points[{n}]", item),
                _number(p[1], index, f"points[{n}]", item),
            )
            for n, p in enumerate(points)
        ]
        return Polygon(label, tuple(pairs), _score(record, index, item))
    missing = [k for k in ("x", "y", "w", "h") if k not in record]
    if missing:
        raise BoxError("missing (a box has x, y, w, h; a polygon points)", item, index, missing[0])
    x, y, w, h = (_number(record[k], index, k, item) for k in ("x", "y", "w", "h"))
    return Box(label, x, y, w, h, _score(record, index, item))


def decode_boxes(text: str, item: Any = None) -> list[Region]:
    """The regions of an answer stored by :func:`encode_boxes` (``item`` names it in errors)."""
    try:
        records = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        raise BoxError(f"expected a JSON list of boxes, got {str(text)[:60]!r}", item) from None
    if not isinstance(records, list):
        raise BoxError(f"expected a JSON list of boxes, got {str(text)[:60]!r}", item)
    return [_region(r, n, item) for n, r in enumerate(records)]


# -- validation ------------------------------------------------------------------------------------


def _check_extent(
    low: float, high: float, size: float, axis: str, item: Any, index: int, field: str
) -> None:
    if low < -TOLERANCE or high > size + TOLERANCE:
        raise BoxError(
            f"spans {axis} {low:g}..{high:g}, outside the image's {size:g} px "
            f"({TOLERANCE:g} px tolerance)",
            item,
            index,
            field,
        )


def check_boxes(
    item_id: Any, regions: Sequence[Region], width: float, height: float, classes: Sequence[str]
) -> None:
    """Refuse a region no export can write: NaN or infinity, a box of zero or negative width or
    height, a polygon of fewer than 3 points or no area, a region outside the ``width`` x
    ``height`` image (by more than ``TOLERANCE`` px), a class not in ``classes``."""
    for size, name in ((width, "width"), (height, "height")):
        if not (_is_number(size) and math.isfinite(size) and size > 0):
            raise BoxError(f"the image {name} must be a positive number, got {size!r}", item_id)
    known = set(classes)
    for index, region in enumerate(regions):
        if isinstance(region, Box):
            for field in ("x", "y", "w", "h"):
                value = getattr(region, field)
                if not _is_number(value):
                    raise BoxError(f"expected a number, got {value!r:.40}", item_id, index, field)
                if not math.isfinite(value):
                    raise BoxError(f"{value} is not a finite number", item_id, index, field)
            for field, what in (("w", "width"), ("h", "height")):
                value = getattr(region, field)
                if value <= 0:
                    raise BoxError(f"{what} must be > 0, got {value:g}", item_id, index, field)
            _check_extent(region.x, region.x + region.w, width, "x", item_id, index, "x")
            _check_extent(region.y, region.y + region.h, height, "y", item_id, index, "y")
        elif isinstance(region, Polygon):
            if len(region.points) < 3:
                raise BoxError(
                    f"a polygon needs at least 3 points, got {len(region.points)}",
                    item_id,
                    index,
                    "points",
                )
            for n, (x, y) in enumerate(region.points):  # floats: Polygon converts them
                if not (math.isfinite(x) and math.isfinite(y)):
                    raise BoxError(
                        f"({x}, {y}) is not a finite point", item_id, index, f"points[{n}]"
                    )
                _check_extent(x, x, width, "x", item_id, index, f"points[{n}]")
                _check_extent(y, y, height, "y", item_id, index, f"points[{n}]")
            if area(region) <= 0:
                raise BoxError("the polygon has no area", item_id, index, "points")
        else:
            raise BoxError(
                f"expected a Box or a Polygon, got {type(region).__name__}", item_id, index
            )
        if region.label not in known:
            raise BoxError(
                f"unknown class {region.label!r}; the classes are {', '.join(classes)}",
                item_id,
                index,
                "label",
            )
        if region.score is not None and not (
            _is_number(region.score) and math.isfinite(region.score)
        ):
            raise BoxError(f"{region.score} is not a finite number", item_id, index, "score")


# -- Label Studio ----------------------------------------------------------------------------------


def plain_size(size: Any) -> int | float:
    """A size as JSON writes it (numpy's integers are no ``int`` to ``json``)."""
    value = float(size)
    return int(value) if value.is_integer() else value


def _size(width: Any, height: Any, index: int | None = None) -> None:
    def positive(size: Any) -> bool:
        return _is_number(size) and math.isfinite(size) and size > 0

    if not (positive(width) and positive(height)):
        raise BoxError(
            f"the image size must be positive numbers, got {width!r} x {height!r}", index=index
        )


def prediction_results(
    regions: Sequence[Region],
    width: float,
    height: float,
    from_name: str = CONTROL,
    to_name: str = "image",
) -> list[dict[str, Any]]:
    """The user's predicted regions (pixels of a ``width`` x ``height`` image) as a Label Studio
    prediction's ``result``: x, y, width, height and polygon points in percent of the image, with
    the image's original size, no rotation, and each region's score when it has one."""
    _size(width, height)
    out = []
    for n, region in enumerate(regions):
        if isinstance(region, Box):
            kind = RESULT_TYPES["rectangle"]
            value: dict[str, Any] = {
                "x": 100 * region.x / width,
                "y": 100 * region.y / height,
                "width": 100 * region.w / width,
                "height": 100 * region.h / height,
                "rotation": 0,
            }
        else:
            kind = RESULT_TYPES["polygon"]
            value = {
                "points": [[100 * x / width, 100 * y / height] for x, y in region.points],
                "closed": True,
            }
        value[kind] = [region.label]
        result: dict[str, Any] = {
            "id": f"lw{n}",
            "from_name": from_name,
            "to_name": to_name,
            "type": kind,
            "original_width": plain_size(width),
            "original_height": plain_size(height),
            "image_rotation": 0,
            "value": value,
        }
        if region.score is not None:
            result["score"] = float(region.score)
        out.append(result)
    return out


def _field(raw: dict[str, Any], key: str, index: int, path: str) -> float:
    value = raw.get(key)
    if not _is_number(value) or not math.isfinite(value):
        raise BoxError(f"expected a finite number, got {value!r:.40}", index=index, field=path)
    return float(value)


def boxes_from_result(
    result: Sequence[dict[str, Any]],
    width: float | None = None,
    height: float | None = None,
    from_name: str | None = None,
    item: Any = None,
) -> list[Region]:
    """An annotation's (or prediction's) ``result`` as regions in pixels, in its order. The image
    size is each item's ``original_width``/``original_height`` (as the editor records it), else
    ``width``/``height``. Items of other types (or, given ``from_name``, other controls) and regions
    without a label are skipped; a rotated box or image raises :class:`BoxError` (naming ``item``
    and the result's index)."""
    try:
        return _regions(result, width, height, from_name)
    except BoxError as error:
        if item is None:
            raise
        raise BoxError(error.detail, item, error.index, error.field) from None


def _regions(
    result: Sequence[dict[str, Any]],
    width: float | None,
    height: float | None,
    from_name: str | None,
) -> list[Region]:
    types = {t: shape for shape, t in RESULT_TYPES.items()}
    out: list[Region] = []
    for index, raw in enumerate(result):
        kind = raw.get("type") if isinstance(raw, dict) else None
        if kind not in types or (from_name is not None and raw.get("from_name") != from_name):
            continue
        value = raw.get("value")
        if not isinstance(value, dict):
            raise BoxError(f"expected an object, got {value!r:.40}", index=index, field="value")
        labels = value.get(kind) or []
        if not labels:
            continue  # a region without a class marks no object of any class
        w_img = width if raw.get("original_width") is None else raw["original_width"]
        h_img = height if raw.get("original_height") is None else raw["original_height"]
        if w_img is None or h_img is None:
            raise BoxError(
                "no image size: the result has no original_width/original_height, "
                "pass width and height",
                index=index,
            )
        _size(w_img, h_img, index)
        for key in ("image_rotation", "rotation"):
            turned = (raw if key == "image_rotation" else value).get(key) or 0
            if turned != 0:
                path = key if key == "image_rotation" else f"value.{key}"
                raise BoxError(
                    f"rotated by {turned} degrees: a rotated box is no axis-aligned box "
                    f"(use box_label_config, whose rectangles cannot be rotated)",
                    index=index,
                    field=path,
                )
        label = str(labels[0])
        score = raw.get("score")
        score = None if score is None else _field(raw, "score", index, "score")
        if types[kind] == "rectangle":
            x, y, w, h = (
                _field(value, key, index, f"value.{key}") for key in ("x", "y", "width", "height")
            )
            out.append(
                Box(
                    label, x * w_img / 100, y * h_img / 100, w * w_img / 100, h * h_img / 100, score
                )
            )
        else:
            points = value.get("points")
            if not isinstance(points, list) or not all(
                isinstance(p, list | tuple) and len(p) == 2 for p in points
            ):
                raise BoxError(
                    f"expected a list of [x, y] pairs, got {points!r:.60}",
                    index=index,
                    field="value.points",
                )
            pixels = []
            for n, point in enumerate(points):
                pair = dict(zip("xy", point, strict=True))
                px = _field(pair, "x", index, f"value.points[{n}]")
                py = _field(pair, "y", index, f"value.points[{n}]")
                pixels.append((px * w_img / 100, py * h_img / 100))
            out.append(Polygon(label, tuple(pixels), score))
    return out


def image_size(path: str | Path) -> tuple[int, int]:
    """An image file's ``(width, height)`` as Label Studio shows it: after the EXIF orientation
    (a photo turned by a quarter has its sides swapped), which is what box coordinates refer to."""
    from PIL import Image

    with Image.open(path) as image:
        width, height = image.size
        orientation = image.getexif().get(0x0112, 1)
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)
