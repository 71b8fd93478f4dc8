"""Top-k selection: exact, deterministic ties, and chunked merging equal to in-memory."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from strategies.selection import RunningTopK, top_k

pytestmark = pytest.mark.unit


def test_top_k_orders_highest_first_and_breaks_ties_by_index():
    scores = np.array([0.1, 0.9, 0.5, 0.9, 0.5, 0.2])
    np.testing.assert_array_equal(top_k(scores, 4), [1, 3, 2, 4])


def test_top_k_returns_everything_when_k_exceeds_n():
    np.testing.assert_array_equal(top_k(np.array([0.2, 0.3]), 5), [1, 0])


def test_top_k_rejects_nan_scores():
    with pytest.raises(ValueError, match="NaN"):
        top_k(np.array([0.1, np.nan]), 1)


def test_top_k_puts_minus_inf_last():
    np.testing.assert_array_equal(top_k(np.array([-np.inf, 0.0, -1.0]), 3), [1, 2, 0])


scores_arrays = arrays(
    np.float64,
    st.integers(0, 300),
    elements=st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0]) | st.floats(0, 1),
)


@settings(max_examples=80, deadline=None)
@given(scores_arrays, st.integers(1, 40), st.integers(1, 64))
def test_running_top_k_over_chunks_equals_top_k(scores, k, chunk):
    acc = RunningTopK(k)
    for start in range(0, scores.shape[0], chunk):
        acc.push(scores[start : start + chunk], start)
    np.testing.assert_array_equal(acc.indices, top_k(scores, k))


@settings(max_examples=40, deadline=None)
@given(scores_arrays, st.integers(1, 20), st.integers(1, 50))
def test_running_top_k_respects_eligible_rows_and_keeps_their_features(scores, k, chunk):
    n = scores.shape[0]
    X = np.arange(n, dtype=float)[:, None] * np.ones((1, 3))
    eligible_global = np.arange(n) % 3 != 0
    acc = RunningTopK(k, keep_rows=True)
    for start in range(0, n, chunk):
        part = slice(start, start + chunk)
        acc.push(scores[part], start, X[part], np.flatnonzero(eligible_global[part]))
    masked = np.where(eligible_global, scores, -np.inf)
    expected = [i for i in top_k(masked, k) if eligible_global[i]]
    np.testing.assert_array_equal(acc.indices, expected)
    if expected:
        np.testing.assert_array_equal(acc.rows[:, 0], acc.indices)
