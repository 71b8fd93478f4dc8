"""Models, calibration and importance weights."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from tasks.model.build import (
    TemperatureScaledClassifier,
    XGBLabelClassifier,
    apply_temperature,
    build_model,
    fit_model,
    fit_temperature,
    importance_weights,
    training_weights,
)
from tasks.settings import ModelSettings

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    X, y = make_classification(400, 6, n_informative=4, n_classes=3, flip_y=0.1, random_state=0)
    return X, np.array(["cat", "dog", "eel"])[y]


@pytest.mark.parametrize("kind", ["logreg", "forest", "xgboost"])
@pytest.mark.parametrize("calibration", [None, "isotonic", "sigmoid", "temperature"])
def test_every_configured_classifier_fits_string_labels(data, kind, calibration) -> None:
    X, y = data
    params = {} if kind == "logreg" else {"n_estimators": 15}
    settings = ModelSettings(kind=kind, calibration=calibration, params=params)
    model = fit_model(build_model(settings, random_state=0), X, y)
    assert list(model.classes_) == ["cat", "dog", "eel"]
    assert set(model.predict(X[:20])) <= {"cat", "dog", "eel"}
    probas = model.predict_proba(X[:20])
    np.testing.assert_allclose(probas.sum(axis=1), 1.0, atol=1e-6)
    assert (model.predict(X) == y).mean() > 0.6


@pytest.mark.parametrize("kind", ["logreg", "forest", "xgboost"])
def test_every_configured_regressor_fits(kind) -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = 2 * X[:, 0] + rng.normal(scale=0.1, size=200)
    model = fit_model(build_model(ModelSettings(kind=kind, task="regression"), 0), X, y)
    assert np.corrcoef(model.predict(X), y)[0, 1] > 0.9


def test_xgboost_wrapper_survives_clone_and_refit_on_new_labels(data) -> None:
    X, y = data
    model = XGBLabelClassifier(n_estimators=5, verbosity=0, n_jobs=1).fit(X, y)
    refit = clone(model).fit(X[:100], np.where(y[:100] == "cat", "x", "y"))
    assert list(refit.classes_) == ["x", "y"]
    assert list(model.fit(X, y).classes_) == ["cat", "dog", "eel"]


def test_fit_temperature_recovers_the_sharpening_factor() -> None:
    # labels drawn from softmax(z); the model reports softmax(3 z): the fitted T is about 3
    rng = np.random.default_rng(1)
    logits = rng.normal(scale=1.0, size=(6000, 3))
    true_p = apply_temperature(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), 1.0)
    codes = np.array([rng.choice(3, p=p) for p in true_p])
    overconfident = apply_temperature(true_p, 1 / 3)
    assert fit_temperature(overconfident, codes) == pytest.approx(3.0, rel=0.1)


class Overconfident(ClassifierMixin, BaseEstimator):
    """Logistic regression whose probabilities are sharpened (p^4, renormalised)."""

    def fit(self, X, y, sample_weight=None):
        self.model_ = LogisticRegression(max_iter=1000).fit(X, y, sample_weight=sample_weight)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X):
        p = self.model_.predict_proba(X) ** 4
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def test_temperature_scaling_lowers_holdout_nll_of_an_overconfident_model(data) -> None:
    X, y = data
    train, test = slice(0, 250), slice(250, None)
    raw = Overconfident().fit(X[train], y[train])
    scaled = TemperatureScaledClassifier(Overconfident(), cv=5, random_state=0)
    scaled.fit(X[train], y[train])
    assert scaled.temperature_ > 1.5
    raw_nll = log_loss(y[test], raw.predict_proba(X[test]), labels=raw.classes_)
    scaled_nll = log_loss(y[test], scaled.predict_proba(X[test]), labels=scaled.classes_)
    assert scaled_nll < raw_nll - 0.05
    # temperature never changes the predicted class
    np.testing.assert_array_equal(scaled.predict(X[test]), raw.predict(X[test]))


def test_importance_weights_are_inverse_probabilities_normalised_to_mean_one() -> None:
    # 1/q = [1, 2, 4], mean 7/3
    np.testing.assert_allclose(importance_weights([1.0, 0.5, 0.25]), [3 / 7, 6 / 7, 12 / 7])
    # 1/0.01 = 100 is capped at 20: [20, 1] / 10.5
    np.testing.assert_allclose(
        importance_weights([0.01, 1.0], max_weight=20), [20 / 10.5, 1 / 10.5]
    )


def test_training_weights_follow_the_importance_weighting_switch() -> None:
    q = [1.0, 0.5, 0.25]
    assert training_weights(ModelSettings(importance_weighting=False), q) is None
    on = ModelSettings(importance_weighting=True, max_importance_weight=3.0)
    # 1/q = [1, 2, 4] capped at 3 -> [1, 2, 3], mean 2
    np.testing.assert_allclose(training_weights(on, q), [0.5, 1.0, 1.5])


@pytest.mark.parametrize("bad", [[0.0, 0.5], [1.5], [np.nan], []])
def test_importance_weights_reject_impossible_probabilities(bad) -> None:
    with pytest.raises(ValueError):
        importance_weights(bad)


@pytest.mark.parametrize("calibration", [None, "sigmoid", "temperature"])
def test_sample_weights_reach_the_estimator(data, calibration) -> None:
    # weight 2 on a row must act like the row appearing twice (an unweighted fit would not)
    X, y = data
    settings = ModelSettings(kind="logreg", scale=True, calibration=calibration)
    weights = np.where(np.arange(len(y)) < 100, 2.0, 1.0)
    weighted = fit_model(build_model(settings, 0), X, y, weights)
    unweighted = fit_model(build_model(settings, 0), X, y)
    if calibration is None:
        plain = ModelSettings(kind="logreg", scale=False)
        duplicated = fit_model(
            build_model(plain, 0), np.vstack([X, X[:100]]), np.concatenate([y, y[:100]])
        )
        weighted_plain = fit_model(build_model(plain, 0), X, y, weights)
        np.testing.assert_allclose(weighted_plain.coef_, duplicated.coef_, rtol=1e-3, atol=1e-4)
    assert not np.allclose(weighted.predict_proba(X), unweighted.predict_proba(X))


def test_calibrated_model_fits_even_when_a_class_has_two_rows(data) -> None:
    X, y = data
    rows = np.concatenate([np.flatnonzero(y == "cat")[:10], np.flatnonzero(y == "dog")[:2]])
    model = fit_model(build_model(ModelSettings(calibration="isotonic"), 0), X[rows], y[rows])
    assert list(model.classes_) == ["cat", "dog"]


def test_committee_members_differ_and_share_the_class_order(data) -> None:
    from strategies.committee import bootstrap_committee

    X, y = data
    settings = ModelSettings(kind="xgboost", params={"n_estimators": 10})
    model = fit_model(build_model(settings, 0), X, y)
    committee = bootstrap_committee(model, X, y, 3, np.random.default_rng(0))
    probas = committee.member_probas(X[:50])
    assert probas.shape == (3, 50, 3)
    assert list(committee.classes_) == ["cat", "dog", "eel"]
    assert not np.allclose(probas[0], probas[1])


def test_model_committee_size_is_the_committee_strategies_number_of_members() -> None:
    from tasks.settings import Settings

    settings = Settings.model_validate(
        {"strategy": {"name": "qbc_vote_entropy"}, "model": {"committee_size": 7}}
    )
    built = settings.strategy.build(committee_size=settings.model.committee_size)
    assert built.n_members == 7
    explicit = settings.model_copy(
        update={"strategy": settings.strategy.model_copy(update={"params": {"n_members": 3}})}
    )
    assert explicit.strategy.build(committee_size=7).n_members == 3  # the strategy's own wins
    margin = Settings().strategy.model_copy(update={"name": "margin"})
    assert margin.build(committee_size=7).get_params() == {}  # no committee, nothing passed
