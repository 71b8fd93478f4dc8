"""Install and run a local Label Studio server in its own virtual environment.

Label Studio's pins (redis, python-json-logger, pytz) clash with Prefect's, so it never shares the
pipeline's venv: ``install`` builds ``<venv>`` with ``python3.11 -m venv`` and pip, ``start`` runs
it headless (admin user and legacy API token from the environment, no prompts, no telemetry) and
health-checks the port it asked for (Label Studio silently moves to the next port when busy).
Used by ``labelwise annotation up`` and by the integration tests.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tasks.telemetry import telemetry_off

LABEL_STUDIO_VERSION = "1.23.2"
#: variables Label Studio also reads without its prefix: a stray one changes the server
STRAY_VARIABLES = ("HOST", "PORT", "USERNAME", "PASSWORD", "DEBUG", "DATABASE_URL")


class ServerError(RuntimeError):
    """Label Studio could not be installed or started; the message says where to look."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def installed_version(venv: Path) -> str | None:
    """The Label Studio version installed in ``venv`` (None if absent)."""
    python = venv / "bin" / "python"
    if not (venv / "bin" / "label-studio").exists() or not python.exists():
        return None
    out = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('label-studio'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() or None if out.returncode == 0 else None


def install(venv: Path, version: str = LABEL_STUDIO_VERSION, *, quiet: bool = True) -> Path:
    """Create ``venv`` (if needed) and pip-install ``label-studio==version`` into it (~1-3 min).

    A no-op when that version is already there. Returns the ``label-studio`` executable.
    """
    venv = Path(venv)
    exe = venv / "bin" / "label-studio"
    if installed_version(venv) == version:
        return exe
    python = shutil.which("python3.11") or sys.executable
    q = ["-q"] if quiet else []
    steps = [
        [python, "-m", "venv", str(venv)],
        [str(venv / "bin" / "python"), "-m", "pip", "install", *q, "--upgrade", "pip"],
        [str(venv / "bin" / "python"), "-m", "pip", "install", *q, f"label-studio=={version}"],
    ]
    for step in steps:
        result = subprocess.run(step, capture_output=quiet, text=True, check=False)
        if result.returncode != 0:
            tail = (result.stderr or "")[-800:] if quiet else ""
            raise ServerError(f"`{' '.join(step)}` failed (exit {result.returncode}): {tail}")
    return exe


@dataclass
class LabelStudioServer:
    """A headless Label Studio: ``start()`` then ``url``/``token``; ``stop()`` sends SIGTERM."""

    venv: Path
    data_dir: Path
    port: int = 8080
    username: str = "admin@labelwise.local"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12), repr=False)
    token: str = field(default_factory=lambda: secrets.token_hex(20), repr=False)
    log_file: Path | None = None
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in STRAY_VARIABLES}
        env = {k: v for k, v in env.items() if not k.startswith(("LABEL_STUDIO_", "HEARTEX_"))}
        telemetry_off(env)
        env.update(
            LABEL_STUDIO_BASE_DATA_DIR=str(self.data_dir),
            LABEL_STUDIO_USERNAME=self.username,
            LABEL_STUDIO_PASSWORD=self.password,
            LABEL_STUDIO_USER_TOKEN=self.token,
            LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN="true",
            LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK="true",
            SENTRY_DSN="",
            FRONTEND_SENTRY_DSN="",
            LATEST_VERSION_CHECK="false",
            SSRF_PROTECTION_ENABLED="false",
            ML_BLOCK_LOCAL_IP="false",
        )
        return env

    def start(self, timeout: float = 300.0) -> LabelStudioServer:
        """Start the server and wait until ``GET /health`` on ``port`` answers UP."""
        if not port_is_free(self.port):
            raise ServerError(f"port {self.port} is busy; pick another with --port")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_file or self.data_dir / "label-studio.log"
        log = open(log_path, "ab")
        self.process = subprocess.Popen(
            [
                str(self.venv / "bin" / "label-studio"),
                "start",
                "--no-browser",
                "--internal-host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=self.environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(
                    f"Label Studio exited with code {self.process.returncode}; see {log_path}"
                )
            if self.healthy():
                return self
            time.sleep(1.0)
        self.stop()
        raise ServerError(
            f"Label Studio not healthy on {self.url} after {timeout:.0f} s; see {log_path}"
        )

    def healthy(self) -> bool:
        with contextlib.suppress(httpx.HTTPError):
            response = httpx.get(f"{self.url}/health", timeout=2.0)
            return response.status_code == 200 and response.json().get("status") == "UP"
        return False

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the server's process group and wait for it (SIGKILL after ``timeout``)."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


def credentials(data_dir: Path) -> dict[str, str]:
    """The admin login and API token of the server in ``data_dir``, generated once and kept in
    ``<data_dir>/labelwise-credentials.json`` (mode 600): Label Studio only creates the user and
    its token on the first start of an empty data dir."""
    import json

    path = Path(data_dir) / "labelwise-credentials.json"
    if path.exists():
        return json.loads(path.read_text(encoding="utf-8"))
    values = {
        "username": "admin@labelwise.local",
        "password": secrets.token_urlsafe(12),
        "token": secrets.token_hex(20),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(values, handle)
    return values


def local_server(venv: Path, data_dir: Path, port: int = 8080) -> LabelStudioServer:
    """A server for ``data_dir`` with its persisted credentials (see :func:`credentials`)."""
    login = credentials(data_dir)
    return LabelStudioServer(
        venv=Path(venv),
        data_dir=Path(data_dir),
        port=port,
        username=login["username"],
        password=login["password"],
        token=login["token"],
    )
