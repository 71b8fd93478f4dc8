"""The production profile as local processes (``make prod-local``): Prefect server and
MLflow server on a PostgreSQL server, a process work pool and a worker.

Configuration comes from the environment, with the variable names of ``.env.example`` and
``docker-compose.yml``; credentials reach the servers through their environment only (never the
command line, ``params.yaml`` or a flow's parameters). Processes are started and stopped with
:mod:`flows.runtime.services`.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import typer

from flows.runtime.services import (
    HOST,
    Service,
    ServiceError,
    _bin,
    free_port,
    start_service,
    stop,
    wait_healthy,
)
from tasks.settings import Settings, load_settings


@dataclass(frozen=True)
class ProdConfig:
    """Where the production profile's state lives and which ports it serves on."""

    pg_host: str = "127.0.0.1"
    pg_port: int = 5432
    pg_user: str = "postgres"
    pg_password: str = field(default="", repr=False)
    prefect_db: str = "labelwise_prefect"
    mlflow_db: str = "labelwise_mlflow"
    prefect_port: int = 4200
    mlflow_port: int = 5000
    worker_port: int = 8090
    work_pool: str = "labelwise-process"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ProdConfig:
        """Read ``POSTGRES_*``, ``PREFECT_DB``, ``MLFLOW_DB``, ``*_PORT`` and ``WORK_POOL``."""
        env = os.environ if env is None else env
        default = cls()
        return cls(
            pg_host=env.get("POSTGRES_HOST", default.pg_host),
            pg_port=int(env.get("POSTGRES_PORT", default.pg_port)),
            pg_user=env.get("POSTGRES_USER", default.pg_user),
            pg_password=env.get("POSTGRES_PASSWORD", default.pg_password),
            prefect_db=env.get("PREFECT_DB", default.prefect_db),
            mlflow_db=env.get("MLFLOW_DB", default.mlflow_db),
            prefect_port=int(env.get("PREFECT_PORT", default.prefect_port)),
            mlflow_port=int(env.get("MLFLOW_PORT", default.mlflow_port)),
            worker_port=int(env.get("WORKER_PORT", default.worker_port)),
            work_pool=env.get("WORK_POOL", default.work_pool),
        )

    def on_free_ports(self) -> ProdConfig:
        return replace(
            self, prefect_port=free_port(), mlflow_port=free_port(), worker_port=free_port()
        )

    def database_url(self, database: str, driver: str) -> str:
        """A SQLAlchemy URL, e.g. ``driver="asyncpg"`` for Prefect, ``"psycopg"`` for MLflow."""
        auth = quote(self.pg_user, safe="")
        if self.pg_password:
            auth += ":" + quote(self.pg_password, safe="")
        return f"postgresql+{driver}://{auth}@{self.pg_host}:{self.pg_port}/{database}"

    @property
    def prefect_api_url(self) -> str:
        return f"http://{HOST}:{self.prefect_port}/api"

    @property
    def mlflow_url(self) -> str:
        return f"http://{HOST}:{self.mlflow_port}"


def _admin_connection(config: ProdConfig):
    import psycopg

    return psycopg.connect(
        host=config.pg_host,
        port=config.pg_port,
        user=config.pg_user,
        password=config.pg_password or None,
        dbname="postgres",
        autocommit=True,
    )


def ensure_databases(config: ProdConfig) -> list[str]:
    """Create the Prefect and MLflow databases if missing; returns those created."""
    from psycopg import sql

    created = []
    with _admin_connection(config) as conn:
        for name in (config.prefect_db, config.mlflow_db):
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if exists.fetchone() is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                created.append(name)
    return created


def drop_databases(config: ProdConfig, names: list[str]) -> None:
    """Drop ``names`` (closing their open connections first)."""
    from psycopg import sql

    with _admin_connection(config) as conn:
        for name in names:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def start_prefect_server(config: ProdConfig, work_dir: Path) -> Service:
    """``prefect server start`` on the Prefect database (URL in its environment only)."""
    home = (Path(work_dir) / "prefect").resolve()
    home.mkdir(parents=True, exist_ok=True)
    return start_service(
        "prefect",
        [_bin("prefect"), "server", "start", "--host", HOST, "--port", str(config.prefect_port)],
        port=config.prefect_port,
        health_path="/api/health",
        log=home / "server.log",
        env={
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": config.database_url(
                config.prefect_db, "asyncpg"
            ),
        },
    )


