"""``labelwise ui``: the Prefect server and the MLflow UI start on free ports on the project's
stores, answer their health checks, and Ctrl-C stops both with no process left behind."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request

import psutil
import pytest

from flows.runtime.services import ServiceError, free_port, port_in_use, ui_services

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read().decode(errors="replace")


def _not_zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _read_until(cli: subprocess.Popen, marker: str, timeout: float) -> str:
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not any(marker in line for line in lines):
        line = cli.stdout.readline()
        if not line and cli.poll() is not None:
            break
        lines.append(line)
    return "".join(lines)


def test_labelwise_ui_serves_both_and_ctrl_c_stops_both(tmp_path):
    work = tmp_path / "work"
    (tmp_path / "params.yaml").write_text(f"project:\n  work_dir: {work}\n")
    prefect_port, mlflow_port = free_port(), free_port()
    command = [sys.executable, "-m", "flows.cli", "ui", "--params", str(tmp_path / "params.yaml")]
    command += ["--prefect-port", str(prefect_port), "--mlflow-port", str(mlflow_port)]
    cli = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output = _read_until(cli, "Ctrl-C", timeout=240)
        assert f"prefect  http://127.0.0.1:{prefect_port}" in output, output
        assert f"mlflow   http://127.0.0.1:{mlflow_port}" in output, output
        assert _get(f"http://127.0.0.1:{prefect_port}/api/health") == (200, "true")
        status, page = _get(f"http://127.0.0.1:{mlflow_port}/")
        assert status == 200 and "mlflow" in page.lower()
        assert (work / "prefect").is_dir() and (work / "mlflow" / "mlflow.db").exists()
        children = psutil.Process(cli.pid).children(recursive=True)
        assert len(children) >= 2
        cli.send_signal(signal.SIGINT)
        rest, _ = cli.communicate(timeout=60)
    finally:
        if cli.poll() is None:
            cli.kill()
    assert cli.returncode == 0 and "stopped both services" in rest
    assert not [p.pid for p in children if _not_zombie(p.pid)]
    assert not port_in_use(prefect_port) and not port_in_use(mlflow_port)


def test_a_taken_port_is_reported_before_anything_starts(make_settings):
    settings = make_settings()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ServiceError, match=f"port {port}"):
            with ui_services(settings, port, free_port(), timeout=30):
                pass
