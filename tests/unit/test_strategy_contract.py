"""The contract every strategy keeps, run against every registered strategy.

Reproducible under a seed; ``batch_size`` unique valid indices; excluded (labeled) rows never
picked; fewer rows than asked only when the pool has fewer; chunked == in-memory selection.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge

import strategies

pytestmark = pytest.mark.unit

#: every guard, on a strategy with a per-row score (costs and noise wrap the score)
GUARDS = {
    "random_fraction": {"random_fraction": 0.3},
    "rare_class_quota": {"rare_class_quota": 0.3},
    "class_costs": {"class_costs": {"0": 2.0, "1": 1.0}},
    "outlier_filter": {"outlier_contamination": 0.1},
    "privacy_noise": {"privacy_epsilon": 1.0},
}
#: (id, strategies.get keywords): each registered strategy, and guarded variants of the default
VARIANTS = {name: (name, {}) for name in strategies.available()} | {
    f"{base}+{guard}": (base, keywords)
    for base in ("margin", "hybrid")
    for guard, keywords in GUARDS.items()
}


def _declared(task: str) -> list[str]:
    """The variants whose strategy declares it can query a ``task`` model."""
    return [v for v, (name, kw) in VARIANTS.items() if task in strategies.get(name, **kw).tasks]


CLASSIFICATION = _declared("classification")
REGRESSION = _declared("regression")


class TokenModel:
    """Returns per-token probabilities: an item is a sequence of token feature rows."""

    classes_ = np.array([0, 1])

    def predict_proba(self, items):
        return [
            np.column_stack([1 / (1 + np.exp(-x[:, 0])), 1 - 1 / (1 + np.exp(-x[:, 0]))])
            for x in items
        ]


@pytest.fixture(scope="module")
def clf_data():
    X, y = make_classification(
        n_samples=400, n_features=6, n_informative=4, n_classes=3, random_state=0
    )
    labeled = np.r_[0:30]
    model = LogisticRegression(max_iter=500).fit(X[labeled], y[labeled])
    return X, y, labeled, model


@pytest.fixture(scope="module")
def reg_data():
    X, y = make_regression(n_samples=300, n_features=5, noise=5.0, random_state=0)
    labeled = np.r_[0:25]
    return X, y, labeled, Ridge().fit(X[labeled], y[labeled])


def _select(variant, data, batch, seed, **kw):
    X, y, labeled, model = data
    name, keywords = VARIANTS.get(variant, (variant, {}))
    return strategies.get(name, **keywords).select(
        model,
        X,
        batch,
        X_labeled=X[labeled],
        y_labeled=y[labeled],
        random_state=seed,
        exclude=labeled,
        **kw,
    )


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_returns_batch_size_unique_valid_unlabeled_indices(name, clf_data):
    X, _, labeled, _ = clf_data
    picks = _select(name, clf_data, 12, seed=1)
    assert picks.shape == (12,)
    assert picks.dtype == np.int64
    assert np.unique(picks).shape[0] == 12
    assert ((picks >= 0) & (picks < X.shape[0])).all()
    assert not np.isin(picks, labeled).any()


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_same_seed_same_batch(name, clf_data):
    np.testing.assert_array_equal(_select(name, clf_data, 8, 7), _select(name, clf_data, 8, 7))


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_chunked_selection_equals_in_memory(name, clf_data):
    whole = _select(name, clf_data, 10, seed=3)
    chunked = _select(name, clf_data, 10, seed=3, chunk_size=37)
    np.testing.assert_array_equal(whole, chunked)


@pytest.mark.parametrize(
    "name",
    ["random", "margin", "entropy", "least_confidence", "qbc_vote_entropy", "hybrid", "coreset"],
)
def test_iterator_of_chunks_equals_array(name, clf_data):
    X, y, labeled, model = clf_data
    mask = np.zeros(X.shape[0], dtype=bool)
    mask[labeled] = True
    kwargs = dict(X_labeled=X[labeled], y_labeled=y[labeled], random_state=5, exclude=mask)
    strategy = strategies.get(name)
    whole = strategy.select(model, X, 10, **kwargs)
    chunks = (X[i : i + 50] for i in range(0, X.shape[0], 50))
    streamed = strategy.select(model, chunks, 10, **kwargs)
    np.testing.assert_array_equal(whole, streamed)


def test_memmap_pool_equals_array(clf_data, tmp_path):
    X, _y, _labeled, model = clf_data
    path = tmp_path / "pool.f64"
    mm = np.memmap(path, dtype=np.float64, mode="w+", shape=X.shape)
    mm[:] = X
    mm.flush()
    ro = np.memmap(path, dtype=np.float64, mode="r", shape=X.shape)
    strategy = strategies.get("margin")
    np.testing.assert_array_equal(
        strategy.select(model, X, 15, chunk_size=64), strategy.select(model, ro, 15, chunk_size=64)
    )


@pytest.mark.parametrize(
    "variant", [v for v in CLASSIFICATION if not v.endswith("outlier_filter")]
)  # the outlier filter exists to leave some eligible rows out
def test_small_pool_returns_every_eligible_row(variant, clf_data):
    X, y, labeled, model = clf_data
    pool = X[100:106]
    name, keywords = VARIANTS[variant]
    picks = strategies.get(name, **keywords).select(
        model, pool, 10, X_labeled=X[labeled], y_labeled=y[labeled], random_state=0, exclude=[2]
    )
    assert sorted(picks.tolist()) == [0, 1, 3, 4, 5]


@settings(max_examples=15, deadline=None)
@given(
    name=st.sampled_from(["random", "margin", "entropy", "density_weighted", "hybrid", "coreset"]),
    batch=st.integers(1, 30),
    seed=st.integers(0, 10_000),
    n_excluded=st.integers(0, 100),
)
def test_property_unique_valid_never_excluded(clf_data, name, batch, seed, n_excluded):
    X, y, labeled, model = clf_data
    excluded = np.random.default_rng(seed).choice(X.shape[0], n_excluded, replace=False)
    picks = strategies.get(name).select(
        model,
        X,
        batch,
        X_labeled=X[labeled],
        y_labeled=y[labeled],
        random_state=seed,
        exclude=excluded,
    )
    assert picks.shape[0] == min(batch, X.shape[0] - n_excluded)
    assert np.unique(picks).shape[0] == picks.shape[0]
    assert not np.isin(picks, excluded).any()


def test_the_variants_cover_every_task_and_every_guard():
    assert {"variance", "variance_density", "hybrid", "random"} <= set(REGRESSION)
    assert {f"margin+{guard}" for guard in GUARDS} <= set(CLASSIFICATION)
    assert "sequence_uncertainty" not in CLASSIFICATION + REGRESSION
    assert "margin" not in REGRESSION and "variance" not in CLASSIFICATION


@pytest.mark.parametrize("variant", REGRESSION)
def test_regression_strategies_keep_the_contract(variant, reg_data):
    X, _, labeled, _ = reg_data
    picks = _select(variant, reg_data, 9, seed=2)
    assert picks.shape == (9,) and np.unique(picks).shape[0] == 9
    assert ((picks >= 0) & (picks < X.shape[0])).all() and not np.isin(picks, labeled).any()
    np.testing.assert_array_equal(picks, _select(variant, reg_data, 9, seed=2))
    np.testing.assert_array_equal(picks, _select(variant, reg_data, 9, seed=2, chunk_size=41))


def test_variance_contract_regression(reg_data):
    X, y, labeled, model = reg_data
    s = strategies.get("variance")
    kw = dict(X_labeled=X[labeled], y_labeled=y[labeled], random_state=2, exclude=labeled)
    a, b = s.select(model, X, 9, **kw), s.select(model, X, 9, **kw)
    np.testing.assert_array_equal(a, b)
    assert np.unique(a).shape[0] == 9 and not np.isin(a, labeled).any()
    np.testing.assert_array_equal(a, s.select(model, X, 9, chunk_size=41, **kw))


def test_sequence_uncertainty_picks_item_with_most_uncertain_token():
    rng = np.random.default_rng(0)
    items = [rng.normal(5, 0.1, size=(rng.integers(1, 8), 1)) for _ in range(30)]
    items[17] = np.array([[5.0], [0.0], [5.0]])  # one token at p = 0.5
    picks = strategies.get("sequence_uncertainty", measure="margin", aggregate="max").select(
        TokenModel(), items, 3, random_state=0
    )
    assert picks[0] == 17 and picks.shape == (3,)


def test_unknown_strategy_and_parameter_are_clear_errors():
    with pytest.raises(ValueError, match=r"unknown strategy 'marginn'.*margin"):
        strategies.get("marginn")
    with pytest.raises(ValueError, match=r"has no parameter.*'beta2'"):
        strategies.get("density_weighted", beta2=1)


def test_invalid_batch_size_rejected(clf_data):
    with pytest.raises(ValueError, match="batch_size"):
        _select("margin", clf_data, 0, seed=0)


def test_forest_committee_uses_trees_without_labeled_data(clf_data):
    X, y, labeled, _ = clf_data
    forest = RandomForestClassifier(n_estimators=15, random_state=0).fit(X[labeled], y[labeled])
    picks = strategies.get("bald").select(forest, X, 5, random_state=0)
    assert picks.shape == (5,)


def test_bootstrap_committee_without_labeled_data_is_a_clear_error(clf_data):
    X, _, _, model = clf_data
    with pytest.raises(ValueError, match="X_labeled and y_labeled"):
        strategies.get("qbc_vote_entropy").select(model, X, 5)


def test_available_lists_every_family():
    expected = {
        "random",
        "least_confidence",
        "margin",
        "entropy",
        "qbc_vote_entropy",
        "qbc_kl",
        "bald",
        "density_weighted",
        "expected_error_reduction",
        "hybrid",
        "coreset",
        "variance",
        "sequence_uncertainty",
    }
    assert expected <= set(strategies.available())
    assert all(info["cost"] for info in strategies.describe().values())


@pytest.mark.parametrize("name", ["hybrid", "coreset", "density_weighted", "margin"])
def test_sparse_pool_selects_like_its_dense_copy(name):
    """TF-IDF pools stay sparse (never densified) and give the dense pool's selection."""
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    X = sp.random(600, 300, density=0.02, format="csr", random_state=0)
    y = rng.integers(0, 2, 600)
    model = LogisticRegression().fit(X[:60], y[:60])
    kwargs = dict(y_labeled=y[:60], random_state=0, exclude=np.arange(60))
    sparse_picks = strategies.get(name).select(model, X, 10, X_labeled=X[:60], **kwargs)
    dense_picks = strategies.get(name).select(
        model, X.toarray(), 10, X_labeled=X[:60].toarray(), **kwargs
    )
    np.testing.assert_array_equal(sparse_picks, dense_picks)
