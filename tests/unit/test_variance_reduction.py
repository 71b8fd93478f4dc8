"""Expected variance reduction for regression: hand-computed gains, the greedy batch's
conditioning (duplicates lose their value), outliers that explain nothing, the committee."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import Ridge

import strategies
from strategies.base import QueryContext
from strategies.variance_reduction import (
    VarianceReduction,
    greedy_reduction,
    reduction_scores,
    task_estimator,
)

pytestmark = pytest.mark.unit


def test_gain_is_the_summed_squared_covariance_over_variance_plus_noise_hand_computed():
    # 3 members (dof 2): row a = (1, -1, 0): var 1; row b = (0, 1, -1): var 1
    rows = np.array([[1.0, 0.0], [-1.0, 1.0], [0.0, -1.0]])
    reference = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 0.0]])  # r1 = a, r2 has no spread
    # a: cov(a, r1) = 2 / 2 = 1 -> 1 / (1 + 1); b: cov(b, r1) = -1 / 2 -> 0.25 / (1 + 1)
    np.testing.assert_allclose(reduction_scores(rows, reference, 1.0), [0.5, 0.125])
    # noiseless: 1 / 1 and 0.25 / 1; a row with no spread and no noise gains 0, not nan
    still = np.zeros((3, 1))
    np.testing.assert_allclose(reduction_scores(rows, reference, 0.0), [1.0, 0.25])
    np.testing.assert_array_equal(reduction_scores(still, reference, 0.0), [0.0])


def test_a_duplicate_of_a_pick_loses_its_value_and_the_next_pick_is_distinct():
    a = np.array([1.0, -1.0, 0.0, 0.0])
    c = np.array([0.0, 0.0, 1.0, -1.0])
    candidates = np.stack([a, a, c], axis=1)  # a twice, then c (uncorrelated with a)
    reference = np.stack([a, a, a, c, c], axis=1)  # a's direction holds 3 rows, c's 2
    picks, gains = greedy_reduction(candidates, reference, 0.0, 2)
    # first: a (3 x (2/3)^2 / (2/3) = 2 > c's 4/3); then a's copy gains 0, c keeps its 4/3
    np.testing.assert_array_equal(picks, [0, 2])
    np.testing.assert_allclose(gains, [2.0, 4.0 / 3.0])
    # the duplicate comes last, with nothing left to explain
    picks, gains = greedy_reduction(candidates, reference, 0.0, 3)
    np.testing.assert_array_equal(picks, [0, 2, 1])
    assert gains[2] == pytest.approx(0.0, abs=1e-12)


def test_noise_keeps_some_value_in_a_duplicate():
    a = np.array([1.0, -1.0, 0.0, 0.0])
    candidates = np.stack([a, a], axis=1)
    reference = np.stack([a, a], axis=1)
    _, gains = greedy_reduction(candidates, reference, 1.0, 2)
    # var 2/3, s2 1: first 2 (2/3)^2 / (5/3) = 0.5333; after it the copy's variance is
    # 2/3 - (2/3)^2 / (5/3) = 0.4 and its covariances likewise: 2 x 0.16 / 1.4
    np.testing.assert_allclose(gains, [2 * (4 / 9) / (5 / 3), 2 * 0.16 / 1.4])


def test_an_outlier_with_the_largest_variance_but_no_shared_variance_is_not_first():
    outlier = np.array([3.0, -3.0, 0.0, 0.0])  # var 6: plain variance sampling takes it first
    typical = np.array([0.0, 0.0, 1.0, -1.0])  # var 2/3, shared with the pool's mass
    candidates = np.stack([outlier, typical], axis=1)
    reference = np.stack([typical] * 30 + [outlier], axis=1)
    # outlier: 6^2 / (6 + 1) = 5.14; typical: 30 x (2/3)^2 / (2/3 + 1) = 8.0
    picks, gains = greedy_reduction(candidates, reference, 1.0, 1)
    np.testing.assert_array_equal(picks, [1])
    np.testing.assert_allclose(gains, [8.0])
    assert strategies.predictive_std(candidates).argmax() == 0


def _linear(n=600, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    return X, X @ np.array([1.0, -2.0, 0.5, 0.0]) + rng.normal(scale=0.5, size=n)


def test_query_returns_unique_pool_rows_and_is_reproducible():
    X, y = _linear()
    labeled = np.arange(30)
    model = Ridge().fit(X[labeled], y[labeled])
    kw = dict(X_labeled=X[labeled], y_labeled=y[labeled], random_state=3)
    first = VarianceReduction().query(model, X[30:], 12, **kw)
    again = VarianceReduction().query(model, X[30:], 12, **kw)
    assert len(set(first.indices.tolist())) == 12 and first.indices.max() < X.shape[0] - 30
    np.testing.assert_array_equal(first.indices, again.indices)
    assert np.all(np.diff(first.scores) <= 1e-12)  # each pick gains no more than the one before


def _groups(seed):
    """Eight tight groups of 60 near-duplicates; 20 labels drawn from the first four."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(8), 60)
    X = rng.normal(scale=3.0, size=(8, 3))[groups] + rng.normal(scale=0.05, size=(480, 3))
    y = np.sin(X).sum(axis=1) + rng.normal(scale=0.1, size=480)
    labeled = rng.choice(np.flatnonzero(groups < 4), 20, replace=False)
    return X, y, groups, labeled, np.setdiff1d(np.arange(480), labeled)


