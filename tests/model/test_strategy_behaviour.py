"""Behaviour of strategies on constructed pools: what a wrong implementation would get wrong."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

import strategies

pytestmark = pytest.mark.model


class FixedProba:
    """A model whose probabilities are a fixed function of the first feature (no training):
    p(class 1) = sigmoid(scale * x0), so rows near x0 = 0 are the most uncertain."""

    classes_ = np.array([0, 1])

    def __init__(self, scale: float = 4.0) -> None:
        self.scale = scale

    def predict_proba(self, X):
        p1 = 1.0 / (1.0 + np.exp(-self.scale * np.asarray(X)[:, 0]))
        return np.column_stack([1 - p1, p1])


def test_density_weighted_avoids_the_outlier_that_margin_picks():
    rng = np.random.default_rng(0)
    # A dense blob straddling the boundary x0 = 0 ... and one outlier exactly on the boundary.
    blob = rng.normal([0.3, 0.0], 0.3, size=(300, 2))
    outlier = np.array([[0.0, 25.0]])
    X = np.vstack([blob, outlier])
    model = FixedProba()
    margin_pick = strategies.get("margin").select(model, X, 1)
    assert margin_pick[0] == 300  # the outlier is the single most uncertain row
    dense_picks = strategies.get("density_weighted", n_reference=20).select(
        model, X, 5, random_state=0
    )
    assert 300 not in dense_picks


def test_hybrid_covers_several_clusters_where_margin_takes_one():
    rng = np.random.default_rng(1)
    # Five tight clusters of near-duplicates along the boundary; cluster 0 is the most uncertain.
    centres = np.array([[0.0, 0.0], [0.15, 5.0], [-0.15, -5.0], [0.25, 10.0], [-0.25, -10.0]])
    X = np.vstack([c + rng.normal(0, 0.01, size=(40, 2)) for c in centres])
    cluster_of = np.repeat(np.arange(5), 40)
    model = FixedProba()
    margin_clusters = set(cluster_of[strategies.get("margin").select(model, X, 5)])
    hybrid_clusters = set(
        cluster_of[strategies.get("hybrid", prefilter=40).select(model, X, 5, random_state=0)]
    )
    assert margin_clusters == {0}
    assert len(hybrid_clusters) >= 4


def test_hybrid_kmeanspp_variant_also_spreads_the_batch():
    rng = np.random.default_rng(2)
    centres = np.array([[0.0, 0.0], [0.15, 5.0], [-0.15, -5.0], [0.25, 10.0], [-0.25, -10.0]])
    X = np.vstack([c + rng.normal(0, 0.01, size=(40, 2)) for c in centres])
    cluster_of = np.repeat(np.arange(5), 40)
    picks = strategies.get("hybrid", prefilter=40, diversity="kmeans++").select(
        FixedProba(), X, 5, random_state=0
    )
    assert len(set(cluster_of[picks])) >= 3


def test_coreset_first_picks_the_point_farthest_from_the_labeled_set():
    X_pool = np.array([[0.0, 0.0], [1.0, 0.0], [10.0, 10.0], [0.5, 0.5]])
    X_labeled = np.array([[0.0, 0.1]])
    picks = strategies.get("coreset").select(None, X_pool, 2, X_labeled=X_labeled, y_labeled=[0])
    assert picks[0] == 2
    assert picks[1] == 1  # then the farthest from {labeled, (10, 10)}


def test_random_fraction_marks_random_rows_and_keeps_batch_size():
    X = np.linspace(-3, 3, 500)[:, None]
    s = strategies.get("margin", random_fraction=0.25)
    sel = s.query(FixedProba(), X, 20, random_state=0)
    assert len(sel) == 20 and np.unique(sel.indices).shape[0] == 20
    assert (sel.sources == "random").sum() == 5
    assert (sel.sources == "margin").sum() == 15
    # the strategy part is the 15 most uncertain rows (closest to x0 = 0)
    strategy_rows = sel.indices[sel.sources == "margin"]
    np.testing.assert_array_equal(
        np.sort(strategy_rows), np.sort(strategies.get("margin").select(FixedProba(), X, 15))
    )


def test_random_fraction_draws_are_spread_over_the_pool():
    X = np.linspace(-3, 3, 1000)[:, None]
    s = strategies.get("margin", random_fraction=0.5)
    random_rows = np.concatenate(
        [s.query(FixedProba(), X, 40, random_state=seed).indices[20:] for seed in range(20)]
    )
    # uniform over the pool: about half the random picks come from each half
    assert 0.4 < (random_rows < 500).mean() < 0.6


def test_rare_class_quota_adds_rows_predicted_rare():
    rng = np.random.default_rng(0)
    # Two overlapping common classes (all the uncertainty is between them), one separate rare class.
    X = np.vstack(
        [
            rng.normal([0, 0], 1, size=(500, 2)),
            rng.normal([1.5, 0], 1, size=(500, 2)),
            rng.normal([8, 8], 0.5, size=(30, 2)),
        ]
    )
    y = np.r_[np.zeros(500, int), np.ones(500, int), np.full(30, 2)]
    model = LogisticRegression().fit(X, y)
    predicted_rare = model.predict(X) == 2
    plain = strategies.get("margin").select(model, X, 10)
    guarded = strategies.get("margin", rare_class_quota=0.3).query(model, X, 10)
    assert predicted_rare[plain].sum() == 0
    assert predicted_rare[guarded.indices].sum() == 3
    assert (guarded.sources == "rare_class").sum() == 3
    assert len(guarded) == 10 and np.unique(guarded.indices).shape[0] == 10
    # the quota replaces the tail: the head is still the base strategy's top 7
    np.testing.assert_array_equal(guarded.indices[:7], plain[:7])


def test_outlier_filter_excludes_isolated_rows():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal([0.5, 0], 0.3, size=(400, 2)), [[0.0, 40.0], [0.0, -40.0]]])
    plain = strategies.get("margin").select(FixedProba(), X, 2)
    assert set(plain) == {400, 401}
    filtered = strategies.get("margin", outlier_contamination=0.02).select(
        FixedProba(), X, 10, random_state=0
    )
    assert not {400, 401} & set(filtered)


def test_class_costs_prefer_the_cheaper_class_at_equal_uncertainty():
    # rows 0 and 1 are equally uncertain, but row 0 leans to class 0 and row 1 to class 1
    X = np.array([[-0.1, 0.0], [0.1, 0.0], [3.0, 0.0]])
    costs = {"1": 10.0}
    picks = strategies.get("margin", class_costs=costs).select(FixedProba(), X, 1)
    assert picks[0] == 0
    picks = strategies.get("margin", class_costs={"0": 10.0}).select(FixedProba(), X, 1)
    assert picks[0] == 1


def test_class_costs_for_unknown_class_is_a_clear_error():
    with pytest.raises(ValueError, match="does not know"):
        strategies.get("margin", class_costs={"cat": 2.0}).select(FixedProba(), np.zeros((3, 1)), 1)


def test_privacy_noise_large_epsilon_matches_base_small_epsilon_is_near_random():
    X = np.linspace(-3, 3, 400)[:, None]
    base = strategies.get("margin").select(FixedProba(), X, 10)
    sharp = strategies.get("margin", privacy_epsilon=1e6).select(
        FixedProba(), X, 10, random_state=0
    )
    np.testing.assert_array_equal(np.sort(base), np.sort(sharp))
    central = np.abs(X[:, 0]) < 0.5  # 1/6 of the pool holds the uncertain rows
    picks = np.concatenate(
        [
            strategies.get("margin", privacy_epsilon=1e-3).select(
                FixedProba(), X, 10, random_state=s
            )
            for s in range(30)
        ]
    )
    assert central[picks].mean() < 0.35  # noise dominates: close to 1/6, far from 1.0


def test_privacy_noise_on_strategy_without_scores_is_rejected():
    with pytest.raises(ValueError, match="no per-row score"):
        strategies.get("coreset", privacy_epsilon=1.0)


def test_variance_with_gp_picks_points_far_from_training_data():
    X_train = np.linspace(0, 1, 10)[:, None]
    gp = GaussianProcessRegressor(kernel=RBF(0.3), optimizer=None).fit(
        X_train, np.sin(6 * X_train[:, 0])
    )
    X_pool = np.array([[0.5], [0.55], [3.0], [0.1]])
    assert strategies.get("variance").select(gp, X_pool, 1)[0] == 2


def test_expected_error_reduction_prefers_rows_that_change_the_model():
    X, y = load_digits(n_class=3, return_X_y=True)
    X = StandardScaler().fit_transform(X)
    rng = np.random.default_rng(0)
    labeled = np.concatenate(
        [rng.choice(np.flatnonzero(y == c), 3, replace=False) for c in range(3)]
    )
    model = LogisticRegression(max_iter=500).fit(X[labeled], y[labeled])
    sel = strategies.get("expected_error_reduction", n_candidates=10, n_eval=100).query(
        model, X, 3, X_labeled=X[labeled], y_labeled=y[labeled], random_state=0, exclude=labeled
    )
    assert len(sel) == 3
    assert (np.diff(sel.scores) <= 0).all()  # most error reduction first
    assert not np.isin(sel.indices, labeled).any()


def test_strategies_beat_random_on_digits_learning_curve():
    """A small end-to-end check: margin reaches higher accuracy than random at the same budget."""
    from sklearn.model_selection import train_test_split

    from tasks.loop.simulate import initial_labeled_set, simulate

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    X_pool, X_test, y_pool, y_test = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=0
    )
    model = LogisticRegression(max_iter=300)
    finals = {}
    for name in ("random", "margin"):
        scores = []
        for seed in range(3):
            init = initial_labeled_set(y_pool, 20, np.random.default_rng(seed))
            curve = simulate(
                strategies.get(name),
                model,
                X_pool,
                y_pool,
                X_test,
                y_test,
                initial=init,
                batch_size=20,
                budget=160,
                seed=seed,
            )
            scores.append(np.mean(curve.scores[-3:]))
        finals[name] = np.mean(scores)
    assert finals["margin"] > finals["random"] + 0.01
