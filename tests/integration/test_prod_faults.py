"""Faults against the production profile: Prefect and MLflow servers on the PostgreSQL
server at 127.0.0.1:5432 (databases unique to this module, dropped afterwards), deployments run
by a worker from a process work pool.

- the worker and its flow-run subprocess SIGKILLed mid-round (a dead machine): the heartbeat
  automation marks the run Crashed and runs the deployment again, which finishes the round with
  no label lost or asked twice;
- two triggers of the deployment at once: one round runs, the other run ends ``Skipped``;
- the MLflow server down while a round logs: the round fails loudly, naming the server, keeps its
  labels, and a rerun with the server back finishes it in the same MLflow run.

A pause failpoint (``LABELWISE_FAILPOINTS``) holds the round at a known step until the fault is
in place, so each fault lands there however fast or slow the machine is.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pandas as pd
import pytest

from tasks.data import store
from tasks.loop import demo as project
from tasks.loop import rounds
from tests.integration.prod_stack import (
    Pause,
    demo_settings,
    deployment_runs,
    kill_tree,
    paused_at,
    round_runs,
    servers,
    unique_config,
    wait_for,
    worker,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

SEED, BATCH = 20, 5


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    config = unique_config()
    work = tmp_path_factory.mktemp("stack")
    with servers(config, work) as services:
        yield config, work, services


def _deploy(settings, config, root: Path):
    from flows.runtime.prod_local import deploy_to_pool, production_settings

    settings = production_settings(settings, config.mlflow_url)
    project.seed_project(settings)
    [deployment_id] = deploy_to_pool(settings, config.work_pool, config.prefect_api_url, root)
    return settings, deployment_id


def _trigger(config, name: str, **parameters):
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: config.prefect_api_url}):
        return run_deployment(name, parameters=parameters, timeout=0)


def _labels_per_round(settings) -> dict[int, int]:
    return store.read_labels(settings).groupby("round").size().to_dict()


def _asked(settings) -> pd.Series:
    """Every item the simulated annotators were asked to label, in order."""
    path = Path(settings.project.work_dir) / "annotation" / "simulated.parquet"
    return pd.read_parquet(path)["id"]


def test_a_worker_killed_mid_round_is_detected_and_the_round_resumes(stack, tmp_path, monkeypatch):
    config, work, _ = stack
    monkeypatch.chdir(tmp_path)
    settings, deployment_id = _deploy(
        demo_settings(tmp_path, "it-kill", serve={"heartbeat_seconds": 30}), config, tmp_path
    )
    with (
        paused_at("round-0001/after:dispatched", tmp_path / "failpoints") as hold,
        worker(config, work / "w1", env=hold.env) as first,
    ):
        killed = _trigger(config, "labelwise-loop/it", rounds_this_run=1)
        hold.wait_reached(240)  # round 1 dispatched and saved; the run waits, never released
        assert rounds.load_round(settings, 1).done("dispatched")
        asked = _asked(settings)
        assert len(asked) == SEED + BATCH  # the batch is with the annotators
        labels_before = store.read_labels(settings)
        kill_tree(first)
    assert not first.alive()
    assert rounds.load_round(settings, 1).status == "running"

    with worker(config, work / "w2"):  # a new worker, without the failpoint

        def resumed():
            runs = deployment_runs(config.prefect_api_url, deployment_id)
            after = [run for run in runs if run.id != killed.id]
            return after and after[-1].state.is_final() and after[-1]

        rerun = wait_for(resumed, 480, "the zombie automation's rerun to finish", poll=3)
    [first_run] = [
        r for r in deployment_runs(config.prefect_api_url, deployment_id) if r.id == killed.id
    ]
    assert first_run.state.is_crashed(), first_run.state
    assert "no heartbeat" in first_run.state.message
    assert rerun.state.is_completed(), rerun.state
    assert rerun.parameters["overrides"][0] == "serve.when_busy=wait"
    # the killed run's round (a subflow in the same process) is marked Crashed too
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: config.prefect_api_url}):
        with get_client(sync_client=True) as client:
            children = lambda: client.read_flow_runs(  # noqa: E731
                flow_run_filter=FlowRunFilter(
                    parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[killed.id])
                )
            )
            [child] = wait_for(
                lambda: [c for c in children() if c.state.is_final()], 120, "subflow crashed"
            )
    assert child.state.is_crashed(), child.state
    # the round finished once: nothing lost, nothing asked or stored twice
    state = rounds.load_round(settings, 1)
    assert state.status == "complete"
    labels = store.read_labels(settings)
    pd.testing.assert_frame_equal(labels.iloc[: len(labels_before)], labels_before)
    assert _labels_per_round(settings) == {0: SEED, 1: BATCH}
    assert not labels["id"].duplicated().any()
    assert _asked(settings).equals(asked)
    assert round_runs(config, "it-kill") == ["round-0001|FINISHED"]


def test_two_triggers_at_once_run_one_round(stack, tmp_path, monkeypatch):
    config, work, _ = stack
    monkeypatch.chdir(tmp_path)
    settings, deployment_id = _deploy(demo_settings(tmp_path, "it-twice"), config, tmp_path)
    with (
        paused_at("round-0001/after:selected", tmp_path / "failpoints") as hold,
        worker(config, work / "w3", env=hold.env),
    ):
        first = _trigger(config, "labelwise-loop/it", rounds_this_run=1)
        second = _trigger(config, "labelwise-loop/it", rounds_this_run=1)

        def final(at_least: int):
            def check():
                runs = {r.id: r for r in deployment_runs(config.prefect_api_url, deployment_id)}
                done = [runs[i] for i in (first.id, second.id) if runs[i].state.is_final()]
                return len(done) >= at_least and done

            return check

        # one run holds the slot at round 1; the other must end while it is held: truly at once
        hold.wait_reached(300)
        [ended] = wait_for(final(1), 300, "a run to end while round 1 is held", poll=1)
        assert ended.state.name == "Skipped", ended.state
        hold.release()
        finished = wait_for(final(2), 300, "both triggered runs to finish", poll=2)
    assert sorted(run.state.name for run in finished) == ["Completed", "Skipped"]
    skipped = next(run for run in finished if run.state.name == "Skipped")
    assert "holds the round slot" in skipped.state.message
    assert [state.round for state in rounds.round_states(settings)] == [1]
    assert _labels_per_round(settings) == {0: SEED, 1: BATCH}
    assert len(_asked(settings)) == SEED + BATCH


def test_mlflow_down_while_a_round_logs_fails_loudly_and_the_rerun_finishes_it(
    stack, tmp_path, monkeypatch, prefect_harness
):
    from flows.round import round_flow
    from flows.runtime.prod_local import production_settings, start_mlflow_server
    from flows.runtime.services import stop, wait_healthy

    config, work, services = stack
    monkeypatch.chdir(tmp_path)
    hold = Pause("round-0001/after:collected", tmp_path / "failpoints")
    for name, value in hold.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    settings = production_settings(demo_settings(tmp_path, "it-mlflow-down"), config.mlflow_url)
    project.seed_project(settings)

    stopped = []

    def stop_mlflow_at_collected():
        try:
            hold.wait_reached(240)  # the labels are in, nothing logged to MLflow yet
            stop(services["mlflow"])
            stopped.append(not services["mlflow"].alive())
        finally:
            hold.release()

    killer = threading.Thread(target=stop_mlflow_at_collected, daemon=True)
    killer.start()
    state = round_flow(settings, 1, return_state=True)
    killer.join(timeout=60)
    assert stopped == [True]  # the server was down when the round went on
    assert state.is_failed()
    with pytest.raises(Exception, match=f"MLflow tracking server {config.mlflow_url}"):
        state.result()
    failed = rounds.load_round(settings, 1)
    assert failed.done("collected") and not failed.done("trained")
    labels_after_failure = store.read_labels(settings)
    assert _labels_per_round(settings) == {0: SEED, 1: BATCH}

    services["mlflow"] = start_mlflow_server(config, work)
    wait_healthy([services["mlflow"]], 120)
    monkeypatch.delenv("LABELWISE_FAILPOINTS")
    result = round_flow(settings, 1)
    assert result.status == "complete" and result.n_labels == SEED + BATCH
    pd.testing.assert_frame_equal(store.read_labels(settings), labels_after_failure)
    assert len(_asked(settings)) == SEED + BATCH
    # one MLflow run for the round, finished, with one value per metric at the round's step
    assert round_runs(config, "it-mlflow-down") == ["round-0001|FINISHED"]
    import mlflow

    client = mlflow.MlflowClient(config.mlflow_url)
    run_id = rounds.load_round(settings, 1).info["mlflow_run_id"]
    from tasks.data.profile import resolve

    history = client.get_metric_history(run_id, resolve(settings).evaluate.metric)
    assert len(history) == 1
