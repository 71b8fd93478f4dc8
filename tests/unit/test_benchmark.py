"""The benchmark harness: targets, savings, AULC and the results.json schema."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from typer.testing import CliRunner

from flows.cli import app
from tasks.benchmark.curves import BenchmarkConfig, run_benchmark, strategy_of, strategy_spec
from tasks.benchmark.problems import BenchmarkError, problem_from_frame
from tasks.benchmark.report import summary_markdown
from tasks.benchmark.stats import (
    aulc,
    bootstrap_final_savings,
    bootstrap_savings,
    labels_to_target,
    saving,
    savings_vs_final,
)

pytestmark = pytest.mark.unit


def test_labels_to_target_is_the_first_size_reaching_the_fraction():
    labels = [20, 40, 60, 80]
    mean = np.array([0.5, 0.85, 0.93, 0.96])
    assert labels_to_target(labels, mean, 1.0, 0.95, "accuracy") == 80
    assert labels_to_target(labels, mean, 0.95, 0.95, "accuracy") == 60  # 0.9025
    assert labels_to_target(labels, mean, 1.0, 0.99, "accuracy") is None


def test_labels_to_target_lower_is_better_for_rmse():
    # target for rmse: full / fraction = 10 / 0.95 = 10.53
    assert labels_to_target([10, 20, 30], np.array([15.0, 10.6, 10.2]), 10.0, 0.95, "rmse") == 30


def test_saving_and_aulc_hand_computed():
    assert saving(40, 100) == pytest.approx(0.6)
    assert saving(None, 100) is None and saving(40, None) is None
    # trapezoid of (0.5, 1.0) over labels (0, 10) divided by range 10 = 0.75, averaged over 2 seeds
    assert aulc([0, 10], np.array([[0.5, 1.0], [0.5, 1.0]])) == pytest.approx(0.75)


def test_bootstrap_interval_brackets_the_point_estimate():
    labels = [10, 20, 30, 40, 50]
    rng = np.random.default_rng(0)
    fast = np.clip(np.array([0.7, 0.9, 0.97, 0.99, 1.0]) + rng.normal(0, 0.005, (8, 5)), 0, 1)
    slow = np.clip(np.array([0.6, 0.7, 0.8, 0.9, 0.97]) + rng.normal(0, 0.005, (8, 5)), 0, 1)
    low, high = bootstrap_savings(labels, fast, slow, 1.0, 0.95, "accuracy")
    point = saving(
        labels_to_target(labels, fast.mean(0), 1.0, 0.95, "accuracy"),
        labels_to_target(labels, slow.mean(0), 1.0, 0.95, "accuracy"),
    )
    assert low <= point <= high
    assert point == pytest.approx(0.4)  # 30 labels against 50


def test_saving_against_randoms_final_score_hand_computed():
    labels = [10, 20, 30, 40, 50]
    random = np.array([[0.5, 0.6, 0.7, 0.8, 0.9], [0.5, 0.6, 0.7, 0.8, 0.9]])
    ours = np.array([[0.6, 0.8, 0.9, 0.92, 0.93], [0.6, 0.8, 0.9, 0.92, 0.93]])
    # random reaches its final 0.9 at 50 labels, ours at 30: 40% saved
    assert savings_vs_final(labels, ours, random, "accuracy") == pytest.approx(0.4)
    assert savings_vs_final(labels, random, random, "accuracy") == pytest.approx(0.0)
    # rmse: lower is better; random's final is 1.1, ours gets down to 1.1 at 30 labels
    assert savings_vs_final(labels, 2 - ours, 2 - random, "rmse") == pytest.approx(0.4)
    # never reached: no saving, and the interval counts it as 0
    assert savings_vs_final(labels, ours - 0.5, random, "accuracy") is None
    assert bootstrap_final_savings(labels, ours - 0.5, random, "accuracy") == (0.0, 0.0)


def test_unknown_metric_and_mismatched_metric_fail_clearly():
    frame = pd.DataFrame({"x": np.arange(40.0), "y": ["a", "b"] * 20})
    problem = problem_from_frame("toy", frame, "y")
    with pytest.raises(BenchmarkError, match="unknown metric"):
        run_benchmark(problem, BenchmarkConfig(metric="auc", seeds=1), None)
    with pytest.raises(BenchmarkError, match="does not fit"):
        run_benchmark(problem, BenchmarkConfig(metric="rmse", seeds=1), None)
    with pytest.raises(BenchmarkError, match="no target column"):
        problem_from_frame("toy", frame, "label")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    frame = X.iloc[:, :8].assign(diagnosis=y.map({0: "malignant", 1: "benign"}))
    problem = problem_from_frame("bc", frame, "diagnosis")
    config = BenchmarkConfig(
        strategies=["margin"], seeds=2, initial=10, batch_size=10, budget=50, n_jobs=1
    )
    out = tmp_path_factory.mktemp("bench")
    return run_benchmark(problem, config, out), out


def test_results_follow_the_schema(results):
    _res, out = results
    on_disk = json.loads((out / "results.json").read_text())
    for key in (
        "dataset",
        "n_pool",
        "n_test",
        "metric",
        "model",
        "full_data_score",
        "strategies",
        "savings_vs_random",
        "savings_vs_random_final",
    ):
        assert key in on_disk
    final = on_disk["savings_vs_random_final"]["margin"]
    low, high = final["interval_95"]
    assert set(final) == {"saving", "interval_95"} and low <= high
    assert set(on_disk["strategies"]) == {"random", "margin"}  # random is always included
    margin = on_disk["strategies"]["margin"]
    assert margin["labels"] == [10, 20, 30, 40, 50]
    assert len(margin["scores"]) == 2 and all(len(s) == 5 for s in margin["scores"])
    assert set(margin["labels_to_target"]) == {"0.95", "0.99"}
    assert set(on_disk["savings_vs_random"]["margin"]) == {"0.95", "0.99"}
    assert on_disk["n_pool"] + on_disk["n_test"] == 569
    assert (out / "learning_curves.png").stat().st_size > 10_000
    assert "| `margin` |" in (out / "summary.md").read_text()


def test_same_seed_same_initial_set_for_every_strategy(results):
    res, _ = results
    # the first point of every curve is the model on the same initial labels: identical scores
    first = {name: [s[0] for s in info["scores"]] for name, info in res["strategies"].items()}
    assert first["random"] == first["margin"]


def test_summary_reports_cost_saved(results):
    res, _ = results
    text = summary_markdown(res, cost_per_label=2.5)
    assert "cost saved @95%" in text


def test_cli_benchmark_on_a_csv_file(tmp_path):
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    path = tmp_path / "bc.csv"
    X.iloc[:, :5].assign(target=y).to_csv(path, index=False)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "benchmark",
            "--data",
            str(path),
            "--target",
            "target",
            "--strategies",
            "entropy",
            "--seeds",
            "1",
            "--budget",
            "40",
            "--batch-size",
            "10",
            "--initial",
            "10",
            "--n-jobs",
            "1",
            "--metric",
            "macro_f1",
            "--also-metric",
            "minority_recall",
            "--out",
            str(out),
            "--no-mlflow",
        ],
    )
    assert result.exit_code == 0, result.output
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["strategies"]["entropy"]["labels"][-1] == 40
    assert on_disk["model"] == "auto"  # the loop's default learner is the benchmark's
    assert on_disk["rarest_class_share"] == pytest.approx(212 / 569)
    assert on_disk["n_classes"] == 2
    recall = on_disk["strategies"]["entropy"]["also"]["minority_recall"]
    assert len(recall["scores"]) == 1 and len(recall["scores"][0]) == 4
    assert all(0.0 <= v <= 1.0 for v in recall["scores"][0])
    final = on_disk["also"]["minority_recall"]["savings_vs_random_final"]
    assert set(final) == {"random", "entropy"} and final["random"]["saving"] == 0.0


def test_cli_benchmark_bad_column_is_one_clear_error(tmp_path):
    path = tmp_path / "d.csv"
    pd.DataFrame({"a": [1, 2], "b": [0, 1]}).to_csv(path, index=False)
    result = CliRunner().invoke(
        app,
        [
            "benchmark",
            "--data",
            str(path),
            "--target",
            "label",
            "--out",
            str(tmp_path / "o"),
            "--no-mlflow",
        ],
    )
    assert result.exit_code == 1
    assert "no target column 'label'" in result.output


def test_summary_gives_a_lower_bound_when_random_never_reaches_the_target():
    res = {
        "dataset": "toy",
        "n_pool": 100,
        "n_test": 20,
        "metric": "accuracy",
        "model": "logreg",
        "full_data_score": 1.0,
        "strategies": {
            "random": {
                "labels": [10, 50],
                "aulc": 0.5,
                "labels_to_target": {"0.95": None, "0.99": None},
            },
            "margin": {
                "labels": [10, 50],
                "aulc": 0.9,
                "labels_to_target": {"0.95": 10, "0.99": None},
            },
        },
        "savings_vs_random": {"margin": {"0.95": None, "0.99": None}},
    }
    row = next(line for line in summary_markdown(res).splitlines() if "`margin`" in line)
    assert ">= 80%" in row  # 1 - 10 / 50


def test_also_scores_the_same_predictions_as_the_metric():
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score

    import strategies
    from tasks.loop.simulate import simulate

    X, y = load_breast_cancer(return_X_y=True)
    X = X[:, :5]
    curve = simulate(
        strategies.get("margin"),
        LogisticRegression(max_iter=500),
        X[:300],
        y[:300],
        X[300:],
        y[300:],
        initial=np.concatenate([np.flatnonzero(y[:300] == c)[:5] for c in (0, 1)]),
        batch_size=10,
        budget=40,
        seed=0,
        metric=accuracy_score,
        also={"acc": accuracy_score, "errors": lambda t, p: float((t != p).sum())},
    )
    assert curve.also["acc"] == curve.scores
    assert curve.also["errors"] == [pytest.approx((1 - s) * (569 - 300)) for s in curve.scores]


def test_also_savings_by_hand():
    from tasks.benchmark.stats import also_savings

    def run(scores):
        return {"labels": [10, 20, 30], "also": {"recall": {"scores": scores}}}

    found = also_savings(
        {
            # random's final seed mean: (0.6 + 0.4) / 2 = 0.5, first reached at 30 labels
            "random": run([[0.0, 0.2, 0.6], [0.0, 0.4, 0.4]]),
            # seed mean 0.5 already at 10 labels: 1 - 10 / 30
            "hybrid": run([[0.5, 0.7, 0.9], [0.5, 0.5, 0.9]]),
        },
        "recall",
    )["savings_vs_random_final"]
    assert found["random"]["random_final"] == pytest.approx(0.5)
    assert found["hybrid"]["saving"] == pytest.approx(1 - 10 / 30)
    assert found["hybrid"]["final"] == pytest.approx(0.9)


def test_a_strategy_spec_carries_its_parameters_read_as_yaml():
    assert strategy_spec("hybrid") == ("hybrid", {})
    assert strategy_spec("hybrid:prefilter=20:diversity=kmeans++:random_fraction=0.1") == (
        "hybrid",
        {"prefilter": 20, "diversity": "kmeans++", "random_fraction": 0.1},
    )
    with pytest.raises(BenchmarkError, match="'prefilter' is not key=value"):
        strategy_spec("hybrid:prefilter")
    built = strategy_of("hybrid:prefilter=20:random_fraction=0.1")  # guards wrap the strategy
    assert built.base.prefilter == 20 and built.fraction == 0.1


def test_two_settings_of_one_strategy_run_side_by_side_and_a_bad_one_fails_first(tmp_path):
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    frame = X.iloc[:, :6].assign(diagnosis=y)
    problem = problem_from_frame("bc", frame, "diagnosis")
    specs = ["hybrid:prefilter=1", "hybrid:prefilter=10"]
    config = BenchmarkConfig(
        strategies=specs, seeds=1, initial=10, batch_size=10, budget=30, n_jobs=1, model="logreg"
    )
    res = run_benchmark(problem, config, tmp_path / "ok")
    assert set(res["strategies"]) == {"random", *specs}
    assert all(res["strategies"][s]["labels"] == [10, 20, 30] for s in specs)
    bad = BenchmarkConfig(strategies=["hybrid:prefiltre=3"], seeds=1, budget=30, n_jobs=1)
    with pytest.raises(BenchmarkError, match=r"'hybrid:prefiltre=3': hybrid has no parameter"):
        run_benchmark(problem, bad, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()  # it failed before any curve ran
