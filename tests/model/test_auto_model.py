"""model.kind auto: the search picks the family the data wants (a linear model on a linear
problem, trees on an interaction), never trees on a handful of rows, routes weights, and says
what it chose; the loop logs the choice to MLflow."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tasks.model.auto import MIN_ROWS_FOR_TREES, AutoModel, candidates, model_choice
from tasks.model.build import build_model, fit_model, predict_interval
from tasks.settings import ModelSettings

pytestmark = pytest.mark.model


def _xor(n, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, size=(n, 4))
    return X, np.where(X[:, 0] * X[:, 1] > 0, "a", "b")


def _linear(n, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 20))
    return X, np.where(X @ rng.normal(size=20) > 0, "a", "b")


def test_an_interaction_gets_trees_and_a_linear_problem_a_linear_model():
    X, y = _xor(400)
    tree = AutoModel(random_state=0).fit(X, y)
    assert tree.choice_ in ("xgb", "forest")
    assert tree.cv_scores_[tree.choice_] > max(tree.cv_scores_["logreg_c1"], 0.6) + 0.2
    X, y = _linear(200)
    linear = AutoModel(random_state=0).fit(X, y)
    assert linear.choice_.startswith("logreg")
    assert set(linear.predict(X)) <= {"a", "b"}
    assert linear.predict_proba(X).shape == (200, 2)
    np.testing.assert_array_equal(linear.classes_, ["a", "b"])


def test_a_handful_of_rows_only_tries_linear_models():
    X, y = _xor(MIN_ROWS_FOR_TREES - 1)
    model = AutoModel(random_state=0).fit(X, y)
    assert set(model.cv_scores_) == {"logreg_c1", "logreg_c0.1"}


def test_the_refit_is_the_chosen_candidate_with_the_weights_reaching_it():
    X, y = _linear(30)
    weights = np.linspace(0.1, 3.0, 30)
    model = AutoModel(random_state=0).fit(X, y, sample_weight=weights)
    C = {"logreg_c1": 1.0, "logreg_c0.1": 0.1}[model.choice_]
    expected = make_pipeline(
        StandardScaler(), LogisticRegression(C=C, class_weight="balanced", max_iter=2000)
    ).fit(X, y, logisticregression__sample_weight=weights)
    np.testing.assert_allclose(model.predict_proba(X), expected.predict_proba(X), atol=1e-6)
    unweighted = AutoModel(random_state=0).fit(X, y)
    assert not np.allclose(unweighted.predict_proba(X), model.predict_proba(X))


def test_a_class_with_one_row_skips_the_search_and_takes_the_cheapest_model():
    X, y = _linear(10)
    y[:] = "a"
    y[0] = "b"
    model = AutoModel(random_state=0).fit(X, y)
    assert model.choice_ == "logreg_c1"
    assert all(np.isnan(v) for v in model.cv_scores_.values())
    assert model_choice(model)["cv_scores"] == {"logreg_c1": None, "logreg_c0.1": None}


def test_sparse_rows_get_linear_models_only():
    X, y = _linear(300)
    model = AutoModel(random_state=0).fit(sp.csr_matrix(X), y)
    assert set(model.cv_scores_) == set(candidates("classification", sp.csr_matrix(X), 300, 0))
    assert all(name.startswith("logreg") for name in model.cv_scores_)


def test_class_weights_make_a_rare_class_predicted():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 5))
    y = np.where(X[:, 0] + 0.5 * rng.normal(size=400) > 1.9, "rare", "common")  # ~5% rare
    assert 5 < (y == "rare").sum() < 40
    model = AutoModel(random_state=0).fit(X, y)
    recall = (model.predict(X)[y == "rare"] == "rare").mean()
    assert recall >= 0.7


def test_a_regressor_has_no_predict_proba_and_its_forest_gives_intervals():
    rng = np.random.default_rng(0)
    X = rng.uniform(-3, 3, size=(300, 2))
    y = np.sin(2 * X[:, 0]) * 3 + 0.1 * rng.normal(size=300)
    model = AutoModel("regression", random_state=0).fit(X, y)
    assert not hasattr(model, "predict_proba")  # the strategies read this as "a regressor"
    assert model.choice_ in ("xgb", "forest")
    assert -model.cv_scores_[model.choice_] < 0.6 * -model.cv_scores_["ridge_a1"]
    forest = AutoModel("regression", random_state=0)
    forest.fit(X, y)
    if forest.choice_ == "forest":
        lower, upper = predict_interval(forest, X)
        assert np.all(lower <= upper)


def test_build_model_makes_an_auto_model_and_the_choice_is_seen_through_calibration():
    settings = ModelSettings(kind="auto", task="classification", calibration="sigmoid")
    model = build_model(settings, random_state=0)
    assert isinstance(model, CalibratedClassifierCV)
    X, y = _xor(200)
    fitted = fit_model(model, X, y)
    choice = model_choice(fitted)
    assert choice is not None and choice["chosen"] in choice["cv_scores"]
    assert choice["search_seconds"] > 0
    assert model_choice(fit_model(build_model(ModelSettings(kind="logreg")), X, y)) is None


def test_a_task_it_cannot_search_is_refused():
    with pytest.raises(ValueError, match="classification or regression"):
        AutoModel("ner").fit(*_linear(20))


def test_estimator_params_with_kind_auto_fail_when_the_settings_load_naming_the_keys(tmp_path):
    from tasks.settings import SettingsError, load_settings

    path = tmp_path / "params.yaml"
    path.write_text("model:\n  params: {max_depth: 4, C: 0.5}\n")  # kind left at its default
    with pytest.raises(SettingsError, match=r"params.yaml.*\['C', 'max_depth'\].*kind auto"):
        load_settings(path)
    path.write_text("model:\n  kind: xgboost\n  params: {max_depth: 4}\n")
    assert load_settings(path).model.params == {"max_depth": 4}
    path.write_text("model:\n  params: {cv: 5}\n")
    assert build_model(load_settings(path).model).cv == 5


def test_the_search_scores_by_the_projects_metric_where_it_can():
    from tasks.model.auto import scoring_for

    assert scoring_for("rare_class_recall", "classification") == "rare_class_recall"
    assert scoring_for("minority_recall", "classification") == "rare_class_recall"
    assert scoring_for("accuracy", "classification") == "accuracy"
    assert scoring_for("macro_f1", "classification") == "balanced_accuracy"  # its proxy
    assert scoring_for("log_loss", "classification") == "balanced_accuracy"
    assert scoring_for("mae", "regression") == "mae"
    assert scoring_for("rmse", "regression") == "rmse"


def test_fold_scores_by_hand():
    y = np.array(["a", "a", "a", "b"])
    pred = np.array(["a", "a", "b", "a"])
    model = AutoModel("classification")
    model.rare_class_ = "b"
    scores = {}
    for scoring in ("balanced_accuracy", "accuracy", "macro_f1", "rare_class_recall"):
        model.scoring = scoring
        scores[scoring] = model._fold_score(y, pred)
    # recall a = 2/3, recall b = 0: balanced 1/3; F1 a = 2*(2/3*2/3)/(4/3) = 2/3, F1 b = 0
    assert scores == pytest.approx(
        {"balanced_accuracy": 1 / 3, "accuracy": 0.5, "macro_f1": 1 / 3, "rare_class_recall": 0.0}
    )
    numbers = AutoModel("regression", scoring="mae")
    assert numbers._fold_score(np.array([1.0, 3.0]), np.array([2.0, 1.0])) == pytest.approx(-1.5)
    with pytest.raises(ValueError, match="scoring 'mae' for a classification search"):
        AutoModel("classification", scoring="mae").fit(np.eye(4), ["a", "b", "a", "b"])


def _demo_round(make_settings, name, **sections):
    """A seeded demo project's settings (resolved), pool and labeled rows, ``model.kind`` auto."""
    from tasks.data import store
    from tasks.data.profile import resolve
    from tasks.loop import demo
    from tasks.loop import training_data as td

    settings = make_settings(
        project={"name": name, "seed": 1},
        model={"kind": "auto"},
        loop={"demo_rows": 150, "initial_labels": 40, "stop_set_size": 10},
        **sections,
    )
    assert demo.seed_project(settings)
    settings = resolve(settings)
    pool = store.read_pool(settings)
    return settings, pool, td.labeled_frame(pool, td.training_labels(settings))


