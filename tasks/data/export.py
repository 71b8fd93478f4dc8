"""The labels collected up to a round, for a training job of your own (``labelwise export``):
one consensus label per item as the loop trains on it, with the item's raw columns, as CSV (or
Parquet); box answers as COCO or YOLO (:mod:`tasks.export`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from tasks.data import store
from tasks.export.detection import ExportError

__all__ = ["FORMATS", "ExportError", "export", "labels_at", "last_round"]

FORMATS = ("csv", "coco", "yolo")


def last_round(settings: Any) -> int:
    """The newest round with labels in the log (0: only the seed labels)."""
    log = store.read_labels(settings)
    if log.empty:
        raise ExportError(f"{store.data_paths(settings).labels}: no labels collected yet")
    return int(log["round"].max())


def labels_at(settings: Any, round_: int, include_holdout: bool = False) -> pd.DataFrame:
    """One label per item answered in rounds ``<= round_`` (the consensus the loop trains on,
    :func:`tasks.loop.training_data.consensus`), with ``split`` (``train``; ``holdout`` rows only
    with ``include_holdout``: they are the loop's evaluation set), the round it was first
    labeled in, and the item's raw columns. Weak labels are never in it. ``settings``
    resolved."""
    from tasks.features.space import raw_columns
    from tasks.loop.training_data import consensus

    log = store.read_labels(settings)
    if round_ < 0 or (len(log) and round_ > int(log["round"].max())):
        newest = int(log["round"].max()) if len(log) else 0
        raise ExportError(f"--round {round_}: the label log has rounds 0..{newest}")
    log = log[log["round"] <= round_]
    agreed = consensus(settings, log).labels
    first = log.groupby("id")["round"].min().rename("round")
    pool = store.read_pool(settings)
    columns = ["id", *raw_columns(settings, pool)]
    frames = [_rows(pool[columns], agreed, first, "train")]
    if include_holdout:
        holdout = store.read_holdout(settings)
        frames.append(
            holdout[columns]
            .assign(label=holdout["label"].astype(str), split="holdout", round=pd.NA)
            .reindex(columns=frames[0].columns)
        )
    return pd.concat(frames, ignore_index=True)


def _rows(items: pd.DataFrame, agreed: pd.DataFrame, first: pd.Series, split: str) -> pd.DataFrame:
    keep = [c for c in ("id", "label", "n_votes", "agreement") if c in agreed.columns]
    out = agreed[keep].merge(items, on="id", how="inner")
    out = out.merge(first, left_on="id", right_index=True, how="left")
    out.insert(2, "split", split)
    head = ["id", "label", "split", "round", *[c for c in ("n_votes", "agreement") if c in out]]
    return out[head + [c for c in out.columns if c not in head]]


def write_table(frame: pd.DataFrame, out: Path) -> Path:
    """``frame`` as Parquet (``.parquet``) or CSV (any other suffix)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() in (".parquet", ".pq"):
        frame.to_parquet(out, index=False)
    else:
        frame.to_csv(out, index=False)
    return out


def export(
    settings: Any, round_: int, format_: str, out: Path, include_holdout: bool = False
) -> tuple[Path, int]:
    """Write the labels of rounds ``<= round_`` in ``format_``; returns (what was written, how
    many items)."""
    if format_ not in FORMATS:
        raise ExportError(f"format {format_!r}: one of {', '.join(FORMATS)}")
    frame = labels_at(settings, round_, include_holdout)
    if format_ == "csv":
        return write_table(frame, Path(out)), len(frame)
    return export_boxes(settings, frame, format_, Path(out)), len(frame)


def export_boxes(settings: Any, frame: pd.DataFrame, format_: str, out: Path) -> Path:
    """Box answers as COCO JSON or a YOLO folder: each label holds an image's boxes or polygons
    as JSON (:func:`tasks.annotation.boxes.encode_boxes`), sizes read from the image files;
    classes ``data.classes`` if declared, else the labels' own in sorted order."""
    from tasks.annotation.boxes import BoxError, decode_boxes, image_size
    from tasks.export.detection import DetectionImage, write_coco, write_yolo

    column = settings.data.image_column
    if settings.data.kind != "image" or column not in frame.columns:
        raise ExportError(
            f"--format {format_} writes box answers on images; this project labels "
            f"{settings.data.kind} items: use --format csv"
        )
    images = []
    for item, label, path in zip(frame["id"], frame["label"], frame[column], strict=True):
        try:
            regions = decode_boxes(str(label), item)
        except BoxError as exc:
            raise ExportError(
                f"item {item!r}: its label {str(label)[:40]!r} is not a box answer ({exc}); "
                "--format csv exports class labels"
            ) from exc
        width, height = image_size(path)
        images.append(DetectionImage(item, Path(str(path)).name, width, height, regions))
    classes = [str(c) for c in settings.data.classes] or sorted(
        {r.label for image in images for r in image.boxes}
    )
    if format_ == "coco":
        return write_coco(out, images, classes)
    write_yolo(out, images, classes)
    return out
