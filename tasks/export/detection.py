"""Boxes and polygons collected per image, written as COCO detection JSON or a YOLO label folder.

Both take the images as ``(image_id, file_name, width, height, boxes)`` (:class:`DetectionImage`;
``boxes`` a list of :class:`~tasks.annotation.boxes.Box` / ``Polygon`` in pixels, or the label
log's JSON text of them), checked by :func:`~tasks.annotation.boxes.check_boxes` first, and the
classes in order (COCO category ids 1..K, YOLO class indices 0..K-1). A region overhanging the
image by the tolerance ``check_boxes`` allows is clipped to it.
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePath
from typing import Any, NamedTuple

import yaml

from tasks.annotation.boxes import (
    Box,
    Polygon,
    Region,
    area,
    bounds,
    check_boxes,
    decode_boxes,
    plain_size,
)


class DetectionImage(NamedTuple):
    """One image and its regions (pixels of its ``width`` x ``height``; none: no object)."""

    image_id: Any
    file_name: str
    width: int | float
    height: int | float
    boxes: Sequence[Region] | str


class ExportError(ValueError):
    """The images cannot be exported as asked (a repeated id or file stem, no classes)."""


def _clip(value: float, size: float) -> float:
    return float(min(max(float(value), 0.0), float(size)))


def clipped(region: Region, width: float, height: float) -> Region:
    """``region`` cut to the image (a box or polygon vertex overhanging it by the tolerance)."""
    if isinstance(region, Box):
        x0, y0 = _clip(region.x, width), _clip(region.y, height)
        x1, y1 = _clip(region.x + region.w, width), _clip(region.y + region.h, height)
        return Box(region.label, x0, y0, x1 - x0, y1 - y0, region.score)
    points = tuple((_clip(x, width), _clip(y, height)) for x, y in region.points)
    return Polygon(region.label, points, region.score)


def checked_images(
    images: Iterable[DetectionImage | Sequence[Any]], classes: Sequence[str]
) -> list[DetectionImage]:
    """The images with their regions decoded, checked and clipped; a repeated image id fails."""
    if not classes:
        raise ExportError("an export needs at least one class")
    if len(set(classes)) != len(classes):
        raise ExportError(f"the classes repeat: {list(classes)}")
    out, seen = [], set()
    for row in images:
        image = DetectionImage(*row)
        if image.image_id in seen:
            raise ExportError(f"image id {image.image_id!r} appears twice")
        seen.add(image.image_id)
        regions = image.boxes
        if isinstance(regions, str):
            regions = decode_boxes(regions, image.image_id)
        regions = list(regions)
        check_boxes(image.image_id, regions, image.width, image.height, classes)
        regions = [clipped(r, image.width, image.height) for r in regions]
        out.append(image._replace(boxes=regions))
    return out


# -- COCO ------------------------------------------------------------------------------------------


def _coco_ids(images: list[DetectionImage]) -> list[int]:
    ids = [i.image_id for i in images]
    if all(isinstance(i, numbers.Integral) and not isinstance(i, bool) for i in ids):
        return [int(i) for i in ids]
    return list(range(1, len(images) + 1))


def to_coco(images: Iterable[DetectionImage | Sequence[Any]], classes: Sequence[str]) -> dict:
    """COCO detection JSON: ``images`` (id: the image id when every id is a whole number, else
    1..N in order; the given id kept as ``lw_id``), ``annotations`` (ids 1..M, ``bbox``
    ``[x, y, w, h]``, ``area``, ``iscrowd`` 0; a polygon's ``segmentation`` ``[[x1, y1, ...]]``
    and its shoelace area), ``categories`` (ids 1..K in class order)."""
    rows = checked_images(images, classes)
    category = {name: n + 1 for n, name in enumerate(classes)}
    coco_images, annotations = [], []
    for coco_id, image in zip(_coco_ids(rows), rows, strict=True):
        coco_images.append(
            {
                "id": coco_id,
                "file_name": image.file_name,
                "width": plain_size(image.width),
                "height": plain_size(image.height),
                "lw_id": str(image.image_id),
            }
        )
        for region in image.boxes:
            annotation: dict[str, Any] = {
                "id": len(annotations) + 1,
                "image_id": coco_id,
                "category_id": category[region.label],
            }
            annotation["bbox"] = [float(v) for v in bounds(region)]
            if isinstance(region, Polygon):
                annotation["segmentation"] = [[c for point in region.points for c in point]]
            annotation["area"] = float(area(region))
            annotation["iscrowd"] = 0
            if region.score is not None:
                annotation["score"] = float(region.score)
            annotations.append(annotation)
    return {
        "info": {"description": "labelwise export"},
        "licenses": [],
        "images": coco_images,
        "annotations": annotations,
        "categories": [
            {"id": category[name], "name": name, "supercategory": ""} for name in classes
        ],
    }


def write_coco(
    path: str | Path, images: Iterable[DetectionImage | Sequence[Any]], classes: Sequence[str]
) -> Path:
    """Write :func:`to_coco`'s JSON to ``path`` (its folder created); returns the path."""
    coco = to_coco(images, classes)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(coco, allow_nan=False), encoding="utf-8")
    return path