def start_mlflow_server(config: ProdConfig, work_dir: Path) -> Service:
    """``mlflow server`` on the MLflow database, artifacts proxied to ``<work_dir>/mlflow/artifacts``."""
    root = (Path(work_dir) / "mlflow").resolve()
    (root / "artifacts").mkdir(parents=True, exist_ok=True)
    return start_service(
        "mlflow",
        [
            _bin("mlflow"),
            "server",
            "--artifacts-destination",
            str(root / "artifacts"),
            "--host",
            HOST,
            "--port",
            str(config.mlflow_port),
            "--workers",
            "1",
        ],
        port=config.mlflow_port,
        health_path="/health",
        log=root / "server.log",
        env={"MLFLOW_BACKEND_STORE_URI": config.database_url(config.mlflow_db, "psycopg")},
    )


def ensure_work_pool(work_pool: str, api_url: str) -> None:
    """Create the process work pool (Prefect's default job template) on the Prefect API at
    ``api_url`` unless it exists."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.workers.process import ProcessWorker

    with temporary_settings({PREFECT_API_URL: api_url}):
        with get_client(sync_client=True) as client:
            try:
                client.create_work_pool(
                    WorkPoolCreate(
                        name=work_pool,
                        type="process",
                        base_job_template=ProcessWorker.get_default_base_job_template(),
                    )
                )
            except ObjectAlreadyExists:
                pass


def start_worker(
    config: ProdConfig,
    work_dir: Path,
    query_seconds: int = 5,
    env: Mapping[str, str] | None = None,
) -> Service:
    """``prefect worker start`` on the pool; its health check serves on ``worker_port``. Flow
    runs start in subprocesses of the worker (which inherit ``env``), in the deployment's
    working directory."""
    home = (Path(work_dir) / "prefect").resolve()
    home.mkdir(parents=True, exist_ok=True)
    return start_service(
        "worker",
        [
            _bin("prefect"),
            "worker",
            "start",
            "--pool",
            config.work_pool,
            "--type",
            "process",
            "--name",
            f"{config.work_pool}-worker",
            "--with-healthcheck",
        ],
        port=config.worker_port,
        health_path="/health",
        log=home / "worker.log",
        env={
            "PREFECT_HOME": str(home),
            "PREFECT_API_URL": config.prefect_api_url,
            "PREFECT_WORKER_WEBSERVER_HOST": HOST,
            "PREFECT_WORKER_WEBSERVER_PORT": str(config.worker_port),
            "PREFECT_WORKER_QUERY_SECONDS": str(query_seconds),
            **(env or {}),
        },
    )


@contextmanager
def prod_services(
    config: ProdConfig, work_dir: Path, timeout: float = 180.0, query_seconds: int = 5
) -> Iterator[list[Service]]:
    """Databases, Prefect server, MLflow server, work pool and worker, healthy; all processes
    are stopped on exit (the databases stay: they are the production state)."""
    ensure_databases(config)
    with ExitStack() as stack:
        servers = []
        for start in (start_prefect_server, start_mlflow_server):
            service = start(config, work_dir)
            stack.callback(stop, service)
            servers.append(service)
        wait_healthy(servers, timeout)
        ensure_work_pool(config.work_pool, config.prefect_api_url)
        worker = start_worker(config, work_dir, query_seconds)
        stack.callback(stop, worker)
        wait_healthy([worker], timeout)
        yield [*servers, worker]


# ---------------------------------------------------------------- make prod-local

app = typer.Typer(add_completion=False)


def production_settings(settings: Settings, mlflow_url: str) -> Settings:
    """``settings`` with MLflow tracking through the profile's MLflow server."""
    tracking = settings.tracking.model_copy(update={"tracking_uri": mlflow_url})
    return settings.model_copy(update={"tracking": tracking})


