"""Your own model in the loop (``model.kind: external``): instead of training, a round calls
``model.predict`` ("package.module:function") on pool items, ranks its predictions in the shapes
``labelwise select`` reads (one row per item with ``p_<class>`` columns, per committee member, or
per box; optional ``emb_*`` columns) and scores it on the holdout.

The function takes a frame of pool items (``id`` and the item's columns, as ingested) and returns
a frame with an ``id`` column. It is called on ``model.predict_chunk_rows`` items at a time, so a
large pool never has to fit its predictions in memory; each call is checked before it is used
and a bad answer names the function, the call and the row.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tasks.external.predictions import (
    BOX_COLUMNS,
    STRATEGIES,
    PredictionsError,
    Ranker,
    SelectOptions,
    Shape,
    check_options,
    detect_shape,
    group_starts,
    validate_chunk,
)

#: strategy names that leave the choice to the predictions' shape (see :func:`shape_strategy`)
FOLLOWS_SHAPE = ("auto", "hybrid")
__all__ = ["FOLLOWS_SHAPE", "STRATEGIES", "ExternalModelError"]

Predict = Callable[[pd.DataFrame], Any]


class ExternalModelError(ValueError):
    """``model.predict`` cannot be loaded, raised, or returned something the round cannot use;
    the message names the function (and the call and row)."""


class PredictFailed(RuntimeError):
    """The user's function raised: worth another try (a model server that was restarting)."""


def load_predict(spec: str) -> Predict:
    """The function ``package.module:function`` names (errors say which part is wrong)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ExternalModelError(f"model.predict {spec!r}: write it as 'package.module:function'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ExternalModelError(
            f"model.predict {spec!r}: cannot import {module_name!r} ({exc}); is it installed or "
            "on PYTHONPATH where the round runs?"
        ) from exc
    fn = getattr(module, attr, None)
    if fn is None or not callable(fn):
        raise ExternalModelError(f"model.predict {spec!r}: {module_name} has no function {attr!r}")
    return fn


def model_version(spec: str, fn: Predict, frame: pd.DataFrame | None = None) -> str:
    """Which version of your model answered: a ``model_version`` column of its predictions, a
    ``model_version`` attribute of the function, or its module's ``MODEL_VERSION``; else the
    function's name."""
    if frame is not None and "model_version" in frame and len(frame):
        return str(frame["model_version"].iloc[0])
    module = importlib.import_module(spec.partition(":")[0])
    found = getattr(fn, "model_version", None) or getattr(module, "MODEL_VERSION", None)
    return str(found) if found is not None else spec


def call_predict(fn: Predict, spec: str, items: pd.DataFrame, call: int) -> pd.DataFrame:
    """One call of your function on ``items``, checked: a frame, with an ``id`` column, every id
    one it was given, and (one row per item or member) every item answered. Rows come back
    grouped by id (a stable sort), so the function need not order them."""
    where = f"model.predict {spec!r} (call {call}, {len(items)} items)"
    try:
        out = fn(items.copy())
    except Exception as exc:  # the user's code: any failure is theirs to report
        raise PredictFailed(f"{where} raised {type(exc).__name__}: {exc}") from exc
    if not isinstance(out, pd.DataFrame):
        raise ExternalModelError(
            f"{where} returned {type(out).__name__}, not a pandas DataFrame with an id column "
            "and p_<class> columns"
        )
    if "id" not in out.columns:
        raise ExternalModelError(
            f"{where}, row 1, column 'id': no id column (found {list(out.columns)[:8]})"
        )
    out = out.reset_index(drop=True)
    ids = out["id"].astype(str)
    given = set(items["id"].astype(str))
    unknown = ~ids.isin(given) & out["id"].notna()
    if unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0])
        raise ExternalModelError(
            f"{where}, row {row + 1}, column 'id': id {ids.iloc[row]!r} is not one of the "
            "items it was given"
        )
    if "box_id" not in out.columns:  # an image may have no boxes; every item has probabilities
        missing = sorted(given - set(ids))
        if missing:
            raise ExternalModelError(
                f"{where}, column 'id': no predictions for {len(missing)} of the items it was "
                f"given (e.g. {missing[0]!r})"
            )
    out["id"] = ids.where(out["id"].notna(), None)
    return out.sort_values("id", kind="stable", na_position="first").reset_index(drop=True)


