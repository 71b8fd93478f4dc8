"""Benchmark problems: a dataset featurized as the pipeline does, with its task and minority class.

A bundled dataset (``tasks.data.datasets``) or a user's CSV/Parquet file becomes a
:class:`Problem` that every strategy of a benchmark run learns from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

EMBEDDINGS_CACHE = Path(".labelwise") / "embeddings"


class BenchmarkError(ValueError):
    """The benchmark cannot run as asked (bad column, too few rows, unknown metric...)."""


@dataclass
class Problem:
    """A featurized dataset: X (dense or sparse), y, and what kind of learning task it is."""

    name: str
    X: Any
    y: np.ndarray
    task: str = "classification"  # or "regression", or "tokens" (X: sentences, y: tag lists)
    minority: Any = None  # the least frequent class (minority_recall)
    raw: pd.DataFrame | None = None  # the items as columns (what labeling functions read), with id


def problem_from_frame(
    name: str,
    frame: pd.DataFrame,
    target: str,
    *,
    text_column: str | None = None,
    embeddings: bool = False,
    task: str | None = None,
) -> Problem:
    """Featurize ``frame`` as the pipeline does: TF-IDF (or sentence embeddings) for a text
    column, else numeric + one-hot categorical columns. The featurizers are unsupervised, so
    they are fit once on all rows."""
    if target not in frame.columns:
        raise BenchmarkError(f"{name}: no target column {target!r}; columns: {list(frame.columns)}")
    frame = frame.dropna(subset=[target]).reset_index(drop=True)
    y = frame[target].to_numpy()
    features = frame.drop(columns=[target])
    if text_column is not None:
        if text_column not in features.columns:
            raise BenchmarkError(f"{name}: no text column {text_column!r}")
        from tasks.features.text import make_text_featurizer

        if embeddings:  # cached by text hash under the project's work dir: computed once ever
            featurizer = make_text_featurizer("embeddings", cache_dir=str(EMBEDDINGS_CACHE))
        else:
            featurizer = make_text_featurizer("tfidf")
        X = featurizer.fit_transform(features[text_column].astype(str).tolist())
    else:
        from tasks.features.tabular import infer_column_types, make_tabular_featurizer

        types = infer_column_types(features)
        X = make_tabular_featurizer(types.numeric, types.categorical).fit_transform(features)
    if task is None:
        numeric_target = pd.api.types.is_float_dtype(frame[target])
        task = "regression" if numeric_target and frame[target].nunique() > 20 else "classification"
    minority = None
    if task == "classification":
        values, counts = np.unique(y.astype(str), return_counts=True)
        minority = values[np.argmin(counts)]
        y = y.astype(str)
    raw = features.assign(id=np.arange(len(features)).astype(str))
    return Problem(name, X, y, task, minority, raw)


def problem_from_dataset(name: str, embeddings: bool = False) -> Problem:
    """A bundled real dataset (``tasks.data.datasets``) as a benchmark problem."""
    from tasks.data.datasets import load_dataset

    ds = load_dataset(name)
    if ds.kind == "tokens":  # items are sentences, labeled whole
        from tasks.model.tagger import as_items

        return Problem(name, as_items(ds.frame[ds.text]), as_items(ds.frame[ds.target]), "tokens")
    frame = ds.frame[[*ds.features, ds.target]]
    task = "regression" if ds.kind == "regression" else "classification"
    problem = problem_from_frame(
        name, frame, ds.target, text_column=ds.text, embeddings=embeddings, task=task
    )
    if ds.positive_label is not None:
        problem.minority = str(ds.positive_label)
    return problem


def problem_from_file(
    path: Path, target: str, text_column: str | None = None, embeddings: bool = False
) -> Problem:
    """A user's CSV or Parquet file as a benchmark problem."""
    if not path.exists():
        raise BenchmarkError(f"{path}: no such file")
    if path.suffix.lower() == ".csv":
        frame = pd.read_csv(path)
    elif path.suffix.lower() in (".parquet", ".pq"):
        frame = pd.read_parquet(path)
    else:
        raise BenchmarkError(f"{path}: expected a .csv or .parquet file")
    return problem_from_frame(
        path.stem, frame, target, text_column=text_column, embeddings=embeddings
    )