def deploy_to_pool(
    settings: Settings, work_pool: str, api_url: str, working_dir: Path
) -> list[Any]:
    """Create or update the ``serve.flow`` deployment (as ``labelwise serve`` builds it) on the
    process work pool of the Prefect API at ``api_url``; its runs start in ``working_dir`` and
    send heartbeats, which the project's zombie automation watches. Returns the deployment ids."""
    from prefect import deploy
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.deploy import HEARTBEAT_VARIABLE, build_deployments, ensure_zombie_automation
    from flows.slot import ensure_limit

    job_variables: dict[str, Any] = {"working_dir": str(Path(working_dir).resolve())}
    if settings.serve.heartbeat_seconds:
        job_variables["env"] = {HEARTBEAT_VARIABLE: str(settings.serve.heartbeat_seconds)}
    with temporary_settings({PREFECT_API_URL: api_url}):
        ensure_limit(settings)
        ensure_zombie_automation(settings)
        deployments = build_deployments(settings)
        for deployment in deployments:
            deployment.job_variables = dict(job_variables)
        return deploy(
            *deployments,
            work_pool_name=work_pool,
            build=False,
            push=False,
            print_next_steps_message=False,
            ignore_warnings=True,
        )


def _load_dotenv(path: Path) -> None:
    """``.env`` (as docker compose reads it) fills variables the environment does not set."""
    if path.exists():
        from dotenv import load_dotenv

        load_dotenv(path, override=False)


@app.command()
def main(
    params: Path = typer.Option(Path("params.yaml"), "--params", help="settings file"),
    env_file: Path = typer.Option(Path(".env"), "--env-file", help="variables, as for compose"),
    timeout: float = typer.Option(180.0, "--timeout", help="seconds to wait for each service"),
    deploy_only: bool = typer.Option(
        False,
        "--deploy-only",
        help="only seed the project and deploy to WORK_POOL of the running PREFECT_API_URL, "
        "tracking to MLFLOW_TRACKING_URI (docker-compose's deploy service)",
    ),
) -> None:
    """Start the production profile locally and keep it up until Ctrl-C."""
    import psycopg
    from rich.console import Console

    from flows.deploy import deployment_name
    from flows.runtime.environment import setup_environment
    from tasks.loop import demo as project

    console = Console()
    _load_dotenv(env_file)
    config = ProdConfig.from_env()
    settings = load_settings(params)
    setup_environment(settings)
    if deploy_only:
        settings = production_settings(settings, os.environ["MLFLOW_TRACKING_URI"])
        project.seed_project(settings)
        ensure_work_pool(config.work_pool, os.environ["PREFECT_API_URL"])
        deploy_to_pool(settings, config.work_pool, os.environ["PREFECT_API_URL"], Path.cwd())
        return
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    work = Path(settings.project.work_dir).resolve()
    console.print(f"starting Prefect, MLflow and a worker on PostgreSQL {config.pg_host}...")
    try:
        with prod_services(config, work, timeout) as services:
            settings = production_settings(settings, config.mlflow_url)
            project.seed_project(settings)
            deploy_to_pool(settings, config.work_pool, config.prefect_api_url, Path.cwd())
            for service in services:
                console.print(f"{service.name:8} {service.url}   [dim]log: {service.log}[/]")
            name = f"labelwise-{settings.serve.flow}/{deployment_name(settings)}"
            console.print(
                f"deployment {name!r} on work pool {config.work_pool!r}; run it with\n"
                f"  PREFECT_API_URL={config.prefect_api_url} {Path(sys.executable).parent}/"
                f"prefect deployment run {name!r}\nCtrl-C stops every process.",
                soft_wrap=True,
            )
            while all(service.alive() for service in services):
                time.sleep(1)
            dead = [s.name for s in services if not s.alive()]
            console.print(f"[red]{', '.join(dead)} exited; stopping the rest[/]")
            raise typer.Exit(1)
    except KeyboardInterrupt:
        console.print("stopped")
    except ServiceError as exc:
        console.print(
            f"[red]{exc}[/]\nhint: free the port or set PREFECT_PORT / MLFLOW_PORT / WORKER_PORT"
        )
        raise typer.Exit(1) from None
    except psycopg.OperationalError as exc:
        console.print(
            f"[red]PostgreSQL at {config.pg_host}:{config.pg_port}: {str(exc).strip()}[/]\n"
            "hint: start it, or set POSTGRES_HOST / POSTGRES_PORT / POSTGRES_USER in .env"
        )
        raise typer.Exit(1) from None


if __name__ == "__main__":
    app()