def test_the_round_model_searches_by_the_rare_class_when_that_is_the_metric(
    make_settings, monkeypatch, tmp_path
):
    from tasks.loop import training_data as td

    monkeypatch.chdir(tmp_path)
    settings, pool, labeled = _demo_round(
        make_settings, "auto-scoring", evaluate={"metric": "rare_class_recall"}
    )
    model = td.fit_round_model(settings, pool, labeled)
    assert model.estimator.scoring == "rare_class_recall"
    assert model.estimator.decision_metric is None  # a cut would always want to call it rare
    counts = labeled["label"].value_counts()
    assert counts[model.estimator.rare_class_] == counts.min()  # a rarest class of the labels


def test_the_threshold_by_hand_is_the_metrics_best_cut_nearest_one_half():
    from tasks.model.auto import tune_threshold

    y = np.array(["n"] * 8 + ["p"] * 2)
    p = np.array([0.1, 0.1, 0.2, 0.2, 0.3, 0.3, 0.62, 0.62, 0.71, 0.9])
    # at 0.5 two n rows are called p: macro-F1 = (F1 n 12/14 + F1 p 4/6) / 2 = 0.762; any cut in
    # (0.62, 0.71] calls exactly the two p rows p (1.0); 0.65 and 0.70 tie: 0.65 is nearer 0.5
    assert tune_threshold(y, p, "p", "macro_f1") == 0.65
    assert tune_threshold(y, p, "p", "accuracy") == 0.65
    # every cut in [0.35, 0.6] scores the same as 0.5: 0.5 stays
    assert tune_threshold(y, np.array([0.1] * 8 + [0.95, 0.95]), "p", "macro_f1") == 0.5


