"""cluster_margin: the per-cluster capped top-k (hand-computed, and a property), and
a batch that a group of near-duplicates cannot fill where hybrid and margin collapse on it."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import strategies
from strategies.cluster import WEIGHT_FLOOR, ClusterMargin
from strategies.selection import capped_order

pytestmark = pytest.mark.unit


def test_capped_order_keeps_each_groups_best_rows_then_orders_by_score():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.95])
    groups = np.array([0, 0, 0, 1, 1, 2])
    # group 0 keeps rows 0 and 1 (row 2 is its third), group 1 rows 3 and 4, group 2 row 5
    order = capped_order(scores, groups, np.arange(6), per_group=2)
    np.testing.assert_array_equal(order, [5, 0, 1, 3, 4])


def test_capped_order_breaks_ties_by_the_lower_index():
    order = capped_order(np.array([0.5, 0.5, 0.5]), np.array([0, 0, 1]), np.array([7, 3, 9]), 1)
    np.testing.assert_array_equal(order, [1, 2])  # index 3 beats 7 in group 0; then group 1


def test_capped_order_rejects_nan():
    with pytest.raises(ValueError, match="NaN"):
        capped_order(np.array([np.nan]), np.array([0]), np.array([0]), 1)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    data=st.lists(
        st.tuples(st.sampled_from([0.0, 0.5, 1.0]) | st.floats(0, 1), st.integers(0, 4)),
        max_size=120,
    ),
    per_group=st.integers(1, 6),
)
def test_capped_order_is_each_groups_top_rows_by_score(data, per_group):
    scores = np.array([s for s, _ in data], dtype=float)
    groups = np.array([g for _, g in data], dtype=np.int64)
    order = capped_order(scores, groups, np.arange(scores.shape[0]), per_group)
    expected = []
    for g in np.unique(groups):  # per group: its rows by score, ties by index, the first few
        rows = np.flatnonzero(groups == g)
        expected += rows[np.lexsort((rows, -scores[rows]))][:per_group].tolist()
    assert sorted(order.tolist()) == sorted(expected)
    assert np.all(np.diff(scores[order]) <= 0)  # ordered by score


class _SigmoidModel:
    """p(class 1) = sigmoid(x_0): most uncertain at x_0 = 0."""

    classes_ = np.array([0, 1])

    def predict_proba(self, X):
        p = 1.0 / (1.0 + np.exp(-np.asarray(X)[:, 0]))
        return np.column_stack([1 - p, p])


def _duplicate_groups(rng, n_per_group=200):
    """Five groups of near-duplicates along x_0 = 0, 0.5, 1, 1.5, 2 (group 0 most uncertain)."""
    centres = np.zeros((5, 6))
    centres[:, 0] = [0.0, 0.5, 1.0, 1.5, 2.0]
    centres[:, 1:] = rng.normal(0, 1, size=(5, 5))
    X = np.repeat(centres, n_per_group, axis=0) + rng.normal(0, 1e-3, size=(5 * n_per_group, 6))
    return X, np.repeat(np.arange(5), n_per_group)


@pytest.mark.parametrize("seed", range(5))
def test_near_duplicates_never_fill_the_batch(seed):
    rng = np.random.default_rng(seed)
    X, group = _duplicate_groups(rng)
    labeled = rng.normal(0, 1, size=(30, 6))
    query = dict(X_labeled=labeled, y_labeled=np.arange(30) % 2, random_state=seed)
    picks = ClusterMargin(cold_start=0).select(_SigmoidModel(), X, 5, **query)
    assert sorted(group[picks]) == [0, 1, 2, 3, 4]  # one per group of near-duplicates
    # the failure it fixes: margin and hybrid spend the whole batch on the uncertain group
    for name in ("margin", "hybrid"):
        other = strategies.get(name, **({"cold_start": 0} if name == "hybrid" else {}))
        assert set(group[other.select(_SigmoidModel(), X, 5, **query)]) == {0}


def test_on_a_pool_larger_than_max_candidates_the_cap_applies_among_the_best_rows():
    # 250 rows kept by score: group 0 (200 rows) and the best 50 of group 1; the cap still
    # spreads the batch over both instead of filling it with group 0
    rng = np.random.default_rng(0)
    X, group = _duplicate_groups(rng)
    picks = ClusterMargin(cold_start=0, max_candidates=250).select(
        _SigmoidModel(), X, 5, random_state=0
    )
    assert set(group[picks]) == {0, 1}


def test_without_duplicates_the_candidates_are_the_most_informative_rows():
    # one row per cluster centre: the cap never binds and the batch is among margin's top rows
    rng = np.random.default_rng(0)
    X = rng.normal(0, 1, size=(400, 4))
    picks = ClusterMargin(cold_start=0, n_clusters=400, prefilter=2).select(
        _SigmoidModel(), X, 10, X_labeled=X[:0], y_labeled=np.array([]), random_state=0
    )
    top = strategies.get("margin").select(_SigmoidModel(), X, 20)
    assert set(picks) <= set(top)


def test_weights_keep_a_floor_so_the_least_informative_candidate_still_counts():
    weights = ClusterMargin().weights(np.array([0.2, 0.6, 1.0]))
    np.testing.assert_allclose(weights, [WEIGHT_FLOOR, (1 + WEIGHT_FLOOR) / 2, 1.0])
    np.testing.assert_array_equal(ClusterMargin().weights(np.array([0.3, 0.3])), [1.0, 1.0])


def test_excluded_rows_are_never_picked_and_an_empty_pool_gives_an_empty_batch():
    rng = np.random.default_rng(1)
    X, _ = _duplicate_groups(rng, 20)
    strategy = ClusterMargin(cold_start=0)
    picks = strategy.select(_SigmoidModel(), X, 5, exclude=np.arange(50), random_state=1)
    assert picks.min() >= 50
    assert strategy.select(_SigmoidModel(), X, 5, exclude=np.arange(100), random_state=1).size == 0


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match="n_clusters and per_cluster"):
        ClusterMargin(cold_start=0, per_cluster=0).select(_SigmoidModel(), np.ones((5, 2)), 1)
