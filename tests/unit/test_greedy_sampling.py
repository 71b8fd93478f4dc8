"""iGS for regression: hand-computed scores and greedy batch, the input-and-output rule, chunks."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression

import strategies
from strategies.greedy import GreedySampling, greedy_scores

pytestmark = pytest.mark.unit


class _Identity:
    """f(x) = x_0."""

    def predict(self, X):
        return np.asarray(X, dtype=float)[:, 0]


def _query(pool, batch, **kw):
    X_labeled, y_labeled = np.array([[0.0], [10.0]]), np.array([0.0, 10.0])
    return GreedySampling().query(
        _Identity(), pool, batch, X_labeled=X_labeled, y_labeled=y_labeled, **kw
    )


def test_scores_are_the_smallest_input_times_output_distance_hand_computed():
    X, y = np.array([[0.0], [10.0]]), np.array([0.0, 10.0])
    scores = greedy_scores(np.array([[2.0], [5.0], [8.0]]), np.array([2.0, 5.0, 8.0]), X, y)
    np.testing.assert_allclose(scores, [4.0, 25.0, 4.0])  # min(2*2, 8*8), min(5*5, 5*5), ...


def test_the_batch_is_greedy_with_each_pick_labeled_by_its_prediction():
    # standardised by the labeled rows (mean 5, std 5): x -> (x - 5) / 5, so distances shrink 5x
    selection = _query(np.array([[2.0], [5.0], [8.0]]), 2)
    np.testing.assert_array_equal(selection.indices, [1, 0])
    np.testing.assert_allclose(selection.scores, [25.0 / 5, 4.0 / 5])
    # after picking 5: row 2 scores min(4, 3 * 3) = 4 (unchanged), row 8 as well: 2 (lower) first


def test_a_row_far_in_input_but_predicted_as_a_labeled_rows_label_is_not_picked():
    class Lookup:  # x = 20 predicted 10 (the label of x = 10); x = 3 predicted 3
        def predict(self, X):
            return np.where(np.asarray(X)[:, 0] > 15, 10.0, np.asarray(X)[:, 0])

    pool = np.array([[20.0], [3.0]])
    selection = GreedySampling().query(
        Lookup(), pool, 1, X_labeled=np.array([[0.0], [10.0]]), y_labeled=np.array([0.0, 10.0])
    )
    # x = 20: min(20 * 10, 10 * 0) = 0; x = 3: min(3 * 3, 7 * 7) = 9 (then / 5 for the scaling)
    np.testing.assert_array_equal(selection.indices, [1])


def test_chunked_equals_whole_and_excluded_rows_are_never_picked():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3))
    y = X @ [1.0, -2.0, 0.5] + X[:, 0] ** 2
    model = LinearRegression().fit(X[:30], y[:30])
    kw = dict(X_labeled=X[:30], y_labeled=y[:30])
    whole = GreedySampling().select(model, X, 10, exclude=np.arange(30), **kw)
    chunked = GreedySampling().select(model, X, 10, exclude=np.arange(30), chunk_size=17, **kw)
    np.testing.assert_array_equal(whole, chunked)
    assert whole.min() >= 30 and len(set(whole)) == 10


def test_it_is_registered_for_regression_and_refuses_without_labels():
    strategy = strategies.get("igs")
    assert strategy.tasks == frozenset({"regression"})
    with pytest.raises(ValueError, match="labeled rows"):
        strategy.select(_Identity(), np.ones((4, 1)), 1)