def _weak_rare(n, seed):
    """A 7% class on a weak signal: balanced weights call it on far too many rows."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6))
    score = X[:, 0] + 0.5 * X[:, 1] + 1.2 * rng.normal(size=n)
    return X, np.where(score > np.quantile(score, 0.93), "rare", "common")


def test_a_tuned_cut_lifts_macro_f1_on_a_weak_rare_class_and_leaves_the_ranking_alone():
    from sklearn.metrics import f1_score

    X, y = _weak_rare(4000, 0)
    Xtest, ytest = _weak_rare(4000, 1)
    argmax = AutoModel(random_state=0).fit(X, y)
    tuned = AutoModel(random_state=0, decision_metric="macro_f1").fit(X, y)
    assert argmax.threshold_ == 0.5 and tuned.threshold_ > 0.5
    assert tuned.choice_ == argmax.choice_
    np.testing.assert_allclose(tuned.predict_proba(Xtest), argmax.predict_proba(Xtest))
    f1 = {
        name: f1_score(ytest, model.predict(Xtest), average="macro")
        for name, model in (("argmax", argmax), ("tuned", tuned))
    }
    assert f1["tuned"] > f1["argmax"] + 0.03
    called = (tuned.predict(Xtest) == "rare").mean()
    assert abs(called - 0.07) < abs((argmax.predict(Xtest) == "rare").mean() - 0.07)
    assert model_choice(tuned)["threshold"] == tuned.threshold_


def test_near_balanced_or_multiclass_rows_keep_the_most_probable_class():
    X, y = _linear(300)  # about half and half
    model = AutoModel(random_state=0, decision_metric="macro_f1").fit(X, y)
    assert model.threshold_ == 0.5
    np.testing.assert_array_equal(model.predict(X), model.best_.predict(X))
    rng = np.random.default_rng(0)
    X3 = rng.normal(size=(300, 3))
    y3 = np.select([X3[:, 0] > 1.5, X3[:, 0] < -1.5], ["hi", "lo"], "mid")  # two rare classes
    three = AutoModel(random_state=0, decision_metric="macro_f1").fit(X3, y3)
    assert three.threshold_ == 0.5


def test_a_decision_metric_a_cut_cannot_serve_is_refused_and_the_loop_picks_it_by_metric():
    from tasks.model.auto import decision_metric_for

    with pytest.raises(ValueError, match="decision_metric 'rare_class_recall' is not one of"):
        AutoModel(decision_metric="rare_class_recall").fit(*_linear(20))
    assert decision_metric_for("macro_f1", "classification") == "macro_f1"
    assert decision_metric_for("accuracy", "classification") == "accuracy"
    assert decision_metric_for("rare_class_recall", "classification") is None
    assert decision_metric_for("rmse", "regression") is None


def test_model_params_can_turn_the_tuned_cut_off(tmp_path):
    from tasks.settings import load_settings

    path = tmp_path / "params.yaml"
    path.write_text("model:\n  params: {decision_metric: null}\n")
    assert build_model(load_settings(path).model).decision_metric is None


def test_the_round_model_tunes_its_cut_for_the_default_metric(make_settings, monkeypatch, tmp_path):
    from tasks.loop import training_data as td

    monkeypatch.chdir(tmp_path)
    settings, pool, labeled = _demo_round(make_settings, "auto-cut")  # metric auto: macro_f1
    model = td.fit_round_model(settings, pool, labeled)
    assert model.estimator.decision_metric == "macro_f1"
    off = settings.model_copy(
        update={"model": settings.model.model_copy(update={"params": {"decision_metric": None}})}
    )
    assert td.fit_round_model(off, pool, labeled).estimator.decision_metric is None


def test_the_no_skill_prediction_by_hand():
    from tasks.model.auto import _constant_prediction

    labels = np.array(["b", "a", "b", "a", "c"])  # a and b tie: the first in sort order
    np.testing.assert_array_equal(_constant_prediction(labels, 3, False), ["a", "a", "a"])
    np.testing.assert_allclose(_constant_prediction(np.array([1.0, 2.0, 6.0]), 2, True), [3, 3])
    # 9 a, 3 b in 3 stratified folds: each test fold is 3 a + 1 b, each training fold's
    # majority is a, so the baseline's accuracy is 3/4 (balanced accuracy: 1/2)
    X, _ = _linear(12)
    y = np.array(["a"] * 9 + ["b"] * 3)
    assert AutoModel(random_state=0, scoring="accuracy").fit(X, y).baseline_score_ == 0.75
    assert AutoModel(random_state=0).fit(X, y).baseline_score_ == 0.5


def test_a_search_no_candidate_wins_takes_the_cheapest_model():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5))
    y = np.where(rng.random(200) < 0.1, "rare", "common")  # no signal at all
    model = AutoModel(random_state=0).fit(X, y)
    assert model.baseline_score_ == 0.5
    assert max(model.cv_scores_.values()) <= model.baseline_score_
    # the best of that noise is not the cheapest: the old rule would have taken it
    assert max(model.cv_scores_, key=model.cv_scores_.get) != "logreg_c1"
    assert model.choice_ == "logreg_c1"
    assert model_choice(model)["baseline_score"] == 0.5
    numbers = AutoModel("regression", random_state=0).fit(X, rng.normal(size=200))
    assert max(numbers.cv_scores_.values()) <= numbers.baseline_score_ < 0
    assert numbers.choice_ == "ridge_a1"


def test_a_candidate_with_skill_is_chosen_over_the_baseline():
    X, y = _xor(400)
    tree = AutoModel(random_state=0).fit(X, y)
    assert tree.cv_scores_[tree.choice_] > tree.baseline_score_ + 0.3
    rng = np.random.default_rng(1)
    Xr = rng.uniform(-1, 1, size=(300, 4))
    numbers = AutoModel("regression", random_state=0).fit(Xr, np.sign(Xr[:, 0] * Xr[:, 1]))
    assert numbers.choice_ in ("xgb", "forest")
    assert numbers.cv_scores_[numbers.choice_] > numbers.baseline_score_
