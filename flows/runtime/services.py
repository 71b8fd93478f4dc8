"""Local services for ``labelwise ui``: the Prefect server and the MLflow UI on the project's stores.

Each service runs in its own process group, is health-checked on the port it was given, and is
stopped (SIGTERM to the group, SIGKILL after a grace period) when :func:`ui_services` exits.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from tasks.settings import Settings
from tasks.telemetry import TELEMETRY_OFF

HOST = "127.0.0.1"


class ServiceError(RuntimeError):
    """A service did not start (port taken, crashed, or not healthy in time); names its log."""


@dataclass
class Service:
    """A started service: its name, browser URL, health URL, process and log file."""

    name: str
    url: str
    health_url: str
    process: subprocess.Popen
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None


def free_port(host: str = HOST) -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = HOST) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _bin(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


def mlflow_store(settings: Settings) -> tuple[str, str | None]:
    """The project's MLflow tracking URI and artifact root (as ``tasks.tracking.runs`` resolves them)."""
    from tasks.tracking.runs import _default_store

    if settings.tracking.tracking_uri:
        return settings.tracking.tracking_uri, None
    return _default_store(Path(settings.project.work_dir))


def start_service(
    name: str, command: list[str], *, port: int, health_path: str, log: Path, env: dict[str, str]
) -> Service:
    """Start ``command`` in a new process group, its output in ``log``; does not wait."""
    if port_in_use(port):
        raise ServiceError(f"{name}: port {port} on {HOST} is already in use")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **TELEMETRY_OFF, **env},
            start_new_session=True,
        )
    url = f"http://{HOST}:{port}"
    return Service(name, url, url + health_path, process, log)


def start_prefect(work_dir: Path, port: int) -> Service:
    """``prefect server start`` with PREFECT_HOME under ``work_dir`` (UI at /, API at /api)."""
    home = (Path(work_dir) / "prefect").resolve()
    home.mkdir(parents=True, exist_ok=True)
    return start_service(
        "prefect",
        [_bin("prefect"), "server", "start", "--host", HOST, "--port", str(port)],
        port=port,
        health_path="/api/health",
        log=home / "server.log",
        env={"PREFECT_HOME": str(home)},
    )


def start_mlflow(settings: Settings, port: int) -> Service:
    """``mlflow server`` (one worker) on the project's tracking store and artifact root."""
    uri, artifacts = mlflow_store(settings)
    command = [_bin("mlflow"), "server", "--backend-store-uri", uri]
    if artifacts:
        command += ["--artifacts-destination", artifacts]
    command += ["--host", HOST, "--port", str(port), "--workers", "1"]
    log = (Path(settings.project.work_dir) / "mlflow" / "server.log").resolve()
    return start_service("mlflow", command, port=port, health_path="/health", log=log, env={})


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _tail(path: Path, lines: int = 5) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def wait_healthy(services: list[Service], timeout: float = 180.0, poll: float = 1.0) -> None:
    """Wait until every service answers its health check; raise if one exits or times out."""
    deadline = time.monotonic() + timeout
    pending = list(services)
    while pending:
        for service in list(pending):
            if not service.alive():
                raise ServiceError(
                    f"{service.name} exited with code {service.process.returncode}; "
                    f"see {service.log}:\n{_tail(service.log)}"
                )
            if _healthy(service.health_url):
                pending.remove(service)
        if pending and time.monotonic() > deadline:
            names = ", ".join(s.name for s in pending)
            raise ServiceError(f"{names} not healthy after {timeout:.0f} s; see their server.log")
        if pending:
            time.sleep(poll)


def stop(service: Service, grace: float = 20.0) -> None:
    """SIGTERM to the service's process group, SIGKILL if it is still there after ``grace``."""
    pgid = service.process.pid  # start_new_session: the group id is the leader's pid
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        if _wait_group_gone(service, pgid, wait):
            return


def _wait_group_gone(service: Service, pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        service.process.poll()  # reap the leader, or it lingers as a zombie in the group
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


@contextmanager
def ui_services(
    settings: Settings,
    prefect_port: int = 4200,
    mlflow_port: int = 5000,
    timeout: float = 180.0,
) -> Iterator[list[Service]]:
    """Start the Prefect server and the MLflow UI, wait until both are healthy, yield them; both
    are stopped on exit (including Ctrl-C and start-up failures)."""
    with ExitStack() as stack:
        services = []
        for start in (
            lambda: start_prefect(Path(settings.project.work_dir), prefect_port),
            lambda: start_mlflow(settings, mlflow_port),
        ):
            service = start()
            stack.callback(stop, service)
            services.append(service)
        wait_healthy(services, timeout)
        yield services
