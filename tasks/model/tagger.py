"""Token tagging (NER): items are sentences, labels are BIO tag lists, one tag per token.

A sentence is labeled whole; the model is a per-token logistic regression over hashed word
features, wrapped so ``predict_proba(sentences)`` returns one (n_tokens, n_classes) array per
sentence, the input ``sequence_uncertainty`` expects. Used by the loop (``model.task: ner``) and
the benchmark; scored by ``token_f1`` / ``entity_f1`` (:mod:`tasks.model.metrics`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.feature_extraction import FeatureHasher
from sklearn.linear_model import LogisticRegression


def _shape(word: str) -> str:
    """``Xxxx`` -> ``Xx``, ``2010`` -> ``d``: character classes with runs collapsed."""
    out = []
    for ch in word:
        c = "X" if ch.isupper() else "x" if ch.islower() else "d" if ch.isdigit() else ch
        if not out or out[-1] != c:
            out.append(c)
    return "".join(out)[:6]


def token_features(tokens: Sequence[str]) -> list[list[str]]:
    """Per-token feature strings: the word lowercased, its shape, 3-char prefix/suffix, Twitter
    markers (@, #, URL), and the neighbouring words lowercased."""
    lower = [t.lower() for t in tokens]
    feats = []
    for i, tok in enumerate(tokens):
        low = lower[i]
        feats.append(
            [
                "bias",
                f"w={low}",
                f"shape={_shape(tok)}",
                f"pre3={low[:3]}",
                f"suf3={low[-3:]}",
                f"title={tok.istitle()}",
                f"upper={tok.isupper()}",
                f"first={i == 0}",
                f"mark={tok[:1] if tok[:1] in '@#' else 'url' if low.startswith('http') else ''}",
                f"w-1={lower[i - 1] if i > 0 else '<s>'}",
                f"w+1={lower[i + 1] if i + 1 < len(tokens) else '</s>'}",
                f"w-1|w={lower[i - 1] if i > 0 else '<s>'}|{low}",
            ]
        )
    return feats


class TokenTagger(BaseEstimator):
    """Per-token logistic regression over hashed features; fit/predict on lists of sentences.

    ``predict`` returns one tag array per sentence, ``predict_proba`` one (n_tokens, n_classes)
    array per sentence (columns in ``classes_`` order).
    """

    def __init__(self, C: float = 10.0, n_features: int = 2**18, random_state: Any = None) -> None:
        self.C = C
        self.n_features = n_features
        self.random_state = random_state

    def _matrix(self, sentences: Sequence[Sequence[str]]) -> tuple[Any, np.ndarray]:
        feats = [f for s in sentences for f in token_features(list(s))]
        lengths = np.array([len(s) for s in sentences], dtype=np.int64)
        hasher = FeatureHasher(self.n_features, input_type="string", alternate_sign=False)
        return hasher.transform(feats), lengths

    def fit(self, X: Sequence[Sequence[str]], y: Sequence[Sequence[str]]) -> TokenTagger:
        matrix, _ = self._matrix(X)
        tags = np.array([t for tags in y for t in tags], dtype=object).astype(str)
        self.classes_ = np.unique(tags)
        self.model_ = None
        # only the hashed columns seen in training carry weight: fitting on those alone keeps the
        # coefficient matrix small (tens of thousands of columns, not 2**18), so lbfgs is fast
        self.columns_ = np.unique(matrix.indices)
        if self.classes_.shape[0] > 1:  # only "O" seen yet: predict it everywhere
            self.model_ = LogisticRegression(C=self.C, max_iter=200, random_state=self.random_state)
            self.model_.fit(matrix[:, self.columns_], tags)
            self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X: Sequence[Sequence[str]]) -> list[np.ndarray]:
        matrix, lengths = self._matrix(X)
        if self.model_ is None:
            flat = np.ones((matrix.shape[0], 1))
        else:
            flat = self.model_.predict_proba(matrix[:, self.columns_])
        return np.split(flat, np.cumsum(lengths)[:-1])

    def predict(self, X: Sequence[Sequence[str]]) -> list[np.ndarray]:
        return [self.classes_[p.argmax(axis=1)] for p in self.predict_proba(X)]


def as_items(rows: Sequence[Sequence[str]]) -> np.ndarray:
    """A 1-d object array of lists (so boolean masks and ``shape[0]`` work as for a matrix)."""
    out = np.empty(len(rows), dtype=object)
    out[:] = [list(r) for r in rows]
    return out
