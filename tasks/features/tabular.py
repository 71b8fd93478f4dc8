"""Tabular features: impute and scale numeric columns, one-hot categorical ones."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import FunctionTransformer, Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

MISSING = "__missing__"


@dataclass(frozen=True)
class ColumnTypes:
    """Column names by role, as inferred by :func:`infer_column_types`."""

    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)


def _as_category_strings(X) -> np.ndarray:
    """Categories as strings with missing values as their own category (mixed types are safe)."""
    frame = pd.DataFrame(X).astype(object)
    return frame.where(frame.notna(), MISSING).astype(str).to_numpy()


def make_tabular_featurizer(
    numeric: list[str], categorical: list[str], *, encoding: str = "onehot"
) -> ColumnTransformer:
    """A ColumnTransformer: numeric -> median-imputed, standardised; categorical -> one-hot
    (``encoding="ordinal"``: one integer code per category, for tree models and many levels).

    Missing categories become their own category; categories unseen at fit time encode as all
    zeros (one-hot) or -1 (ordinal). Other columns are dropped. Output is a dense float array.
    """
    numeric_steps = Pipeline(
        [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
    )
    if encoding == "ordinal":
        encoder: Any = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
    elif encoding == "onehot":
        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    else:
        raise ValueError(f"unknown categorical encoding {encoding!r}; use onehot or ordinal")
    categorical_steps = Pipeline(
        [
            ("as_str", FunctionTransformer(_as_category_strings, feature_names_out="one-to-one")),
            ("encode", encoder),
        ]
    )
    transformers = []
    if numeric:
        transformers.append(("numeric", numeric_steps, list(numeric)))
    if categorical:
        transformers.append(("categorical", categorical_steps, list(categorical)))
    if not transformers:
        raise ValueError("make_tabular_featurizer: no numeric and no categorical columns given")
    return ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0)


def infer_column_types(
    frame: pd.DataFrame,
    exclude: Iterable[str] = (),
    *,
    max_categories: int = 50,
    text_min_mean_length: float = 30.0,
) -> ColumnTypes:
    """Split columns into numeric, categorical and free-text by dtype and content.

    Booleans, categoricals and strings are categorical, unless a string column has more than
    ``max_categories`` distinct values and a mean length of at least ``text_min_mean_length``
    characters (then it is text). Other high-cardinality strings (ids) are left out. Numbers
    are numeric. Columns in ``exclude`` (e.g. the target) are skipped.
    """
    skip = set(exclude)
    types = ColumnTypes()
    for name in frame.columns:
        if name in skip:
            continue
        col = frame[name]
        if pd.api.types.is_bool_dtype(col) or isinstance(col.dtype, pd.CategoricalDtype):
            types.categorical.append(name)
        elif pd.api.types.is_numeric_dtype(col):
            types.numeric.append(name)
        else:
            values = col.dropna().astype(str)
            if values.nunique() <= max_categories:
                types.categorical.append(name)
            elif values.str.len().mean() >= text_min_mean_length:
                types.text.append(name)
    return types
