"""Text features: TF-IDF, or sentence embeddings (see :mod:`tasks.features.embeddings`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.feature_extraction.text import TfidfVectorizer


def make_tfidf_featurizer(
    *,
    max_features: int | None = 20_000,
    min_df: int | float = 2,
    max_df: float = 0.95,
    ngram_range: tuple[int, int] = (1, 2),
    sublinear_tf: bool = True,
    lowercase: bool = True,
) -> TfidfVectorizer:
    """TF-IDF over word n-grams with sublinear tf (1 + log tf), rare and ubiquitous terms cut.

    Returns a sparse (n, vocabulary) matrix with L2-normalised rows; ``min_df`` as an int is a
    document count, as a float a share of documents.
    """
    return TfidfVectorizer(
        max_features=max_features,
        min_df=min_df,
        max_df=max_df,
        ngram_range=tuple(ngram_range),
        sublinear_tf=sublinear_tf,
        lowercase=lowercase,
        strip_accents="unicode",
        dtype=np.float64,
    )


def _embeddings(**params: Any) -> BaseEstimator:
    from tasks.features.embeddings import SentenceEmbeddingFeaturizer

    return SentenceEmbeddingFeaturizer(**params)


TEXT_FEATURIZERS: dict[str, Callable[..., BaseEstimator]] = {
    "tfidf": make_tfidf_featurizer,
    "embeddings": _embeddings,
}


def make_text_featurizer(kind: str, **params: Any) -> BaseEstimator:
    """The text featurizer registered as ``kind`` ("tfidf" or "embeddings") with ``params``."""
    try:
        factory = TEXT_FEATURIZERS[kind]
    except KeyError:
        raise ValueError(
            f"unknown text featurizer {kind!r}; available: {', '.join(TEXT_FEATURIZERS)}"
        ) from None
    return factory(**params)
