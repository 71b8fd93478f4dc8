"""``make prod-local`` (issue 8): the production profile as local processes. Prefect and MLflow
on PostgreSQL, the loop flow deployed to a process work pool and run by a worker; Ctrl-C stops
every process (the databases, artifacts and DVC remote stay).

    make prod-local                       # params.yaml, ports 4200 / 5000
    make prod-local ARGS="--params my.yaml"
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import typer

from tasks.prod_local import ProdConfig, ensure_work_pool, prod_services
from tasks.services import ServiceError
from tasks.settings import Settings, load_settings

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
    from flows.environment import setup_environment
    from tasks import project

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
