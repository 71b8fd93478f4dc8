"""The production profile as local processes (``make prod-local``): Prefect server and
MLflow server on the PostgreSQL server at 127.0.0.1:5432 (databases unique to this session,
dropped afterwards), the loop deployed to a process work pool and run by a worker.

Fake secrets are in the environment of every process (a Label Studio token, the database
password in both servers' database URLs; trust auth ignores it): after the run, neither may be
found in a dump of both databases, in the MLflow artifacts or in any log or file of the run.
"""

from __future__ import annotations

import subprocess
import uuid

import pytest

from flows.runtime.prod_local import ProdConfig
from tasks.loop import demo as project
from tasks.loop import rounds
from tests.integration.prod_stack import demo_settings, psql

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

SUFFIX = uuid.uuid4().hex[:10]
LS_TOKEN = f"lw-fake-ls-token-{SUFFIX}"
PG_PASSWORD = f"lw-fake-pg-password-{SUFFIX}"


def _psql(database: str, query: str) -> str:
    return psql(ProdConfig(), database, query)


@pytest.fixture(scope="module")
def prod_run(tmp_path_factory):
    """The stack on free ports, one deployment run of one round; everything stopped and both
    databases dropped afterwards."""
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.runtime.prod_local import (
        ProdConfig,
        deploy_to_pool,
        drop_databases,
        prod_services,
        production_settings,
    )

    root = tmp_path_factory.mktemp("prod")
    config = ProdConfig(
        pg_password=PG_PASSWORD,
        prefect_db=f"lw_it_{SUFFIX}_prefect",
        mlflow_db=f"lw_it_{SUFFIX}_mlflow",
        work_pool=f"it-pool-{SUFFIX}",
    ).on_free_ports()
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.chdir(root)
            patch.setenv("LABEL_STUDIO_API_KEY", LS_TOKEN)
            patch.setenv("POSTGRES_PASSWORD", PG_PASSWORD)
            with prod_services(config, root / "stack", timeout=180, query_seconds=1):
                settings = production_settings(demo_settings(root, "it-prod"), config.mlflow_url)
                project.seed_project(settings)
                deploy_to_pool(settings, config.work_pool, config.prefect_api_url, root)
                with temporary_settings({PREFECT_API_URL: config.prefect_api_url}):
                    flow_run = run_deployment(
                        "labelwise-loop/it",
                        parameters={"rounds_this_run": 1},
                        timeout=200,
                        poll_interval=2,
                    )
        yield config, settings, flow_run, root
    finally:
        drop_databases(config, [config.prefect_db, config.mlflow_db])


def test_a_deployment_run_by_the_worker_completes_with_its_state_in_postgres(prod_run):
    config, settings, flow_run, _ = prod_run
    assert flow_run.state.is_completed(), flow_run.state
    assert rounds.load_round(settings, 1).status == "complete"
    prefect_row = _psql(
        config.prefect_db,
        f"SELECT r.state_type, w.name FROM flow_run r JOIN deployment d ON r.deployment_id = d.id"
        f" JOIN work_queue q ON d.work_queue_id = q.id JOIN work_pool w ON q.work_pool_id = w.id"
        f" WHERE r.id = '{flow_run.id}'",
    )
    assert prefect_row == f"COMPLETED|{config.work_pool}"
    mlflow_runs = _psql(
        config.mlflow_db,
        "SELECT t.value, r.status FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid"
        " WHERE t.key = 'labelwise.kind' ORDER BY t.value",
    ).splitlines()
    assert mlflow_runs == ["loop|FINISHED", "round|FINISHED"]


def test_no_secret_of_the_environment_reaches_the_stores_or_the_logs(prod_run):
    config, _, flow_run, root = prod_run
    dumps = {
        name: subprocess.run(
            ["pg_dump", "-h", "127.0.0.1", "-U", "postgres", name],
            capture_output=True,
            check=True,
        ).stdout
        for name in (config.prefect_db, config.mlflow_db)
    }
    # the scan sees the run's record: its id (Prefect) and its round run's params (MLflow)
    assert str(flow_run.id).encode() in dumps[config.prefect_db]
    assert b"strategy.batch_size" in dumps[config.mlflow_db]
    files = [path for path in root.rglob("*") if path.is_file()]
    assert any(path.name == "worker.log" for path in files)
    assert any("artifacts" in path.parts for path in files)
    for secret in (LS_TOKEN, PG_PASSWORD):
        for name, dump in dumps.items():
            assert secret.encode() not in dump, f"{secret} in database {name}"
        for path in files:
            assert secret.encode() not in path.read_bytes(), f"{secret} in {path}"
