"""Distributed (chunked) scoring across the hybrid's cold start: below it the query needs the
whole pool and is refused, so the round scores in process; past it, or without it, the chunked
selection equals the in-memory one."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import strategies

pytestmark = pytest.mark.unit


def _chunked_vs_in_memory(strategy):
    from sklearn.datasets import load_digits

    from strategies.chunked import select_chunked

    X, y = load_digits(return_X_y=True)
    model = LogisticRegression(max_iter=300).fit(X[:20], y[:20])
    kw = dict(X_labeled=X[:20], y_labeled=y[:20], random_state=3, exclude=np.arange(20))
    in_memory = strategy.query(model, X, 10, **kw).indices
    return in_memory, select_chunked(strategy, model, X, 10, chunk_size=300, **kw).indices


def test_distributed_select_refuses_a_cold_start_query_so_the_round_scores_in_process():
    from strategies.base import NotChunkable

    # 20 labels of 10 classes: below 10 per class, hybrid clusters the whole pool
    with pytest.raises(NotChunkable, match="cold start"):
        _chunked_vs_in_memory(strategies.get("hybrid"))


def test_distributed_select_equals_in_memory_without_the_cold_start():
    np.testing.assert_array_equal(*_chunked_vs_in_memory(strategies.get("hybrid", cold_start=0)))


def test_distributed_select_equals_in_memory_once_past_the_cold_start():
    # 20 labels: past a cold start of 2 per class
    np.testing.assert_array_equal(*_chunked_vs_in_memory(strategies.get("hybrid", cold_start=2)))
