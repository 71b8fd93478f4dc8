"""PostgreSQL restarted in the middle of a served loop: the Prefect server, the MLflow
server and the loop run through it, and the loop finishes every round with each label once.

The test runs its own PostgreSQL server (initdb in a temporary folder) so that restarting it
disturbs nothing else on the machine; the stack is the production profile's (``make
prod-local``): Prefect and MLflow servers on it, a worker on a process pool. The loop pauses at a
failpoint in round 2 (its labels collected) until the restart is done."""

from __future__ import annotations

import pytest

from tasks.data import store
from tasks.loop import demo as project
from tasks.loop import rounds
from tests.integration.prod_stack import (
    demo_settings,
    deployment_runs,
    paused_at,
    private_postgres,
    psql,
    round_runs,
    servers,
    unique_config,
    wait_for,
    worker,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]


def _connections(config, database: str) -> int:
    query = f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{database}'"
    return int(psql(config, "postgres", query))


def test_postgres_restarted_mid_loop_and_the_loop_finishes(tmp_path, monkeypatch):
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.runtime.prod_local import deploy_to_pool, production_settings

    monkeypatch.chdir(tmp_path)
    with private_postgres() as (port, restart):
        config = unique_config(pg_port=port)
        with servers(config, tmp_path / "stack"):
            settings = production_settings(
                demo_settings(tmp_path, "it-pg-restart", serve={"rounds_per_run": None}),
                config.mlflow_url,
            )
            project.seed_project(settings)
            [deployment_id] = deploy_to_pool(
                settings, config.work_pool, config.prefect_api_url, tmp_path
            )
            with (
                paused_at("round-0002/after:collected", tmp_path / "failpoints") as hold,
                worker(config, tmp_path / "worker", env=hold.env),
            ):
                with temporary_settings({PREFECT_API_URL: config.prefect_api_url}):
                    run = run_deployment("labelwise-loop/it", timeout=0)
                hold.wait_reached(300)
                assert rounds.load_round(settings, 2).done("collected")
                # both servers hold connections; the restart cuts every one of them
                assert _connections(config, config.prefect_db) > 0
                assert _connections(config, config.mlflow_db) > 0
                started = psql(config, "postgres", "SELECT pg_postmaster_start_time()")
                restart()
                assert psql(config, "postgres", "SELECT pg_postmaster_start_time()") != started
                hold.release()  # round 2 goes on against the restarted server

                def finished():
                    [now] = [
                        r
                        for r in deployment_runs(config.prefect_api_url, deployment_id)
                        if r.id == run.id
                    ]
                    return now.state.is_final() and now

                done = wait_for(finished, 400, "the loop run to finish", poll=2)
            assert done.state.is_completed(), done.state
            assert [s.status for s in rounds.round_states(settings)] == ["complete"] * 3
            labels = store.read_labels(settings)
            assert labels.groupby("round").size().to_dict() == {0: 20, 1: 5, 2: 5, 3: 5}
            assert not labels["id"].duplicated().any()
            assert round_runs(config, "it-pg-restart") == [
                f"round-000{n}|FINISHED" for n in (1, 2, 3)
            ]
