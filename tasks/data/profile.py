"""What a project's data is: its items (table rows, texts, image files, sentences of tokens) and
its labels (classes, numbers, tag sequences). The ``auto`` settings (``data.kind``,
``model.task``, ``evaluate.metric``) are resolved from it, once per run.

The profile is decided when the project is made (``labelwise init``, the demo of ``labelwise
run``) and kept in ``<data_dir>/project.json``; a project whose data was ingested by hand is
profiled from its pool's columns and its holdout's labels.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel

from tasks.data import store

Kind = Literal["tabular", "text", "image", "tokens"]
Task = Literal["classification", "regression", "ner", "detection"]
PROJECT_FILE = "project.json"
#: the holdout metric ``evaluate.metric: auto`` stands for, per task
DEFAULT_METRIC: dict[str, str] = {
    "classification": "macro_f1",
    "regression": "rmse",
    "ner": "entity_f1",
    "detection": "box_f1",
}
#: distinct numeric labels above which a label column is read as a regression target
REGRESSION_MIN_DISTINCT = 20


class DataProfile(BaseModel):
    """A project's data kind and task, and how they were decided (``source``)."""

    kind: Kind
    task: Task
    source: str = ""


def profile_path(settings: Any) -> Path:
    return Path(settings.project.data_dir) / PROJECT_FILE


def read_profile(settings: Any) -> DataProfile | None:
    path = profile_path(settings)
    if not path.exists():
        return None
    return DataProfile.model_validate_json(path.read_text(encoding="utf-8"))


def write_profile(settings: Any, profile: DataProfile) -> None:
    store.write_json_atomic(profile.model_dump(), profile_path(settings))


def looks_numeric(labels: pd.Series) -> bool:
    """Whether every label is a finite number and there are many distinct ones."""
    values = pd.to_numeric(labels.dropna().astype(str), errors="coerce")
    if values.isna().any() or values.empty:
        return False
    return bool(values.map(math.isfinite).all()) and values.nunique() > REGRESSION_MIN_DISTINCT


def kind_of_columns(columns: dict[str, str], settings: Any) -> Kind:
    """The item kind from the pool's columns (name -> Arrow type): an image column, a text
    column of token lists or of text, else table rows."""
    data = settings.data
    if data.image_column in columns:
        return "image"
    if data.text_column in columns:
        return "tokens" if columns[data.text_column].startswith("list") else "text"
    return "tabular"


def detect(settings: Any) -> DataProfile:
    """Profile the project from its pool's columns and its holdout's labels."""
    import pyarrow.parquet as pq

    paths = store.data_paths(settings)
    columns: dict[str, str] = {}
    if paths.pool.exists():
        columns = {f.name: str(f.type) for f in pq.read_schema(paths.pool)}
    kind = kind_of_columns(columns, settings)
    if kind == "tokens":
        return DataProfile(kind=kind, task="ner", source="token lists in the pool")
    holdout = store.read_holdout(settings)
    if not settings.data.classes and len(holdout) and looks_numeric(holdout["label"]):
        return DataProfile(kind=kind, task="regression", source="numeric holdout labels")
    return DataProfile(kind=kind, task="classification", source=f"{kind} pool")


def project_profile(settings: Any) -> DataProfile:
    """The project's profile: ``data.kind`` / ``model.task`` where set, the rest from
    ``project.json`` or, without one, from the data."""
    found = read_profile(settings) or detect(settings)
    kind = found.kind if settings.data.kind == "auto" else settings.data.kind
    task = found.task if settings.model.task == "auto" else settings.model.task
    if kind == "tokens" and settings.model.task == "auto":
        task = "ner"
    return DataProfile(kind=kind, task=task, source=found.source)


def resolve(settings: Any) -> Any:
    """``settings`` with ``data.kind``, ``model.task`` and ``evaluate.metric`` resolved from the
    project's data where they are ``auto`` (the same object when none is)."""
    autos = (settings.data.kind, settings.model.task, settings.evaluate.metric)
    if "auto" not in autos:
        return settings
    profile = project_profile(settings)
    metric = settings.evaluate.metric
    if metric == "auto":
        metric = DEFAULT_METRIC[profile.task]
    return settings.model_copy(
        update={
            "data": settings.data.model_copy(update={"kind": profile.kind}),
            "model": settings.model.model_copy(update={"task": profile.task}),
            "evaluate": settings.evaluate.model_copy(update={"metric": metric}),
        }
    )


def describe(profile: DataProfile) -> str:
    """One line for a person: what the data was taken to be."""
    what = {"tabular": "table rows", "text": "texts", "image": "images", "tokens": "sentences"}
    task = {"classification": "classes", "regression": "numbers", "ner": "tags per token"}
    return f"{what[profile.kind]} labeled with {task[profile.task]} ({profile.source})"


def dump(profile: DataProfile) -> str:
    return json.dumps(profile.model_dump())
