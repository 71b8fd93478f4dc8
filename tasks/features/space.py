"""How a project's items become model inputs, chosen by the data kind and ``features:``.

* tabular: numeric columns median-imputed and standardised, categorical ones one-hot (or
  ordinal, ``features.categorical_encoding``); fitted on the labeled rows of each round;
* text: TF-IDF or the offline sentence embeddings (``features.text_featurizer``) of
  ``data.text_column``; TF-IDF is fitted on the pool (never the holdout), embeddings are cached
  per text;
* image: the files of ``data.image_column`` decoded, grey, resized to ``features.image_size``;
* tokens: each sentence's token list (``data.text_column``) as is: the tagger makes its own
  per-token features.

The fitted featurizer and the model form one pipeline (:class:`RawInputModel`), so the model
registered each round predicts from raw input. Features of the whole pool are cached under
``<work_dir>/features`` by the content of the pool and of the fitted featurizer: a round
featurizes the pool only when either changed (a new ingest batch; a tabular refit).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import Pipeline

from tasks.features.tabular import infer_column_types, make_tabular_featurizer

#: pool columns that are bookkeeping, never features
NON_FEATURES = frozenset({"id", "ingest_batch", "first_seen", "label", "source_path"})
#: kinds whose featurizer is fitted on the pool (or needs no fit), not on the labeled rows
FIT_ON_POOL = frozenset({"text", "image", "tokens"})


class FeatureError(ValueError):
    """The pool cannot be featurized as configured (no usable column, a missing text column)."""


class Column(TransformerMixin, BaseEstimator):
    """One column of a frame as a 1-d array (texts, image paths), or, with ``tokens``, as a
    1-d array of token lists (Parquet lists, JSON lists, or whitespace-separated text)."""

    def __init__(self, name: str, tokens: bool = False) -> None:
        self.name = name
        self.tokens = tokens

    def fit(self, X: Any, y: Any = None) -> Column:
        return self

    def __sklearn_is_fitted__(self) -> bool:  # stateless: fitted from the start
        return True

    def transform(self, X: Any) -> np.ndarray:
        if self.name not in X.columns:
            raise FeatureError(f"the items have no column {self.name!r}")
        values = X[self.name].to_numpy(dtype=object)
        if not self.tokens:
            return values
        out = np.empty(len(values), dtype=object)
        out[:] = [as_tokens(v) for v in values]
        return out


def as_tokens(value: Any) -> list[str]:
    """A sentence's tokens from a list, a JSON list, or whitespace-separated text."""
    if isinstance(value, list | tuple | np.ndarray):
        return [str(t) for t in value]
    text = "" if value is None else str(value)
    if text.lstrip().startswith("["):
        parsed = json.loads(text)
        if not isinstance(parsed, list):
            raise FeatureError(f"expected a JSON list of tokens, got {text[:60]!r}")
        return [str(t) for t in parsed]
    return text.split()


def tabular_columns(pool: pd.DataFrame, settings: Any) -> tuple[list[str], list[str]]:
    """(numeric, categorical) columns the model reads: ``data.feature_columns`` or every column
    that is not bookkeeping (free text and id-like strings left out)."""
    skip = set(NON_FEATURES) | {settings.data.label_column}
    frame = pool[list(settings.data.feature_columns)] if settings.data.feature_columns else pool
    types = infer_column_types(frame, exclude=skip)
    if not types.numeric and not types.categorical:
        raise FeatureError(
            "the pool has no numeric or categorical columns to learn from; set data.kind "
            "(text, image, tokens) or data.feature_columns"
        )
    return types.numeric, types.categorical