# -- YOLO ------------------------------------------------------------------------------------------


def _number(value: float) -> str:
    """A normalised coordinate with 6 decimals, trailing zeros dropped (``0.175``, ``1``)."""
    return f"{value:.6f}".rstrip("0").rstrip(".")


def yolo_lines(image: DetectionImage, classes: Sequence[str], segments: bool = False) -> list[str]:
    """The label file's lines of a checked image: ``class cx cy w h`` per box, ``class x1 y1 x2
    y2 ...`` per polygon (YOLO segmentation), normalised to 0..1 by the image size. With
    ``segments`` a box is written as its 4 corners, a polygon (YOLO reads a file as one or the
    other: a box line among polygon lines would be read as a 2-point polygon)."""
    index = {name: n for n, name in enumerate(classes)}
    width, height = float(image.width), float(image.height)
    lines = []
    for region in image.boxes:
        if isinstance(region, Box) and segments:
            x0, y0, x1, y1 = region.x, region.y, region.x + region.w, region.y + region.h
            corners = ((x0, y0), (x1, y0), (x1, y1), (x0, y1))
            values = [c for x, y in corners for c in (x / width, y / height)]
        elif isinstance(region, Box):
            values = [
                (region.x + region.w / 2) / width,
                (region.y + region.h / 2) / height,
                region.w / width,
                region.h / height,
            ]
        else:
            values = [c for x, y in region.points for c in (x / width, y / height)]
        lines.append(" ".join([str(index[region.label]), *map(_number, values)]))
    return lines


def _stems(images: list[DetectionImage]) -> list[str]:
    seen: dict[str, Any] = {}
    stems = []
    for image in images:
        stem = PurePath(str(image.file_name).replace("\\", "/")).stem
        if not stem:
            raise ExportError(f"image {image.image_id!r} has no file name ({image.file_name!r})")
        if stem in seen:
            raise ExportError(
                f"images {seen[stem]!r} and {image.image_id!r} have the same file stem {stem!r} "
                f"({image.file_name!r}): YOLO names a label file by its image's stem; rename one"
            )
        seen[stem] = image.image_id
        stems.append(stem)
    return stems


def write_yolo(
    out_dir: str | Path,
    images: Iterable[DetectionImage | Sequence[Any]],
    classes: Sequence[str],
) -> list[Path]:
    """A YOLO label folder: ``labels/<stem>.txt`` per image (:func:`yolo_lines`, segmentation
    lines throughout if any region is a polygon; empty for an image with no object),
    ``classes.txt`` (a class a line) and ``data.yaml`` (``names``, ``nc``; ``train``/``val`` are
    ``images``: put the images in ``out_dir/images/``). Two images with one file stem, or label
    files already there of images not exported, fail. Returns the label files."""
    rows = checked_images(images, classes)
    stems = _stems(rows)
    out = Path(out_dir)
    labels = out / "labels"
    stale = (
        sorted(p.name for p in labels.glob("*.txt") if p.stem not in set(stems))
        if labels.is_dir()
        else []
    )
    if stale:
        raise ExportError(
            f"{labels} already holds label files of images not in this export ({stale[0]}, ...): "
            "export into an empty folder"
        )
    labels.mkdir(parents=True, exist_ok=True)
    segments = any(isinstance(r, Polygon) for image in rows for r in image.boxes)
    written = []
    for stem, image in zip(stems, rows, strict=True):
        lines = yolo_lines(image, classes, segments)
        path = labels / f"{stem}.txt"
        path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        written.append(path)
    (out / "classes.txt").write_text("".join(f"{c}\n" for c in classes), encoding="utf-8")
    data = {
        "path": str(out.resolve()),
        "train": "images",
        "val": "images",
        "nc": len(classes),
        "names": list(classes),
    }
    (out / "data.yaml").write_text(
        yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8"
    )
    return written
