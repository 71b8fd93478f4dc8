"""Helpers for the production-profile fault tests: the stack's servers on PostgreSQL, a
restartable worker, a killer that takes a worker down as a dead machine would (SIGKILL to it and
every process under it), a pause failpoint to hold a round where a fault lands, and waits on
Prefect flow runs."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import psutil

from flows.runtime.prod_local import (
    ProdConfig,
    drop_databases,
    ensure_databases,
    ensure_work_pool,
    start_mlflow_server,
    start_prefect_server,
    start_worker,
)
from flows.runtime.services import Service, stop, wait_healthy
from tasks.failpoints import DIR_VARIABLE, VARIABLE, signal_path
from tasks.settings import Settings
from tests.conftest import merged, project_settings


def unique_config(**fields: Any) -> ProdConfig:
    """A config with databases, work pool and ports unique to this test module."""
    suffix = uuid.uuid4().hex[:10]
    return ProdConfig(
        prefect_db=f"lw_it_{suffix}_prefect",
        mlflow_db=f"lw_it_{suffix}_mlflow",
        work_pool=f"it-pool-{suffix}",
        **fields,
    ).on_free_ports()


@contextmanager
def servers(config: ProdConfig, work_dir: Path) -> Iterator[dict[str, Service]]:
    """Prefect and MLflow servers on ``config``'s databases and the work pool; the servers are
    stopped and the databases dropped on exit."""
    ensure_databases(config)
    try:
        with ExitStack() as stack:
            services = {}
            for start in (start_prefect_server, start_mlflow_server):
                service = start(config, work_dir)
                stack.callback(lambda s=service: stop(services.get(s.name, s)))
                services[service.name] = service
            wait_healthy(list(services.values()), 180)
            ensure_work_pool(config.work_pool, config.prefect_api_url)
            yield services
    finally:
        drop_databases(config, [config.prefect_db, config.mlflow_db])


@contextmanager
def worker(config: ProdConfig, work_dir: Path, env: dict[str, str] | None = None):
    """A worker on the pool (polling every second), healthy; stopped on exit."""
    service = start_worker(config, work_dir, query_seconds=1, env=env)
    try:
        wait_healthy([service], 120)
        yield service
    finally:
        stop(service)


def kill_tree(service: Service) -> list[int]:
    """SIGKILL the service's process and every process under it (flow-run subprocesses start
    their own sessions, so a process-group kill would miss them); returns the pids killed."""
    root = psutil.Process(service.process.pid)
    procs = [root, *root.children(recursive=True)]
    for proc in procs:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=10)
    service.process.poll()
    return [proc.pid for proc in procs]


def wait_for(condition: Callable[[], Any], timeout: float, what: str, poll: float = 1.0) -> Any:
    """Poll ``condition`` until it returns something truthy; ``TimeoutError`` naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise TimeoutError(f"waited {timeout:.0f} s for {what}")


class Pause:
    """A ``pause`` failpoint at ``point`` for the processes started with :attr:`env` (a worker
    passes it on to its flow runs), signalling in ``folder``."""

    def __init__(self, point: str, folder: Path) -> None:
        self.point, self.folder = point, Path(folder)
        self.env = {VARIABLE: f"{point}=pause", DIR_VARIABLE: str(self.folder)}

    def signal(self, event: str) -> Path:
        with mock.patch.dict(os.environ, {DIR_VARIABLE: str(self.folder)}):
            return signal_path(self.point, event)

    def wait_reached(self, timeout: float) -> None:
        """Until a process pauses at the point."""
        reached = self.signal("reached")
        wait_for(reached.exists, timeout, f"failpoint {self.point} reached", poll=0.1)

    def release(self) -> None:
        """Let the paused process go on (and any that reaches the point later pass it)."""
        release = self.signal("release")
        release.parent.mkdir(parents=True, exist_ok=True)
        release.touch()


@contextmanager
def paused_at(point: str, folder: Path) -> Iterator[Pause]:
    """A :class:`Pause`, released on exit whatever happened, so no process is left paused."""
    pause = Pause(point, folder)
    try:
        yield pause
    finally:
        pause.release()


def deployment_runs(api_url: str, deployment_id: Any) -> list[Any]:
    """Every flow run of the deployment, oldest first."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.client.schemas.sorting import FlowRunSort
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api_url}):
        with get_client(sync_client=True) as client:
            return client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
                sort=FlowRunSort.EXPECTED_START_TIME_ASC,
            )


def psql(config: ProdConfig, database: str, query: str) -> str:
    out = subprocess.run(
        [
            "psql",
            "-h",
            config.pg_host,
            "-p",
            str(config.pg_port),
            "-U",
            config.pg_user,
            "-d",
            database,
            "-tAc",
            query,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def round_runs(config: ProdConfig, project: str) -> list[str]:
    """``<round id>|<status>`` of the project's MLflow round runs in the stack's database."""
    return psql(
        config,
        config.mlflow_db,
        "SELECT t.value, r.status FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid"
        " JOIN experiments e ON e.experiment_id = r.experiment_id"
        f" WHERE t.key = 'labelwise.round_id' AND e.name = '{project}'"
        " ORDER BY t.value, r.start_time",
    ).splitlines()


def demo_settings(root: Path, name: str, **sections: dict[str, Any]) -> Settings:
    """A small simulated-annotator project (digits, 200 rows) for the fault tests, in ``root``;
    ``sections`` merged over it."""
    demo = {
        "project": {"name": name, "seed": 8},
        "strategy": {"name": "margin", "batch_size": 5},
        "loop": {
            "max_rounds": 3,
            "demo_rows": 200,
            "holdout_fraction": 0.25,
            "initial_labels": 20,
            "stop_set_size": 20,
        },
        "serve": {"cron": None, "deployment": "it"},
    }
    return project_settings(root, **merged(demo, sections))


PG_BIN = Path("/usr/lib/postgresql/15/bin")


@contextmanager
def private_postgres() -> Iterator[tuple[int, Callable[[], None]]]:
    """A PostgreSQL server of our own (initdb in a temporary folder, run as the ``postgres``
    user, trust auth on 127.0.0.1 and a free port), so that a test may restart it without
    touching the machine's shared server. Yields the port and a ``restart()``; removed on exit."""
    import shutil
    import tempfile

    from flows.runtime.services import free_port

    root = Path(tempfile.mkdtemp(prefix="lw-pg-"))
    root.chmod(0o755)
    data = root / "data"
    port = free_port()

    def as_postgres(*command: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *command],
            check=True,
            capture_output=True,
            text=True,
        )

    shutil.chown(root, "postgres", "postgres")
    as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust")
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"

    def ctl(action: str) -> None:
        as_postgres(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(root / "server.log"),
            "-o",
            options,
            "-w",
            "-m",
            "fast",
            action,
        )

    ctl("start")
    try:
        yield port, lambda: ctl("restart")
    finally:
        try:
            ctl("stop")
        finally:
            shutil.rmtree(root, ignore_errors=True)