def build_featurizer(settings: Any, pool: pd.DataFrame) -> Any:
    """The unfitted featurizer of ``data.kind`` (resolved) for this pool's columns."""
    kind, features, data = settings.data.kind, settings.features, settings.data
    if kind == "tabular":
        numeric, categorical = tabular_columns(pool, settings)
        return make_tabular_featurizer(numeric, categorical, encoding=features.categorical_encoding)
    if kind == "text":
        return Pipeline(
            [
                ("text", Column(data.text_column)),
                ("vectorize", features.build_text(Path(settings.project.work_dir))),
            ]
        )
    if kind == "image":
        from tasks.features.images import PixelFeaturizer

        return Pipeline(
            [
                ("path", Column(data.image_column)),
                ("pixels", PixelFeaturizer(features.image_size, features.image_max_value)),
            ]
        )
    if kind == "tokens":
        return Column(data.text_column, tokens=True)
    raise FeatureError(f"data.kind {kind!r} is not resolved (call tasks.data.profile.resolve)")


def fingerprint(*parts: Any) -> str:
    """A short content hash of ``parts`` (frames by their values, estimators by their state)."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, pd.DataFrame | pd.Series):
            digest.update(pd.util.hash_pandas_object(part, index=False).to_numpy().tobytes())
        else:
            digest.update(joblib.hash(part).encode())
    return digest.hexdigest()[:24]


def _cache_dir(settings: Any) -> Path:
    return Path(settings.project.work_dir) / "features"


def fit_featurizer(settings: Any, pool: pd.DataFrame, labeled: pd.DataFrame) -> Any:
    """The featurizer fitted as its kind wants: on the pool (text, image, tokens: cached by the
    pool's ids and the settings, so a round refits only after an ingest) or on the labeled
    rows (tabular)."""
    featurizer = build_featurizer(settings, pool)
    if settings.data.kind not in FIT_ON_POOL:
        return featurizer.fit(labeled)
    key = fingerprint(pool["id"], settings.data.model_dump(), settings.features.model_dump())
    path = _cache_dir(settings) / f"featurizer-{key}.joblib"
    if path.exists():
        return joblib.load(path)
    fitted = featurizer.fit(pool)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    joblib.dump(fitted, tmp)
    tmp.replace(path)
    return fitted


def fit_pool_featurizer(settings: Any, pool: pd.DataFrame) -> Any:
    """A featurizer fitted on the pool whatever the kind (no labels involved): what a cold
    start measures distances in before any model exists."""
    if settings.data.kind in FIT_ON_POOL:
        return fit_featurizer(settings, pool, pool.iloc[:0])
    return build_featurizer(settings, pool).fit(pool)


def pool_features(settings: Any, featurizer: Any, pool: pd.DataFrame) -> Any:
    """``featurizer.transform(pool)``, cached by the pool's ids and the fitted featurizer."""
    key = fingerprint(pool["id"], featurizer)
    folder = _cache_dir(settings)
    dense, sparse = folder / f"pool-{key}.npy", folder / f"pool-{key}.npz"
    if dense.exists():
        return np.load(dense, allow_pickle=True)
    if sparse.exists():
        return sp.load_npz(sparse)
    X = featurizer.transform(pool)
    folder.mkdir(parents=True, exist_ok=True)
    if sp.issparse(X):
        sp.save_npz(folder / f"pool-{key}.tmp.npz", sp.csr_matrix(X))
        (folder / f"pool-{key}.tmp.npz").replace(sparse)
    else:
        tmp = folder / f"pool-{key}.tmp.npy"
        np.save(tmp, np.asarray(X), allow_pickle=True)
        tmp.replace(dense)
    return X


def raw_columns(settings: Any, pool: pd.DataFrame) -> list[str]:
    """The raw input columns of an item (what the registered model takes)."""
    kind, data = settings.data.kind, settings.data
    if kind in ("text", "tokens"):
        return [data.text_column]
    if kind == "image":
        return [data.image_column]
    numeric, categorical = tabular_columns(pool, settings)
    return [*numeric, *categorical]


def json_ready(frame: pd.DataFrame) -> pd.DataFrame:
    """A raw input frame with token lists as JSON text (what MLflow's signature can describe)."""
    out = frame.copy()
    for column in out.columns:
        if len(out) and isinstance(out[column].iloc[0], list | tuple | np.ndarray):
            out[column] = out[column].map(lambda v: json.dumps(as_tokens(v)))
    return out
