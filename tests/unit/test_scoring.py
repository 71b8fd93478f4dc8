"""Chunked scoring: per-chunk top-k merged exactly, exclusions respected, lazy pool sources, and the
serial chunked path equal to the in-memory ``strategy.query``."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.linear_model import LogisticRegression

import strategies
from strategies.base import NotChunkable, QueryContext, ScoreStrategy
from strategies.chunked import (
    ArraySource,
    ChunkTopK,
    merge_topk,
    plan_chunks,
    score_chunk,
    select_chunked,
)
from strategies.selection import top_k
from tasks.data.sources import NpySource, ParquetSource, as_source

pytestmark = pytest.mark.unit


class ColumnScore(ScoreStrategy):
    """Scores are the chunk's first column: lets a test choose every score, ties included."""

    name = "column"

    def chunk_scores(self, ctx: QueryContext, state: Any, X_chunk: Any) -> np.ndarray:
        return np.asarray(X_chunk)[:, 0]


def _chunked_topk(scores, k, cuts, exclude=None):
    bounds = [0, *sorted(set(cuts)), scores.shape[0]]
    exclude = np.unique(np.asarray(exclude if exclude is not None else [], dtype=np.int64))
    parts = []
    for start, stop in itertools.pairwise(bounds):
        if stop <= start:
            continue
        chunk = scores[start:stop, None]
        inside = exclude[(exclude >= start) & (exclude < stop)]
        parts.append(score_chunk(ColumnScore(), None, None, chunk, start, k, inside))
    return merge_topk(parts, k)


score_vectors = arrays(
    np.float64,
    st.integers(1, 400),
    elements=st.sampled_from([0.0, 0.25, 0.5, 1.0]) | st.floats(-1e6, 1e6),
)


@settings(max_examples=200, deadline=None)
@given(scores=score_vectors, k=st.integers(1, 60), data=st.data())
def test_merged_chunk_topk_equals_top_k_over_the_whole_pool(scores, k, data):
    cuts = data.draw(st.lists(st.integers(0, scores.shape[0]), max_size=8))
    merged = _chunked_topk(scores, k, cuts)
    expected = top_k(scores, k)
    np.testing.assert_array_equal(merged.indices, expected)
    np.testing.assert_array_equal(merged.scores, scores[expected])


@settings(max_examples=200, deadline=None)
@given(scores=score_vectors, k=st.integers(1, 60), data=st.data())
def test_excluded_rows_are_never_selected_and_the_rest_is_exact(scores, k, data):
    n = scores.shape[0]
    cuts = data.draw(st.lists(st.integers(0, n), max_size=8))
    exclude = data.draw(st.lists(st.integers(0, n - 1), max_size=n))
    merged = _chunked_topk(scores, k, cuts, exclude)
    eligible = np.setdiff1d(np.arange(n), exclude)
    expected = eligible[top_k(scores[eligible], k)]
    np.testing.assert_array_equal(merged.indices, expected)
    assert not np.isin(merged.indices, exclude).any()


def test_merge_topk_breaks_ties_by_lower_global_index_across_chunks():
    parts = [
        ChunkTopK(np.array([7, 9]), np.array([1.0, 0.5])),
        ChunkTopK(np.array([2, 3]), np.array([1.0, 0.5])),
    ]
    np.testing.assert_array_equal(merge_topk(parts, 3).indices, [2, 7, 3])


def test_score_chunk_unpacks_as_indices_and_global_scores():
    chunk = np.array([[0.1], [0.9], [0.5]])
    indices, scores = score_chunk(ColumnScore(), None, None, chunk, 100, 2)
    np.testing.assert_array_equal(indices, [101, 102])
    np.testing.assert_array_equal(scores, [0.9, 0.5])


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6000, 6))
    y = (X[:, 0] + 0.5 * rng.normal(size=6000) > 0).astype(int) + (X[:, 1] > 1)
    model = LogisticRegression(max_iter=500).fit(X[:200], y[:200])
    return X, y, model


CASES = [
    ("margin", {}),
    ("entropy", {}),
    ("qbc_vote_entropy", {"n_members": 3}),
    ("bald", {"n_members": 3}),
    ("density_weighted", {}),
    ("random", {}),
    ("hybrid", {}),
    ("hybrid", {"diversity": "kmeans++"}),
]


@pytest.mark.parametrize(("name", "params"), CASES)
def test_chunked_selection_equals_in_memory_query(problem, tmp_path, name, params):
    X, y, model = problem
    strategy = strategies.get(name, **params)
    kwargs = dict(X_labeled=X[:200], y_labeled=y[:200], random_state=7, exclude=np.arange(200))
    expected = strategy.query(model, X, 25, **kwargs)
    np.save(tmp_path / "pool.npy", X)
    for pool in (X, np.load(tmp_path / "pool.npy", mmap_mode="r"), tmp_path / "pool.npy"):
        got = select_chunked(strategy, model, as_source(pool), 25, chunk_size=1_700, **kwargs)
        np.testing.assert_array_equal(got.indices, expected.indices)
        np.testing.assert_array_equal(got.scores, expected.scores)
        np.testing.assert_array_equal(got.sources, expected.sources)


@pytest.mark.parametrize(
    "strategy",
    [
        strategies.get("coreset"),
        strategies.get("expected_error_reduction"),
        strategies.get("margin", random_fraction=0.2),
        strategies.get("margin", privacy_epsilon=1.0),
    ],
)
def test_strategies_that_need_the_whole_pool_raise_a_clear_error(problem, strategy):
    X, _, model = problem
    with pytest.raises(NotChunkable, match="executor: local"):
        select_chunked(strategy, model, X, 5)


def test_npy_source_reads_exactly_the_rows_of_the_memmap(tmp_path):
    X = np.arange(5 * 3 * 4, dtype=np.float32).reshape(5, 3, 4)
    np.save(tmp_path / "x.npy", X)
    source = as_source(np.load(tmp_path / "x.npy", mmap_mode="r"))
    assert isinstance(source, NpySource)
    np.testing.assert_array_equal(source.read(1, 4), X[1:4])
    assert [(c.start, c.stop) for c in plan_chunks(source, 2)] == [(0, 2), (2, 4), (4, 5)]


def test_parquet_chunks_are_whole_row_groups_and_select_like_in_memory(problem, tmp_path):
    import pandas as pd

    X, _, model = problem
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    frame.to_parquet(tmp_path / "pool.parquet", row_group_size=1000)
    source = as_source(tmp_path / "pool.parquet")
    assert isinstance(source, ParquetSource)
    assert [(c.start, c.stop) for c in plan_chunks(source, 2500)] == [
        (0, 3000),
        (3000, 6000),
    ]
    np.testing.assert_array_equal(source.read(1500, 2600), X[1500:2600])
    got = select_chunked(strategies.get("margin"), model, source, 10, chunk_size=1000)
    np.testing.assert_array_equal(got.indices, strategies.get("margin").select(model, X, 10))


def test_array_chunks_carry_only_their_own_rows():
    import pickle

    X = np.arange(10_000 * 4, dtype=np.float64).reshape(10_000, 4)
    source = as_source(X)
    assert isinstance(source, ArraySource)
    specs = plan_chunks(source, 1_000)
    np.testing.assert_array_equal(specs[3].load(), X[3_000:4_000])
    assert len(pickle.dumps(specs[3])) < 2 * X[:1_000].nbytes