def predictions(
    spec: str, items: pd.DataFrame, chunk_rows: int, predict: Predict | None = None
) -> Iterator[tuple[pd.DataFrame, str]]:
    """Your function's checked predictions for ``items``, ``chunk_rows`` items per call, each
    with the name the errors give it. ``predict(fn, spec, items, call)`` replaces
    :func:`call_predict` (the round flow passes it as a Prefect task with retries)."""
    fn = load_predict(spec)
    caller = predict or call_predict
    for call, start in enumerate(range(0, len(items), chunk_rows), start=1):
        chunk = items.iloc[start : start + chunk_rows]
        yield caller(fn, spec, chunk, call), f"model.predict {spec!r} (call {call})"


def model_items(settings: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """What your function is given: each item's ``id`` and its raw input columns (the columns a
    model of labelwise's own takes; ``settings`` resolved), without the pool's bookkeeping."""
    from tasks.features.space import raw_columns

    return frame[["id", *raw_columns(settings, frame)]]


def shape_strategy(name: str, shape: Shape) -> str:
    """The ranking a strategy name asks for: ``auto``/``hybrid`` follow the shape (BALD over
    committee members; cluster-margin where there are embeddings; margin otherwise)."""
    if name not in FOLLOWS_SHAPE:
        return name
    if shape.kind == "member":
        return "bald"
    return "cluster_margin" if shape.embedding_columns else "margin"


@dataclass
class Ranked:
    """A batch ranked from your model's predictions: ids in rank order, scores, the strategy
    that ranked them, the version that answered, and each pick's predicted class and
    probability (``None`` for box predictions) for pre-annotation."""

    ids: list[str]
    scores: list[float]
    strategy: str
    version: str
    predicted: pd.DataFrame
    shape: Shape | None = None


def rank_pool(
    settings: Any,
    items: pd.DataFrame,
    batch_size: int,
    seed: int,
    predict: Predict | None = None,
) -> Ranked:
    """The ``batch_size`` most informative of ``items`` (the eligible pool) by your model's
    predictions, chunk by chunk with a running top-k (memory O(chunk + batch))."""
    spec = settings.model.predict
    params = settings.strategy.params
    ranker: Ranker | None = None
    version = spec
    best: dict[str, tuple[str, float]] = {}
    for frame, source in predictions(spec, items, settings.model.predict_chunk_rows, predict):
        with _named():
            shape = detect_shape(list(frame.columns), source)  # type: ignore[arg-type]
            if ranker is None:
                version = model_version(spec, load_predict(spec), frame)
                options = SelectOptions(
                    batch_size=batch_size,
                    strategy=shape_strategy(settings.strategy.name, shape),
                    aggregate=str(params.get("aggregate", "max")),
                    rare_classes=tuple(str(c) for c in params.get("rare_classes", ())),
                    prefilter=int(params.get("prefilter", 10)),
                    seed=seed,
                )
                check_options(shape, options, source)  # type: ignore[arg-type]
                ranker = Ranker(source, shape, options, set())  # type: ignore[arg-type]
            elif shape != ranker.shape:
                raise ExternalModelError(
                    f"{source}: its columns differ from the first call's "
                    f"({ranker.shape.columns[:6]} ...): every call must return the same columns"
                )
            rows = validate_chunk(frame, shape, source, 1)  # type: ignore[arg-type]
            ranker.file = source  # type: ignore[assignment]
            ranker.push(rows)
        best |= _top_class(rows, shape)
    if ranker is None:
        return Ranked([], [], settings.strategy.name, version, _predicted({}, []))
    batch = ranker.batch()
    ids = [str(i) for i in batch["id"]]
    return Ranked(
        ids,
        [float(s) for s in batch["score"]],
        str(ranker.options.strategy),
        version,
        _predicted(best, ids),
        ranker.shape,
    )


def predicted_regions(
    settings: Any, items: pd.DataFrame, predict: Predict | None = None
) -> dict[str, list[Any]]:
    """Your model's boxes on each of ``items`` (an image with none: ``[]``), each labeled with
    its most probable class and scored by that probability, in pixels as it returned them."""
    from tasks.annotation.boxes import Box

    spec = settings.model.predict
    out: dict[str, list[Any]] = {str(i): [] for i in items["id"]}
    for frame, source in predictions(spec, items, settings.model.predict_chunk_rows, predict):
        with _named():
            shape = detect_shape(list(frame.columns), source)  # type: ignore[arg-type]
            rows = validate_chunk(frame, shape, source, 1)  # type: ignore[arg-type]
        if shape.kind != "box" or shape.box_columns != BOX_COLUMNS:
            raise ExternalModelError(
                f"{source}: a detection project needs one row per box, with box_id, "
                f"p_<class> and {', '.join(BOX_COLUMNS)} columns (found {list(frame.columns)[:8]})"
            )
        coords = frame[list(BOX_COLUMNS)].to_numpy(dtype=np.float64)
        top, score = rows.probas.argmax(axis=1), rows.probas.max(axis=1)
        for n, item in enumerate(rows.ids):
            x, y, w, h = (float(v) for v in coords[n])
            out[str(item)].append(Box(shape.classes[top[n]], x, y, w, h, float(score[n])))
    return out


@contextmanager
def _named() -> Iterator[None]:
    """A predictions error (it already names the call, row and column) as the model's error."""
    try:
        yield
    except PredictionsError as exc:
        raise ExternalModelError(str(exc)) from exc


def _item_probas(rows: Any, shape: Shape) -> tuple[np.ndarray, np.ndarray]:
    """(ids, probabilities) one per item: a committee's members averaged."""
    if shape.kind != "member" or len(rows) == 0:
        return rows.ids, rows.probas
    starts = group_starts(rows.ids)
    sizes = np.diff(np.r_[starts, len(rows.ids)])[:, None]
    return rows.ids[starts], np.add.reduceat(rows.probas, starts, axis=0) / sizes


def _top_class(rows: Any, shape: Shape) -> dict[str, tuple[str, float]]:
    """Each item's predicted class and its probability; none for boxes."""
    if shape.kind == "box" or len(rows) == 0:
        return {}
    ids, probas = _item_probas(rows, shape)
    top = probas.argmax(axis=1)
    classes = np.asarray(shape.classes)
    return {
        str(i): (str(c), float(p))
        for i, c, p in zip(ids, classes[top], probas[np.arange(len(top)), top], strict=True)
    }


def _predicted(best: dict[str, tuple[str, float]], ids: list[str]) -> pd.DataFrame:
    """The picks' predicted class and probability (what pre-annotates them)."""
    known = [i for i in ids if i in best]
    return pd.DataFrame(
        {
            "id": known,
            "prediction": [best[i][0] for i in known],
            "prediction_score": [best[i][1] for i in known],
        }
    )


def class_probabilities(
    settings: Any, items: pd.DataFrame, predict: Predict | None = None
) -> tuple[pd.Series, np.ndarray, list[str]]:
    """Your model's class probabilities for ``items`` (committee members averaged), for the
    holdout metrics: (ids, probabilities (n, K), classes). Box predictions have none."""
    spec = settings.model.predict
    out_ids: list[np.ndarray] = []
    out_probas: list[np.ndarray] = []
    classes: tuple[str, ...] | None = None
    for frame, source in predictions(spec, items, settings.model.predict_chunk_rows, predict):
        with _named():
            shape = detect_shape(list(frame.columns), source)  # type: ignore[arg-type]
            rows = validate_chunk(frame, shape, source, 1)  # type: ignore[arg-type]
        if shape.kind == "box":
            raise ExternalModelError(
                f"{source}: box predictions have no class probability per item to score on the "
                "holdout"
            )
        if classes is not None and shape.classes != classes:
            raise ExternalModelError(f"{source}: its classes differ from the first call's")
        classes = shape.classes
        ids, probas = _item_probas(rows, shape)
        out_ids.append(ids)
        out_probas.append(probas)
    if classes is None:
        return pd.Series([], dtype=str), np.empty((0, 0)), []
    return (
        pd.Series(np.concatenate(out_ids)).astype(str),
        np.concatenate(out_probas),
        list(classes),
    )
