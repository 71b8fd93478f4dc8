"""Three rounds against a real MLflow SQLite store and real Evidently reports.

The module-scoped fixture plays a loop the way the round flow will: fit, evaluate on the holdout,
log, register the challenger, promote it if better, monitor. Round 3's model is trained on
shuffled labels, so it is worse and must not take ``champion``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.datasets import make_classification

from tasks.model import build as models
from tasks.model import metrics as evaluate
from tasks.model import monitor, plots, registry
from tasks.settings import Settings
from tasks.tracking import history
from tasks.tracking import runs as tracking

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLASSES = np.array(["bird", "cat", "dog"])
FEATURES = [f"f{i}" for i in range(5)]
ROUND_LABELS = {1: 15, 2: 300, 3: 300}


def _settings_dict(work_dir: Path) -> dict:
    return {
        "project": {"name": "it-tracking", "work_dir": str(work_dir), "seed": 7},
        "strategy": {"name": "margin", "batch_size": 20},
        "model": {"kind": "logreg"},
        "evaluate": {"metric": "macro_f1", "margin": 0.01},
        "monitor": {"sensitive_column": "group", "drift_share": 0.5},
    }


def _data() -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, np.ndarray]:
    X, y = make_classification(
        900, 5, n_informative=4, n_redundant=0, n_classes=3, class_sep=1.5, random_state=3
    )
    frame = pd.DataFrame(X, columns=FEATURES)
    labels = CLASSES[y]
    return frame.iloc[:600], labels[:600], frame.iloc[600:].reset_index(drop=True), labels[600:]


@pytest.fixture(scope="module")
def loop(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("tracking")
    params_file = root / "params.yaml"
    params_file.write_text(yaml.safe_dump(_settings_dict(root / "work")))
    settings = Settings.model_validate(_settings_dict(root / "work"))
    pool, pool_y, holdout, holdout_y = _data()
    groups = np.where(holdout["f0"] > 0, "g1", "g2")
    rng = np.random.default_rng(0)
    order = rng.permutation(len(pool))
    trk = tracking.setup_tracking(settings)
    out: dict = {"settings": settings, "tracking": trk, "params_file": params_file, "rounds": {}}
    ece_history: list[float] = []
    with tracking.start_loop_run(trk, settings, run_name="loop") as parent:
        out["parent_id"] = parent.info.run_id
        for r in (1, 2, 3):
            rows = order[: ROUND_LABELS[r]]
            X_lab, y_lab = pool.iloc[rows], pool_y[rows]
            if r == 3:  # a worse challenger: the same rows with their labels shuffled
                y_lab = np.random.default_rng(1).permutation(y_lab)
            with tracking.start_round_run(trk, r) as run:
                model = models.fit_model(models.build_model(settings.model, 0), X_lab, y_lab)
                probas = model.predict_proba(holdout)
                metrics = evaluate.evaluate_classifier(holdout_y, probas, model.classes_)
                manifest = pd.DataFrame(
                    {
                        "round": r,
                        "rank": np.arange(5),
                        "id": [f"row-{i}" for i in rows[:5]],
                        "score": np.linspace(1, 0, 5),
                        "source": "strategy",
                        "strategy": "margin",
                        "strategy_params": "{}",
                        "model_version": str(r - 1),
                    }
                )
                plot_dir = root / f"plots-{r}"
                pred = model.classes_[probas.argmax(1)]
                tracking.log_round(
                    r,
                    len(rows),
                    metrics,
                    params=tracking.round_params(settings, data_version=f"rev{r}"),
                    manifest=manifest,
                    artifacts=[
                        plots.plot_confusion_matrix(
                            holdout_y, pred, CLASSES, plot_dir / "confusion_matrix.png"
                        ),
                        plots.plot_reliability_diagram(
                            holdout_y, probas, plot_dir / "reliability_diagram.png", classes=CLASSES
                        ),
                    ],
                    artifact_dir="plots",
                )
                tracking.log_learning_curve(parent.info.run_id, ["accuracy", "macro_f1"], r)
                started = time.perf_counter()
                info = tracking.log_model(model, holdout)
                log_model_seconds = time.perf_counter() - started
                version = registry.register_challenger(
                    trk, info.model_uri, metrics["macro_f1"], "macro_f1", r
                )
                decision = registry.promote_if_better(
                    trk,
                    version,
                    metrics["macro_f1"],
                    metric=settings.evaluate.metric,
                    margin=settings.evaluate.margin,
                    step=r,
                )
                result = monitor.run_monitoring(
                    settings.monitor,
                    root / f"monitoring-{r}",
                    classes=CLASSES,
                    labeled_X=X_lab,
                    pool_X=pool,
                    labeled_y=y_lab,
                    pool_pred=model.predict(pool),
                    holdout_y=holdout_y,
                    holdout_pred=pred,
                    holdout_groups=groups,
                    ece=metrics["ece_top_label"],
                    ece_history=ece_history,
                )
                monitor.log_monitoring(result, step=r)
                ece_history.append(metrics["ece_top_label"])
                out["rounds"][r] = {
                    "run_id": run.info.run_id,
                    "metrics": metrics,
                    "version": version,
                    "model_uri": info.model_uri,
                    "decision": decision,
                    "log_model_seconds": log_model_seconds,
                    "predictions": pred,
                    "monitor": result,
                }
    out["holdout"] = holdout
    return out


@pytest.fixture(scope="module")
def client(loop):
    import mlflow

    return mlflow.MlflowClient(loop["tracking"].tracking_uri)


def test_store_is_sqlite_under_the_work_dir_with_artifacts_beside_it(loop) -> None:
    trk = loop["tracking"]
    work = Path(loop["settings"].project.work_dir).resolve()
    assert trk.tracking_uri == f"sqlite:///{work / 'mlflow' / 'mlflow.db'}"
    assert (work / "mlflow" / "mlflow.db").is_file()
    assert not Path("mlruns").exists()
    assert any((work / "mlflow" / "artifacts").iterdir())


def test_one_parent_run_and_exactly_three_nested_round_runs(loop, client) -> None:
    exp = loop["tracking"].experiment_id
    runs = client.search_runs([exp])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == loop["parent_id"]]
    assert [r.info.run_id for r in parents] == [loop["parent_id"]]
    assert len(runs) == 4 and len(children) == 3
    assert sorted(r.info.run_name for r in children) == ["round-001", "round-002", "round-003"]
    assert client.get_experiment(exp).name == "it-tracking"


def test_round_metrics_use_the_round_as_step_with_n_labels(loop, client) -> None:
    parent = loop["parent_id"]
    macro_f1 = client.get_metric_history(parent, "macro_f1")
    assert sorted(m.step for m in macro_f1) == [1, 2, 3]
    n_labels = sorted((m.step, m.value) for m in client.get_metric_history(parent, "n_labels"))
    assert n_labels == [(1, 15.0), (2, 300.0), (3, 300.0)]
    for r, info in loop["rounds"].items():
        history = client.get_metric_history(info["run_id"], "macro_f1")
        assert [(m.step, m.value) for m in history] == [
            (r, pytest.approx(info["metrics"]["macro_f1"]))
        ]
        run = client.get_run(info["run_id"])
        assert run.data.metrics["n_labels"] == ROUND_LABELS[r]
        assert {
            "accuracy",
            "log_loss",
            "brier",
            "ece_top_label",
            "ece_classwise",
            "rare_class_recall",
            "recall_bird",
        } <= set(run.data.metrics)


def test_round_params_name_strategy_seed_model_and_data_version(loop, client) -> None:
    params = client.get_run(loop["rounds"][2]["run_id"]).data.params
    assert params["strategy.name"] == "margin"
    assert params["strategy.batch_size"] == "20"
    assert params["seed"] == "7"
    assert params["model.kind"] == "logreg"
    assert params["data_version"] == "rev2"


def _artifacts(client, run_id: str, path: str | None = None) -> set[str]:
    found = set()
    for item in client.list_artifacts(run_id, path):
        found |= _artifacts(client, run_id, item.path) if item.is_dir else {item.path}
    return found


def test_each_round_run_holds_the_expected_artifacts(loop, client) -> None:
    for r, info in loop["rounds"].items():
        files = _artifacts(client, info["run_id"])
        expected = {
            f"manifest/manifest_round_{r:03d}.parquet",
            f"manifest/manifest_round_{r:03d}.csv",
            "plots/confusion_matrix.png",
            "plots/reliability_diagram.png",
            f"plots/learning_curve_round_{r:03d}.png",
            "monitoring/sampling_bias.html",
            "monitoring/class_balance.html",
            "monitoring/checks.json",
            "registry/decision.json",
        }
        assert expected <= files, expected - files
    manifest = pd.read_parquet(
        client.download_artifacts(
            loop["rounds"][1]["run_id"], "manifest/manifest_round_001.parquet"
        )
    )
    assert list(manifest.columns[:4]) == ["round", "rank", "id", "score"]


def test_every_round_registers_a_version_from_its_own_run(loop, client) -> None:
    name = loop["tracking"].registered_model
    versions = client.search_model_versions(f"name = '{name}'")
    by_version = {str(v.version): v.run_id for v in versions}
    assert by_version == {str(r): info["run_id"] for r, info in loop["rounds"].items()}


def test_champion_alias_follows_the_rule_and_skips_the_worse_challenger(loop, client) -> None:
    rounds = loop["rounds"]
    assert [rounds[r]["decision"].promoted for r in (1, 2, 3)] == [True, True, False]
    assert rounds[3]["metrics"]["macro_f1"] < rounds[2]["metrics"]["macro_f1"] - 0.01
    name = loop["tracking"].registered_model
    assert str(client.get_model_version_by_alias(name, "champion").version) == "2"
    third = client.get_run(rounds[3]["run_id"]).data
    assert third.tags["labelwise.promoted"] == "false"
    assert third.tags["labelwise.champion_version"] == "2"
    assert third.metrics["champion_score"] == pytest.approx(rounds[2]["metrics"]["macro_f1"])
    assert third.metrics["challenger_score"] == pytest.approx(rounds[3]["metrics"]["macro_f1"])


def test_load_champion_returns_the_round_two_model(loop) -> None:
    model, version = registry.load_champion(loop["tracking"])
    assert version == "2"
    np.testing.assert_array_equal(model.predict(loop["holdout"]), loop["rounds"][2]["predictions"])


def test_log_model_with_pip_requirements_is_fast(loop) -> None:
    # first call pays for importing MLflow's model code; later ones must be well under 2 s
    assert min(info["log_model_seconds"] for info in loop["rounds"].values()) < 2.0


def test_a_worse_lower_is_better_challenger_does_not_take_champion(loop, client) -> None:
    import mlflow

    trk = loop["tracking"]
    other = tracking.Tracking(
        trk.tracking_uri, trk.experiment_name, trk.experiment_id, "it-logloss", "champion"
    )
    uri = loop["rounds"][2]["model_uri"]
    first = registry.register_challenger(other, uri, 0.40, "log_loss", 1)
    assert registry.promote_if_better(other, first, 0.40, metric="log_loss").promoted
    worse = registry.register_challenger(other, uri, 0.55, "log_loss", 2)
    decision = registry.promote_if_better(other, worse, 0.55, metric="log_loss")
    assert not decision.promoted and decision.champion_score == pytest.approx(0.40)
    slightly = registry.register_challenger(other, uri, 0.395, "log_loss", 3)
    assert not registry.promote_if_better(
        other, slightly, 0.395, metric="log_loss", margin=0.01
    ).promoted
    better = registry.register_challenger(other, uri, 0.30, "log_loss", 4)
    assert registry.promote_if_better(other, better, 0.30, metric="log_loss", margin=0.01).promoted
    champion = mlflow.MlflowClient().get_model_version_by_alias("it-logloss", "champion")
    assert str(champion.version) == better


def test_monitoring_flags_are_tagged_and_logged_per_round(loop, client) -> None:
    for info in loop["rounds"].values():
        run = client.get_run(info["run_id"]).data
        result = info["monitor"]
        assert {c.name for c in result.checks} == {
            "sampling_bias",
            "class_balance",
            "demographic_parity",
            "group_recall",
            "calibration",
        }
        for check in result.checks:
            assert run.tags[f"labelwise.flag.{check.name}"] == str(check.flagged).lower()
            assert run.metrics[f"monitor.{check.name}"] == pytest.approx(check.value)
    # round 3 (shuffled labels) is badly calibrated on the holdout: the ECE check must flag it
    assert loop["rounds"][3]["monitor"].get("calibration").flagged


def test_drift_report_flags_the_shifted_feature_and_not_the_unshifted_one(tmp_path) -> None:
    rng = np.random.default_rng(0)
    reference = pd.DataFrame({"shifted": rng.normal(size=400), "steady": rng.normal(size=400)})
    current = pd.DataFrame(
        {"shifted": rng.normal(loc=1.5, size=400), "steady": rng.normal(size=400)}
    )
    check = monitor.drift_report(
        reference,
        current,
        name="production_drift",
        drift_share=0.5,
        html_path=tmp_path / "drift.html",
    )
    assert check.extra["drifted_columns"] == ["shifted"]
    assert check.flagged and check.value == pytest.approx(0.5)
    assert check.report.stat().st_size > 10_000
    calm = monitor.drift_report(
        reference,
        reference.sample(frac=1, random_state=1),
        name="production_drift",
        drift_share=0.5,
    )
    assert calm.extra["drifted_columns"] == [] and not calm.flagged


@pytest.mark.parametrize("column_threshold", [None, 0.2])
@pytest.mark.parametrize("sizes", [(300, 3000), (2500, 4000)])  # p-value tests, then distances
def test_drift_scores_are_the_same_with_and_without_the_html_report(
    tmp_path, column_threshold, sizes
):
    # without a report only the per-column tests run; their values must be the preset's
    rng = np.random.default_rng(3)

    def frame(n: int, shift: float) -> pd.DataFrame:
        y = rng.normal(size=n)
        y[::7] = np.nan  # missing values are left out of the test, as the preset does
        return pd.DataFrame(
            {
                "x": rng.normal(loc=shift, size=n),
                "y": y,
                "colour": rng.choice(["red", "blue", "green"], p=[0.5, 0.3, 0.2], size=n),
            }
        )

    reference, current = frame(sizes[0], 0.0), frame(sizes[1], 0.3)
    args = {"name": "d", "drift_share": 0.3, "column_threshold": column_threshold}
    plain = monitor.drift_report(reference, current, categorical=["colour"], **args)
    html = monitor.drift_report(
        reference, current, categorical=["colour"], html_path=tmp_path / "d.html", **args
    )
    assert plain.report is None and html.report.exists()
    assert plain.extra["column_scores"] == pytest.approx(html.extra["column_scores"])
    assert plain.extra["column_scores"].keys() == {"x", "y", "colour"}
    assert plain.extra["drifted_columns"] == html.extra["drifted_columns"]
    assert (plain.flagged, plain.value) == (html.flagged, html.value)


def test_history_table_reads_rounds_back_from_mlflow(loop) -> None:
    frame = history.round_history(loop["tracking"])
    assert frame["round"].tolist() == [1, 2, 3]
    assert frame["n_labels"].tolist() == [15, 300, 300]
    assert frame["champion"].tolist() == ["1", "2", "2"]
    assert frame["promoted"].tolist() == [True, True, False]
    assert frame["macro_f1"].tolist() == pytest.approx(
        [loop["rounds"][r]["metrics"]["macro_f1"] for r in (1, 2, 3)]
    )


def test_history_command_prints_the_rounds(loop) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    result = CliRunner().invoke(
        app, ["history", "--params", str(loop["params_file"]), "--metrics", "macro_f1"]
    )
    assert result.exit_code == 0, result.output
    assert "labelwise history" in result.output
    for r in (1, 2, 3):
        assert f"{loop['rounds'][r]['metrics']['macro_f1']:.4f}" in result.output
    assert "v2" in result.output and "(new)" in result.output


@pytest.mark.parametrize(
    ("kind", "calibration"), [("forest", "isotonic"), ("xgboost", "temperature")]
)
def test_tree_models_and_wrappers_log_register_and_load_as_champion(
    loop, tmp_path, kind, calibration
) -> None:
    # MLflow saves scikit-learn models with skops, which rejects trees, boosters and our
    # wrappers unless they are listed as trusted: log_model must list them
    import mlflow

    from tasks.settings import ModelSettings

    trk = loop["tracking"]
    other = tracking.Tracking(
        trk.tracking_uri, trk.experiment_name, trk.experiment_id, f"it-{kind}", "champion"
    )
    pool, pool_y, holdout, _ = _data()
    settings = ModelSettings(kind=kind, calibration=calibration, params={"n_estimators": 10})
    model = models.fit_model(models.build_model(settings, 0), pool, pool_y)
    # a separate experiment, so the loop's experiment keeps exactly its four runs
    experiment_id = mlflow.MlflowClient().create_experiment(
        f"adhoc-{kind}", artifact_location=(tmp_path / "artifacts").as_uri()
    )
    with mlflow.start_run(experiment_id=experiment_id):
        info = tracking.log_model(model, holdout)
        version = registry.register_challenger(other, info.model_uri, 0.5, "macro_f1", 1)
        assert registry.promote_if_better(other, version, 0.5, metric="macro_f1").promoted
    loaded, loaded_version = registry.load_champion(other)
    assert loaded_version == version
    np.testing.assert_array_equal(loaded.predict(holdout), model.predict(holdout))
    np.testing.assert_allclose(loaded.predict_proba(holdout), model.predict_proba(holdout))
