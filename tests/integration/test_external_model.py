"""Your own model in the real loop (``model.kind: external``): the round flow (Prefect's test
harness, MLflow on SQLite, DVC, simulated annotators, the digits demo) calls the user's
``model.predict`` instead of training, ranks the pool by its probabilities, scores it on the
holdout, retries a call that raised, and stops on a wrong answer with every label kept and the
round resumable once the function is fixed."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from tasks.data import store
from tasks.data.profile import resolve
from tasks.features.space import raw_columns
from tasks.loop import demo, rounds
from tasks.loop.labeling import truth_path
from tasks.model.metrics import evaluate_classifier
from tasks.tracking.runs import setup_tracking

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

BATCH, SEEDS = 10, 20

USER_MODEL = '''
import os, pickle
from pathlib import Path
import pandas as pd

MODEL_VERSION = "v7"


def predict(items):
    """The user's model: a pickled classifier; USER_MODE makes it fail in the ways we test."""
    mode = os.environ.get("USER_MODE", "ok")
    calls = Path(os.environ["USER_CALLS"])
    calls.write_text(calls.read_text() + "x" if calls.exists() else "x")
    if mode == "flaky" and len(calls.read_text()) == 1:
        raise ConnectionError("model server restarting")
    if mode == "wrong":
        return pd.DataFrame({"id": ["not-an-item"], "p_0": [1.0]})
    model = pickle.loads(Path(os.environ["USER_MODEL"]).read_bytes())
    probas = model.predict_proba(items[list(model.feature_names_in_)])
    columns = {f"p_{c}": probas[:, j] for j, c in enumerate(model.classes_)}
    return pd.DataFrame({"id": items["id"].to_numpy(), **columns})
