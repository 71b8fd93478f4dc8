"""Cold start: representative picks below ``cold_start`` labels per class, then the hybrid."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression, Ridge

import strategies
from strategies.base import QueryContext
from strategies.diversity import (
    Hybrid,
    Representative,
    cold_start_threshold,
    representative_picks,
)

pytestmark = pytest.mark.unit


def _blobs():
    """Blob A: 5 rows around (0, 0); blob B: 7 rows around (20, 0). Row 0 and row 5 are the exact
    centres, so they are the typical rows of their clusters."""
    ring = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    a = np.vstack([[0.0, 0.0], ring])
    b = np.vstack([[20.0, 0.0], 20 * np.eye(2)[0] + ring, [[20.0, 0.5], [20.0, -0.5]]])
    return np.vstack([a, b])


@given(seed=st.integers(0, 10_000))
@settings(max_examples=25, deadline=None)
def test_representative_picks_centre_of_each_cluster_largest_first(seed):
    picks = representative_picks(_blobs(), 2, np.random.default_rng(seed))
    np.testing.assert_array_equal(picks, [5, 0])  # B (7 rows) before A (5 rows)


@given(seed=st.integers(0, 10_000))
@settings(max_examples=25, deadline=None)
def test_representative_picks_skip_the_cluster_a_labeled_row_covers(seed):
    X = _blobs()
    # a labeled row in B: B is covered, so A's centre comes first although B is larger
    picks = representative_picks(X, 1, np.random.default_rng(seed), centres=X[[6]] + 0.1)
    np.testing.assert_array_equal(picks, [0])


def test_representative_picks_fill_round_robin_when_k_exceeds_clusters():
    X = np.array([[0.0], [0.0], [1.0], [5.0]])  # 3 distinct points
    picks = representative_picks(X, 4, np.random.default_rng(0))
    assert sorted(picks.tolist()) == [0, 1, 2, 3]


def test_context_counts_labeled_rows_from_x_or_y_or_none():
    pool = strategies.base.as_pool(np.zeros((3, 2)))
    assert QueryContext(model=None, pool=pool).n_labeled == 0
    assert QueryContext(model=None, pool=pool, X_labeled=np.zeros((7, 2))).n_labeled == 7
    assert QueryContext(model=None, pool=pool, y_labeled=np.zeros(4)).n_labeled == 4


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(c, 0.5, size=(80, 4)) for c in (0.0, 3.0, 6.0)])
    y = np.repeat([0, 1, 2], 80)
    return X, y


def _query(strategy, X, y, n_labeled, seed, batch=6):
    labeled = np.r_[
        0 : n_labeled // 3, 80 : 80 + n_labeled // 3, 160 : 160 + n_labeled - 2 * (n_labeled // 3)
    ]
    model = LogisticRegression(max_iter=300).fit(X[labeled], y[labeled])
    return strategy.select(
        model,
        X,
        batch,
        X_labeled=X[labeled],
        y_labeled=y[labeled],
        random_state=seed,
        exclude=labeled,
    )


def test_cold_start_threshold_is_per_class_times_known_classes():
    pool = strategies.base.as_pool(np.zeros((3, 2)))
    model = LogisticRegression().fit(np.arange(8.0)[:, None], [0, 0, 1, 1, 2, 2, 3, 3])
    assert cold_start_threshold(QueryContext(model=model, pool=pool), 10) == 40
    by_labels = QueryContext(model=None, pool=pool, y_labeled=np.array(["a", "b", "a"]))
    assert cold_start_threshold(by_labels, 7) == 14
    assert cold_start_threshold(QueryContext(model=None, pool=pool), 5) == 5
    for y in (np.array([0.5, 1.5, 2.5]), np.array([3, 7, 9, 11])):  # float or integer target
        regression = QueryContext(model=Ridge(), pool=pool, y_labeled=y)
        assert cold_start_threshold(regression, 10) == 10
    float_target = QueryContext(model=None, pool=pool, y_labeled=np.array([0.5, 1.5, 2.5]))
    assert cold_start_threshold(float_target, 10) == 10


@given(n_labeled=st.integers(3, 40), per_class=st.integers(0, 15), seed=st.integers(0, 100))
@example(n_labeled=30, per_class=10, seed=0)  # at the threshold (3 classes x 10): hybrid
@example(n_labeled=29, per_class=10, seed=0)  # one below: representative
@settings(max_examples=30, deadline=None)
def test_hybrid_picks_representative_rows_below_threshold_and_hybrid_rows_at_or_above(
    data, n_labeled, per_class, seed
):
    X, y = data
    picks = _query(Hybrid(cold_start=per_class), X, y, n_labeled, seed)
    if n_labeled < 3 * per_class:  # the fixture's labeled sets hold all 3 classes
        expected = _query(Representative(), X, y, n_labeled, seed)
    else:
        expected = _query(Hybrid(cold_start=0), X, y, n_labeled, seed)
    np.testing.assert_array_equal(picks, expected)


def test_cold_start_picks_cover_clusters_the_labeled_set_misses(data):
    """Labels only from cluster 0: the first cold-start picks come from clusters 1 and 2."""
    X, y = data
    model = LogisticRegression().fit(X[[0, 1, 80]], y[[0, 1, 80]])
    picks = Hybrid(cold_start=100).select(
        model, X, 2, X_labeled=X[:5], y_labeled=y[:5], random_state=0, exclude=np.r_[0:5]
    )
    assert set(y[picks]) == {1, 2}


def test_bad_cold_start_parameters_are_clear_errors(data):
    X, y = data
    with pytest.raises(ValueError, match="cold_start"):
        _query(Hybrid(cold_start=-1), X, y, 9, 0)
    with pytest.raises(ValueError, match="cold_start"):
        _query(Hybrid(cold_start_sample=0), X, y, 9, 0)
    with pytest.raises(ValueError, match="sample_size"):
        _query(Representative(sample_size=0), X, y, 9, 0)


def test_cold_start_survives_score_wrapping():
    hybrid = strategies.get("hybrid", cold_start=77, class_costs={0: 2.0})
    assert hybrid.cold_start == 77
