"""Usage analytics are off for every library, from one table (``tasks.telemetry``): in this
process, in a child's environment, and in the Label Studio server's; a user's own value wins."""

from __future__ import annotations

import os

import pytest

from tasks.annotation.server import LabelStudioServer
from tasks.telemetry import TELEMETRY_OFF, telemetry_off

pytestmark = pytest.mark.unit


def test_a_child_environment_gets_every_variable_and_the_process_is_untouched(monkeypatch):
    monkeypatch.delenv("DVC_NO_ANALYTICS", raising=False)
    child = telemetry_off({"PATH": "/bin"})
    assert child == {"PATH": "/bin", **TELEMETRY_OFF}
    assert "DVC_NO_ANALYTICS" not in os.environ


def test_a_users_own_setting_is_kept(monkeypatch):
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "false")
    monkeypatch.delenv("GX_ANALYTICS_ENABLED", raising=False)
    telemetry_off()
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "false"
    assert os.environ["GX_ANALYTICS_ENABLED"] == "false"


def test_the_label_studio_server_starts_with_analytics_off(monkeypatch, tmp_path):
    for key in TELEMETRY_OFF:
        monkeypatch.delenv(key, raising=False)
    env = LabelStudioServer(venv=tmp_path, data_dir=tmp_path).environment()
    assert {key: env[key] for key in TELEMETRY_OFF} == TELEMETRY_OFF