'''


@pytest.fixture
def user_model(tmp_path, monkeypatch):
    """A project whose own model (a logistic regression fit on 120 known rows) lives in a
    module of the user's, ``user_model_mod:predict``."""
    module = tmp_path / "user_model_mod.py"
    module.write_text(USER_MODEL)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("user_model_mod", None)
    monkeypatch.setenv("USER_CALLS", str(tmp_path / "calls.txt"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _settings(make_settings, **model):
    return make_settings(
        project={"name": "it-external", "seed": 5},
        strategy={"name": "margin", "batch_size": BATCH},
        model={
            "kind": "external",
            "predict": "user_model_mod:predict",
            "predict_chunk_rows": 64,
            "predict_retries": 1,
            "predict_retry_delay_seconds": 0,
            **model,
        },
        monitor={"enabled": False},
        versioning={"enabled": True},
        loop={"max_rounds": 2, "demo_rows": 300, "initial_labels": SEEDS, "stop_set_size": 20},
    )


def _fit_user_model(settings, root: Path, monkeypatch) -> LogisticRegression:
    truth = pd.read_parquet(truth_path(settings))
    pool = store.read_pool(settings)
    rows = pool.merge(truth, on="id").head(120)
    features = raw_columns(resolve(settings), pool)
    model = LogisticRegression(max_iter=500).fit(rows[features], rows["label"].astype(str))
    (root / "model.pkl").write_bytes(pickle.dumps(model))
    monkeypatch.setenv("USER_MODEL", str(root / "model.pkl"))
    return model


def _margins(model: LogisticRegression, frame: pd.DataFrame) -> pd.Series:
    probas = np.sort(model.predict_proba(frame[list(model.feature_names_in_)]), axis=1)
    return pd.Series(probas[:, -1] - probas[:, -2], index=frame["id"].astype(str).to_numpy())


def test_the_loop_ranks_by_the_users_model_and_scores_it_on_the_holdout(
    user_model, make_settings, monkeypatch
):
    from flows.loop import loop_flow

    settings = _settings(make_settings)
    assert demo.seed_project(settings)
    model = _fit_user_model(settings, user_model, monkeypatch)
    seeds = set(store.read_labels(settings)["id"].astype(str))
    pool = store.read_pool(settings)
    expected_first = list(
        _margins(model, pool[~pool["id"].astype(str).isin(seeds)]).nsmallest(BATCH).index
    )

    result = loop_flow(settings)

    assert result.status == "stopped" and len(result.rounds) == 2
    counts = store.read_labels(settings).groupby("round").size().to_dict()
    assert counts == {0: SEEDS, 1: BATCH, 2: BATCH}
    first = store.read_manifest(settings, 1)
    assert list(first["id"]) == expected_first  # the smallest margins of the user's model
    assert set(first["source"]) == {"margin"} and set(first["model_version"]) == {"external:v7"}
    second = store.read_manifest(settings, 2)
    assert not set(second["id"]) & (seeds | set(first["id"]))

    holdout = store.read_holdout(settings)
    probas = model.predict_proba(holdout[list(model.feature_names_in_)])
    expected = evaluate_classifier(holdout["label"].astype(str).to_numpy(), probas, model.classes_)
    state = rounds.load_round(settings, 2)
    assert state.status == "complete" and state.info["trained"] is False
    assert state.info["metrics"]["accuracy"] == pytest.approx(expected["accuracy"])
    assert state.info["metrics"]["log_loss"] == pytest.approx(expected["log_loss"])

    tracking = setup_tracking(settings)
    runs = mlflow.search_runs(
        [tracking.experiment_id], filter_string="tags.`labelwise.kind` = 'round'"
    )
    assert len(runs) == 2
    assert set(runs["params.model.external_version"]) == {"v7"}
    assert runs["metrics.accuracy"].to_numpy() == pytest.approx([expected["accuracy"]] * 2)
    client = mlflow.MlflowClient()
    assert not client.search_model_versions(f"name='{tracking.registered_model}'")


def test_a_call_that_raised_is_retried_by_the_flow(user_model, make_settings, monkeypatch):
    from flows.round import round_flow

    settings = _settings(make_settings)
    assert demo.seed_project(settings)
    _fit_user_model(settings, user_model, monkeypatch)
    monkeypatch.setenv("USER_MODE", "flaky")

    round_flow(settings, 1)

    assert rounds.load_round(settings, 1).status == "complete"
    assert len(store.read_manifest(settings, 1)) == BATCH
    eligible = len(store.read_pool(settings)) - SEEDS
    calls_in_select = -(-eligible // 64)  # ceil: the pool in chunks of 64 items
    calls = len((user_model / "calls.txt").read_text())
    assert calls > calls_in_select  # the failed first call was made again


def test_a_wrong_answer_stops_the_round_and_a_fixed_function_resumes_it(
    user_model, make_settings, monkeypatch
):
    from flows.round import round_flow

    settings = _settings(make_settings)
    assert demo.seed_project(settings)
    _fit_user_model(settings, user_model, monkeypatch)
    labels_before = store.read_labels(settings)
    monkeypatch.setenv("USER_MODE", "wrong")

    with pytest.raises(Exception, match=r"user_model_mod:predict.*'not-an-item'"):
        round_flow(settings, 1)
    calls = len((user_model / "calls.txt").read_text())
    assert calls == 1  # a wrong answer is not retried
    pd.testing.assert_frame_equal(store.read_labels(settings), labels_before)
    assert "selected" not in rounds.load_round(settings, 1).steps

    monkeypatch.setenv("USER_MODE", "ok")
    round_flow(settings, 1)
    assert rounds.load_round(settings, 1).status == "complete"
    assert len(store.read_labels(settings)) == len(labels_before) + BATCH


def test_a_registered_version_of_the_users_model_is_logged_by_the_next_round(
    user_model, make_settings, monkeypatch
):
    import yaml
    from typer.testing import CliRunner

    from flows.cli import app
    from flows.round import round_flow

    settings = _settings(make_settings)
    assert demo.seed_project(settings)
    _fit_user_model(settings, user_model, monkeypatch)
    params = user_model / "params.yaml"
    params.write_text(yaml.safe_dump(settings.model_dump(mode="json")))
    args = ["register-model", "--params", str(params), "--uri", "s3://models/user/v7"]
    result = CliRunner().invoke(app, [*args, "--round", "0", "--name", "v7"])
    assert result.exit_code == 0, result.output
    assert "registered s3://models/user/v7 as it-external-model v1" in result.output

    round_flow(settings, 1)

    tracking = setup_tracking(settings)
    version = mlflow.MlflowClient().get_model_version_by_alias(
        tracking.registered_model, "champion"
    )
    assert version.source == "s3://models/user/v7"
    assert version.tags["labelwise.trained_on_round"] == "0"
    assert version.tags["labelwise.external"] == "true"
    runs = mlflow.search_runs(
        [tracking.experiment_id], filter_string="tags.`labelwise.kind` = 'round'"
    )
    assert list(runs["params.model.registered_version"]) == ["1"]
    assert list(runs["params.model.external_version"]) == ["v7"]
