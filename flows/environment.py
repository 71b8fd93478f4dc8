"""Explicit set-up of the run environment (nothing happens on import): Prefect's home, its
temporary server's start-up timeout and telemetry, all under ``project.work_dir``."""

from __future__ import annotations

import os
from pathlib import Path

from tasks.settings import Settings

QUIET = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DVC_NO_ANALYTICS": "1",
    "GX_ANALYTICS_ENABLED": "false",
}


def setup_environment(settings: Settings, *, quiet_logs: bool = False) -> dict[str, str]:
    """Set (unless already set) PREFECT_HOME=<work_dir>/prefect, a 120 s start-up timeout for
    the temporary Prefect server and analytics off; call before Prefect is imported. MLflow
    (``tasks.tracking``) and the DVC remote (``tasks.data.versioning``) default to the work dir
    already. Returns the values in effect."""
    work = Path(settings.project.work_dir).resolve()
    (work / "prefect").mkdir(parents=True, exist_ok=True)
    wanted = {
        "PREFECT_HOME": str(work / "prefect"),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        **QUIET,
    }
    if quiet_logs:  # the CLI shows its own progress; Prefect's console lines would interleave
        wanted["PREFECT_LOGGING_LEVEL"] = "WARNING"
        wanted["MLFLOW_LOGGING_LEVEL"] = "WARNING"
    for key, value in wanted.items():
        os.environ.setdefault(key, value)
    return {key: os.environ[key] for key in wanted}
