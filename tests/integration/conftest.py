"""Integration fixtures: one temporary Prefect server (test harness) and one real Label Studio
server for the whole session.

Label Studio lives in its own venv (cached in ``~/.cache/labelwise/label-studio-venv`` or
``$LABELWISE_LS_VENV``, installed on first use, ~1-3 min) with one data dir for the session
(first start: migrations, 30-110 s). Skipped, loudly, only if it cannot be installed.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path

import pytest

from tasks.annotation.server import LabelStudioServer, ServerError, free_port, install

VENV = Path(os.environ.get("LABELWISE_LS_VENV", Path.home() / ".cache/labelwise/label-studio-venv"))


@pytest.fixture(scope="session")
def prefect_harness():
    """A temporary Prefect API and database for every flow run of the session (~20 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture(scope="session")
def label_studio(tmp_path_factory):
    started = time.monotonic()
    try:
        install(VENV)
    except ServerError as exc:
        reason = f"LABEL STUDIO COULD NOT BE INSTALLED into {VENV}: {exc}"
        warnings.warn(reason, stacklevel=1)
        pytest.skip(reason)
    installed = time.monotonic()
    server = LabelStudioServer(
        venv=VENV, data_dir=tmp_path_factory.mktemp("label-studio-data"), port=free_port()
    )
    server.start(timeout=400)
    print(
        f"\nLabel Studio: install/check {installed - started:.0f} s, "
        f"first start {time.monotonic() - installed:.0f} s on {server.url}"
    )
    yield server
    server.stop()
