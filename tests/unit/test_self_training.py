"""Self-training on the unlabeled pool: which predictions become pseudo-labels (hand-computed),
that labeled rows and weak labels keep their own labels, the loop's round model refit with them,
and the benchmark's ``+st`` runs measured against ``random+st`` with self-training's own effect
reported apart."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from tasks.benchmark.curves import BenchmarkConfig, run_benchmark
from tasks.benchmark.problems import problem_from_frame
from tasks.loop.simulate import with_pseudo
from tasks.model.semi import SelfTraining, pseudo_labels

pytestmark = pytest.mark.unit


class Fixed:
    """A fitted classifier whose probabilities are given: row k of X is [k]."""

    classes_ = np.array(["a", "b"])

    def __init__(self, p_b: list[float]):
        self.p_b = np.asarray(p_b)

    def predict_proba(self, X):
        p = self.p_b[np.asarray(X)[:, 0].astype(int)]
        return np.column_stack([1 - p, p])


def test_pseudo_labels_are_the_sure_predictions_weighted_by_confidence():
    fitted = Fixed([0.95, 0.5, 0.02, 0.89, 0.9])
    X = np.arange(5)[:, None]
    rows, labels, weights = pseudo_labels(
        fitted, X, np.array([0, 1, 2, 3, 4]), SelfTraining(0.9, 0.5), np.random.default_rng(0)
    )
    assert rows.tolist() == [0, 2, 4]  # 0.95 b, 0.98 a, 0.9 b; 0.5 and 0.89 are not sure enough
    assert labels.tolist() == ["b", "a", "b"]
    np.testing.assert_allclose(weights, [0.475, 0.49, 0.45])
    few = pseudo_labels(
        fitted, X, np.arange(5), SelfTraining(0.0, 1.0, max_rows=2), np.random.default_rng(1)
    )
    assert len(few[0]) == 2 and set(few[0]) <= set(range(5))  # only max_rows looked at


def test_a_weak_label_keeps_its_row_and_pseudo_labels_fill_the_rest():
    weak = (np.array([3, 7]), np.array(["x", "y"], dtype=object), np.array([0.4, 0.4]))
    pseudo = (np.array([1, 3]), np.array(["a", "b"], dtype=object), np.array([0.45, 0.5]))
    rows, labels, weights = with_pseudo(weak, pseudo)
    assert rows.tolist() == [3, 7, 1] and labels.tolist() == ["x", "y", "a"]
    np.testing.assert_allclose(weights, [0.4, 0.4, 0.45])


def test_the_round_model_is_refit_with_pseudo_labels(make_settings, monkeypatch, tmp_path):
    from tasks.data import store
    from tasks.data.profile import resolve
    from tasks.loop import demo
    from tasks.loop import training_data as td
    from tasks.model import build

    monkeypatch.chdir(tmp_path)
    settings = make_settings(
        project={"name": "st", "seed": 1},
        model={"kind": "logreg", "semi_supervised": "self_training", "pseudo_label_max_rows": 50},
        loop={"demo_rows": 200, "initial_labels": 30, "stop_set_size": 10},
    )
    assert demo.seed_project(settings)
    settings = resolve(settings)
    pool = store.read_pool(settings)
    labeled = td.labeled_frame(pool, td.training_labels(settings))
    fits = []
    real_fit = build.fit_model

    def recording(model, X, y, sample_weight=None):  # watches what each fit is given
        fits.append((X.shape[0], None if sample_weight is None else np.asarray(sample_weight)))
        return real_fit(model, X, y, sample_weight=sample_weight)

    monkeypatch.setattr(build, "fit_model", recording)
    model = td.fit_round_model(settings, pool, labeled)

    assert len(fits) == 2 and fits[0][0] == len(labeled) == 30
    n_pseudo = fits[1][0] - len(labeled)
    assert 0 < n_pseudo <= 50  # confident ones among the 50 unlabeled rows looked at
    weights = fits[1][1]
    assert (weights[:30] == 1).all() and ((weights[30:] >= 0.45) & (weights[30:] <= 0.5)).all()
    assert set(model.predict(None, pool.head(5))) <= set(labeled["label"])

    off = settings.model_copy(
        update={"model": settings.model.model_copy(update={"semi_supervised": None})}
    )
    fits.clear()
    td.fit_round_model(off, pool, labeled)
    assert len(fits) == 1  # labels only


def test_benchmark_self_trained_runs_are_measured_against_random_self_trained(tmp_path):
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    frame = X.iloc[:, :8].assign(diagnosis=y.map({0: "malignant", 1: "benign"}))
    problem = problem_from_frame("bc", frame, "diagnosis")
    config = BenchmarkConfig(
        strategies=["margin"],
        seeds=2,
        initial=10,
        batch_size=10,
        budget=40,
        n_jobs=1,
        semi_supervised=True,
    )
    results = run_benchmark(problem, config, tmp_path)
    assert set(results["strategies"]) == {"random", "margin", "random+st", "margin+st"}
    final = results["savings_vs_random_final"]
    assert final["random+st"]["saving"] == 0.0  # against itself
    st = results["self_training"]
    assert st["baseline"] == "random" and len(st["interval_95"]) == 2
    plain = np.array(results["strategies"]["random"]["scores"])[:, -1].mean()
    trained = np.array(results["strategies"]["random+st"]["scores"])[:, -1].mean()
    assert st["final_score_gain"] == pytest.approx(trained - plain)
    assert "Self-training alone" in (tmp_path / "summary.md").read_text()
