"""Regression strategies: committee variance (linear members or a forest), its density-damped
form, and the hybrid's variance prefilter on a regressor."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Ridge

import strategies
from strategies.diversity import Hybrid
from strategies.regression import Variance
from strategies.variance_reduction import VarianceReduction

pytestmark = pytest.mark.unit


class _Linear:
    """A fixed member: predicts ``w * x[:, 0]``."""

    def __init__(self, w):
        self.w = w

    def predict(self, X):
        return self.w * np.asarray(X)[:, 0]


def test_density_damps_the_high_leverage_row_variance_picks():
    """Members disagree most far out (std = |x0| / 2): variance takes the outlier, the density-
    weighted variance an in-mass row; with beta = 0 both score alike."""
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, size=(200, 2)), [[40.0, 0.0]]])
    members = [_Linear(0.0), _Linear(1.0)]
    kw = dict(random_state=0)
    assert strategies.get("variance", members=members).select(None, X, 1, **kw)[0] == 200
    dense = strategies.get("variance_density", members=members, n_reference=20)
    assert dense.select(None, X, 1, **kw)[0] != 200
    flat = strategies.get("variance_density", members=members, beta=0.0, n_reference=20)
    np.testing.assert_allclose(flat.score(None, X, **kw), np.abs(X[:, 0]) / 2, rtol=1e-12)


def test_forest_committee_fits_trees_on_the_labeled_rows_not_the_model():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(120, 3))
    y = np.where(X[:, 0] > 0, 5.0, 0.0) + rng.normal(0, 0.01, 120)
    s = strategies.get("variance", committee="forest", n_trees=20)
    scores = s.score(None, X, X_labeled=X[:60], y_labeled=y[:60], random_state=0)
    assert scores.shape == (120,) and (scores >= 0).all()
    # trees disagree at the step (x0 near 0), not far out where a linear fit's spread is largest
    near = np.abs(X[:, 0]) < 0.2
    assert scores[near].mean() > scores[~near].mean()
    with pytest.raises(ValueError, match="committee"):
        strategies.get("variance", committee="knn").score(
            Ridge(), X, X_labeled=X[:60], y_labeled=y[:60]
        )
    with pytest.raises(ValueError, match="X_labeled"):
        s.score(None, X)


def test_hybrid_on_a_regressor_is_variance_reduction_instead_of_failing_on_predict_proba():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = X @ np.arange(4.0) + rng.normal(size=300)
    model = Ridge().fit(X[:50], y[:50])
    kw = dict(X_labeled=X[:50], y_labeled=y[:50], exclude=np.arange(50), random_state=1)
    default = strategies.get("hybrid", prefilter=5).query(model, X, 8, **kw)
    explicit = VarianceReduction(prefilter=5).query(model, X, 8, **kw)
    np.testing.assert_array_equal(default.indices, explicit.indices)
    np.testing.assert_allclose(default.scores, explicit.scores)
    assert set(default.sources) == {"hybrid"}
    assert not set(default.indices) & set(range(50))  # neither the picks nor the sample
    # a prefilter named by the user keeps its k-center step
    variance = Hybrid(informativeness=Variance()).query(model, X, 8, **kw).indices
    assert not set(variance) & set(range(50)) and len(set(variance)) == 8
