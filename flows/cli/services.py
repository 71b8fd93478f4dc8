"""``labelwise ui``, ``labelwise serve`` and ``labelwise annotation up``: the servers a project runs with."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from flows.cli.common import (
    PARAMS,
    SETS,
    console,
    fail,
    interrupt,
    load_or_fail,
)


def ui_command(
    params: Path = PARAMS,
    overrides: list[str] = SETS,
    prefect_port: int = typer.Option(4200, "--prefect-port", help="Prefect server port"),
    mlflow_port: int = typer.Option(5000, "--mlflow-port", help="MLflow UI port"),
    timeout: float = typer.Option(180.0, "--timeout", help="seconds to wait for both to be up"),
) -> None:
    """Start the Prefect server and the MLflow UI on localhost (project stores); Ctrl-C stops both."""
    import signal
    import time

    from flows.runtime.services import ServiceError, ui_services

    settings = load_or_fail(params, overrides)
    # Ctrl-C (and SIGTERM, e.g. from a supervisor) stop both services, even where the shell
    # started this process with SIGINT ignored.
    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    console.print("starting the Prefect server and the MLflow UI (up to a minute)...")
    try:
        with ui_services(settings, prefect_port, mlflow_port, timeout) as services:
            for service in services:
                console.print(f"{service.name:8} {service.url}   [dim]log: {service.log}[/]")
            console.print("[dim]Ctrl-C stops both[/]")
            while all(service.alive() for service in services):
                time.sleep(1)
            dead = [s for s in services if not s.alive()]
            fail(f"{dead[0].name} stopped unexpectedly", f"see {dead[0].log}")
    except ServiceError as exc:
        fail(str(exc), "pick free ports with --prefect-port / --mlflow-port")
    except KeyboardInterrupt:
        console.print("stopped both services")


def serve_command(
    params: Path = PARAMS,
    overrides: list[str] = SETS,
    prefect_port: int = typer.Option(
        4200,
        "--prefect-port",
        help="port of the Prefect server started when PREFECT_API_URL is unset",
    ),
    timeout: float = typer.Option(180.0, "--timeout", help="seconds to wait for that server"),
) -> None:
    """Serve the loop (or round) flow as a Prefect deployment on serve.cron, runnable from the
    Prefect UI, API or CLI with parameter overrides; Ctrl-C stops it. Without PREFECT_API_URL, a
    Prefect server on the project's store (PREFECT_HOME under project.work_dir) is started too."""
    import os
    import signal

    from flows.runtime.environment import setup_environment
    from flows.runtime.services import ServiceError, start_prefect, stop, wait_healthy

    settings = load_or_fail(params, overrides)
    setup_environment(settings)
    from tasks.loop.demo import seed_project

    try:  # as `labelwise run`: a fresh project gets the demo dataset and its seed labels
        if seed_project(settings):
            console.print(f"new project in {settings.project.data_dir}/: {settings.loop.dataset}")
    except Exception as exc:
        fail(f"{type(exc).__name__}: {exc}", "check the loop and data sections of params.yaml")
    signal.signal(signal.SIGINT, interrupt)  # also where the shell started us ignoring SIGINT
    signal.signal(signal.SIGTERM, interrupt)
    server = None
    try:
        if not os.environ.get("PREFECT_API_URL"):
            console.print("starting the Prefect server (up to a minute)...")
            try:
                server = start_prefect(Path(settings.project.work_dir), prefect_port)
                wait_healthy([server], timeout)
            except ServiceError as exc:
                fail(str(exc), "pick a free port with --prefect-port, or set PREFECT_API_URL")
            os.environ["PREFECT_API_URL"] = f"{server.url}/api"
        from flows.deploy import deployment_name, serve

        name = f"labelwise-{settings.serve.flow}/{deployment_name(settings)}"
        schedule = f"cron {settings.serve.cron!r}" if settings.serve.cron else "no schedule"
        console.print(f"serving {name} ({schedule}) on {os.environ['PREFECT_API_URL']}")
        if server is not None:
            console.print(f"Prefect UI: {server.url}   [dim]log: {server.log}[/]")
        console.print(
            f"run it now: PREFECT_API_URL={os.environ['PREFECT_API_URL']} "
            f"{Path(sys.executable).parent}/prefect deployment run '{name}'"
            + (" --param rounds_this_run=1" if settings.serve.flow == "loop" else ""),
            soft_wrap=True,
            markup=False,
        )
        console.print("[dim]Ctrl-C stops it[/]")
        serve(settings)
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None:
            stop(server)
    console.print("stopped serving")


annotation_app = typer.Typer(help="Annotation: a local Label Studio server.", no_args_is_help=True)


@annotation_app.command("up")
def annotation_up(
    port: int = typer.Option(8080, "--port", help="port to serve on (must be free)"),
    venv: Path | None = typer.Option(
        None, "--venv", help="Label Studio's own venv (default: <work_dir>/label-studio-venv)"
    ),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="its database and uploads (default: <work_dir>/label-studio)"
    ),
    params: Path = PARAMS,
    overrides: list[str] = SETS,
) -> None:
    """Install Label Studio in its own venv (first time: a few minutes), start it headless and
    print its URL, login and the environment variables the label_studio backend reads."""
    import signal
    import sys
    import time

    from tasks.annotation.server import LABEL_STUDIO_VERSION, ServerError, install, local_server

    settings = load_or_fail(params, overrides)
    work_dir = Path(settings.project.work_dir).resolve()
    venv = venv or work_dir / "label-studio-venv"
    data_dir = data_dir or work_dir / "label-studio"
    try:
        console.print(f"installing label-studio=={LABEL_STUDIO_VERSION} into {venv} (if needed)")
        install(venv)
        server = local_server(venv, data_dir, port)
        console.print("starting Label Studio (first start: 1-2 min of database migrations)")
        server.start()
    except ServerError as exc:
        fail(str(exc), "check network access to PyPI, or pick a free port with --port")
    console.print(f"[bold green]Label Studio is up:[/] {server.url}")
    console.print(f"login: {server.username} / {server.password}")
    creds = data_dir / "labelwise-credentials.json"
    console.print(  # the token stays in its mode-600 file, out of terminal logs
        f"export LABEL_STUDIO_URL={server.url}\n"
        f'export LABEL_STUDIO_API_KEY=$(sed -E \'s/.*"token": "([^"]+)".*/\\1/\' {creds})',
        soft_wrap=True,
        markup=False,
    )
    console.print("[dim]Ctrl-C (or SIGTERM) stops it[/]")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # run the `finally` below
    try:
        while server.process is not None and server.process.poll() is None:
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
