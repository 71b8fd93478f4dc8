"""The gates' checks that depend on what the data is (``data.kind``, ``model.task``): an item
must be usable as its kind (a text with words, an image file that opens, a list of tokens) and
an answer must fit its task (a finite number, one tag per token of the item). Each returns the
failing cells as :class:`~tasks.data.gates.Failure` s (rows numbered as the gate numbers them),
so the gate quarantines those rows and names file, row and column."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.data.gates import Failure

#: what a tag of a sentence may be: outside, or the beginning / inside of an entity
TAG_PREFIXES = ("B-", "I-")


def item_failures(df: pd.DataFrame, settings: Any) -> list[Failure]:
    """Items that cannot be featurized as ``data.kind``: empty text or a number where text
    belongs, an image path that is missing or does not open as a picture, a sentence that is
    not a list of tokens."""
    kind, data = settings.data.kind, settings.data
    if kind == "text" and data.text_column in df.columns:
        return _text_failures(df[data.text_column], data.text_column)
    if kind == "image" and data.image_column in df.columns:
        return _image_failures(df[data.image_column], data.image_column)
    if kind == "tokens" and data.text_column in df.columns:
        return _token_failures(df[data.text_column], data.text_column)
    return []


def _text_failures(column: pd.Series, name: str) -> list[Failure]:
    if pd.api.types.is_numeric_dtype(column) and len(column.dropna()):
        return [Failure(None, name, "text", "holds numbers, not text (set data.text_column)")]
    out = []
    for row, value in column.items():
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue  # missing values are the null check's
        if not str(value).strip():
            out.append(Failure(row, name, "not_empty", "empty or whitespace-only text"))
    return out


def image_problem(path: Any) -> str | None:
    """Why ``path`` is not an image the featurizer can read (None: it is)."""
    from PIL import Image, UnidentifiedImageError

    file = Path(str(path))
    if not file.is_file():
        return f"no image file at {file}"
    try:
        with Image.open(file) as image:
            image.convert("L").load()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        return f"{file}: not a readable image ({exc})"
    return None


def _image_failures(column: pd.Series, name: str) -> list[Failure]:
    out = []
    for row, value in column.items():
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        reason = image_problem(value)
        if reason:
            out.append(Failure(row, name, "readable_image", reason))
    return out


def _token_failures(column: pd.Series, name: str) -> list[Failure]:
    from tasks.features.space import FeatureError, as_tokens

    out = []
    for row, value in column.items():
        try:
            tokens = as_tokens(value)
        except (FeatureError, json.JSONDecodeError) as exc:
            out.append(Failure(row, name, "tokens", f"not a list of tokens: {exc}"))
            continue
        if not tokens:
            out.append(Failure(row, name, "tokens", "a sentence without tokens"))
    return out


def label_failures(df: pd.DataFrame, settings: Any, pool: pd.DataFrame) -> list[Failure]:
    """Answers that do not fit ``model.task``: a regression label that is not a finite number;
    an NER answer that is not a list of tags (or of spans that convert to tags), whose length is
    not the sentence's token count, or whose entity types are not in ``data.classes``; a
    detection answer that is not boxes / polygons on its image (JSON, in the image, of a class in
    ``data.classes``)."""
    task = settings.model.task
    if task == "regression":
        return _number_failures(df["label"])
    if task == "ner":
        return _tag_failures(df, settings, pool)
    if task == "detection":
        return _region_failures(df, settings, pool)
    return []


def _region_failures(df: pd.DataFrame, settings: Any, pool: pd.DataFrame) -> list[Failure]:
    column = settings.data.image_column
    paths = {}
    if column in pool.columns:
        paths = dict(zip(pool["id"].astype(str), pool[column], strict=True))
    known = df["id"].astype(str).isin(paths)  # unknown ids are the generic checks'
    rows = df[known]
    images = rows["id"].astype(str).map(paths)
    return region_failures(rows["label"], images, rows["id"].astype(str), settings, "label")


def region_failures(
    labels: pd.Series, images: pd.Series, names: pd.Series, settings: Any, column: str
) -> list[Failure]:
    """Detection answers (``labels``, JSON regions) that are not boxes / polygons on their image
    (``images``: the file of each row), of a class in ``data.classes`` when it is declared;
    ``names``: each row's item, as the message names it."""
    from tasks.annotation.boxes import BoxError, check_boxes, decode_boxes, image_size

    classes = [str(c) for c in settings.data.classes] or None
    out = []
    for row, label in labels.items():
        if label is None or (isinstance(label, float) and math.isnan(label)):
            continue  # missing labels are the null check's
        try:
            regions = decode_boxes(str(label), names[row])
            width, height = image_size(images[row])
            check_boxes(names[row], regions, width, height, classes or {r.label for r in regions})
        except BoxError as exc:
            out.append(Failure(row, column, "regions", str(exc)))
        except OSError as exc:  # the image itself is the item check's
            out.append(Failure(row, column, "regions", f"image {images[row]}: {exc}"))
    return out


def _number_failures(column: pd.Series) -> list[Failure]:
    out = []
    for row, value in column.items():
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        try:
            number = float(str(value).strip())
        except ValueError:
            out.append(Failure(row, "label", "number", f"not a number: {str(value)[:40]!r}"))
            continue
        if not math.isfinite(number):
            out.append(Failure(row, "label", "number", f"not a finite number: {value!r}"))
    return out


def _tag_failures(df: pd.DataFrame, settings: Any, pool: pd.DataFrame) -> list[Failure]:
    from tasks.annotation.spans import SpanError, as_tag_answer
    from tasks.features.space import as_tokens

    column = settings.data.text_column
    tokens = {}
    if column in pool.columns:
        tokens = dict(zip(pool["id"].astype(str), pool[column], strict=True))
    types = {str(c) for c in settings.data.classes} or None
    out = []
    for row, item in df.iterrows():
        label, item_id = item["label"], str(item["id"])
        if label is None or item_id not in tokens:
            continue  # missing labels and unknown ids are the generic checks'
        sentence = as_tokens(tokens[item_id])
        try:
            tags = json.loads(as_tag_answer(label, sentence))
        except SpanError as exc:
            out.append(Failure(row, "label", "tags", str(exc)))
            continue
        if len(tags) != len(sentence):
            reason = f"{len(tags)} tags for a sentence of {len(sentence)} tokens"
            out.append(Failure(row, "label", "tags", reason))
            continue
        bad = [t for t in tags if not _valid_tag(str(t), types)]
        if bad:
            out.append(
                Failure(
                    row,
                    "label",
                    "tags",
                    f"tag {bad[0]!r} is not O, B-<type> or I-<type>"
                    + (f" of {sorted(types)}" if types else ""),
                )
            )
    return out


def _valid_tag(tag: str, types: set[str] | None) -> bool:
    if tag == "O":
        return True
    if not tag.startswith(TAG_PREFIXES) or len(tag) < 3:
        return False
    return types is None or tag[2:] in types