@pytest.mark.parametrize("seed", range(4))
def test_near_duplicates_of_a_pick_do_not_fill_the_batch(seed):
    X, y, groups, labeled, pool = _groups(seed)
    model = RandomForestRegressor(30, random_state=0).fit(X[labeled], y[labeled])
    kw = dict(X_labeled=X[labeled], y_labeled=y[labeled], random_state=0)
    picks = VarianceReduction().select(model, X[pool], 5, **kw)
    # the best first gains all lie in one unlabeled group: the top-k takes 5 of it
    top = VarianceReduction().scorer().select(model, X[pool], 5, **kw)
    assert len(set(groups[pool][top].tolist())) == 1
    assert len(set(groups[pool][picks].tolist())) >= 3


def test_the_committee_refits_a_searchs_chosen_estimator_not_the_search():
    class Search:
        """A fitted search: refitting it would rerun the search (here: fail)."""

        def __init__(self, best):
            self.best_ = best

        def fit(self, X, y):
            raise AssertionError("the search was refit")

        def predict(self, X):
            return self.best_.predict(X)

    X, y = _linear()
    best = Ridge().fit(X[:40], y[:40])
    assert task_estimator(Search(best)) is best
    picks = strategies.get("variance_reduction").select(
        Search(best), X[40:], 5, X_labeled=X[:40], y_labeled=y[:40], random_state=0
    )
    assert len(set(picks.tolist())) == 5


def test_the_noise_floor_is_a_share_of_the_committees_mean_variance_over_the_sample():
    X, y = _linear()
    model = Ridge().fit(X[:50], y[:50])

    def state(noise):
        ctx = QueryContext.build(model, X[50:], X_labeled=X[:50], y_labeled=y[:50], random_state=0)
        return VarianceReduction(noise=noise).scorer().prepare(ctx)

    one = state(1.0)
    assert one.D_reference.shape == (20, 500) and np.unique(one.reference).size == 500
    np.testing.assert_allclose(one.s2, np.mean(one.D_reference.var(axis=0, ddof=1)))
    assert state(0.1).s2 == pytest.approx(0.1 * one.s2)
    assert state(0.0).s2 == 0.0


def test_bad_parameters_and_too_few_labels_fail_clearly():
    X, y = _linear()
    model = Ridge().fit(X[:10], y[:10])
    with pytest.raises(ValueError, match="variance_reduction: n_members must be >= 2"):
        VarianceReduction(n_members=1).select(model, X, 3, X_labeled=X[:10], y_labeled=y[:10])
    with pytest.raises(ValueError, match="noise >= 0"):
        VarianceReduction(noise=-1).select(model, X, 3, X_labeled=X[:10], y_labeled=y[:10])
    with pytest.raises(ValueError, match="at least 2 labeled rows"):
        VarianceReduction().select(model, X, 3, X_labeled=X[:1], y_labeled=y[:1])
