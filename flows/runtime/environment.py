"""Explicit set-up of the run environment (nothing happens on import): Prefect's home, its
temporary server's start-up timeout and telemetry, all under ``project.work_dir``."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from pathlib import Path

from tasks.settings import Settings
from tasks.telemetry import TELEMETRY_OFF


def setup_environment(settings: Settings, *, quiet_logs: bool = False) -> dict[str, str]:
    """Set (unless already set) PREFECT_HOME=<work_dir>/prefect, a 120 s start-up timeout for
    the temporary Prefect server and analytics off; call before Prefect is imported. MLflow
    (``tasks.tracking.runs``) and the DVC remote (``tasks.data.versioning``) default to the work dir
    already. Returns the values in effect."""
    work = Path(settings.project.work_dir).resolve()
    (work / "prefect").mkdir(parents=True, exist_ok=True)
    wanted = {
        "PREFECT_HOME": str(work / "prefect"),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        **TELEMETRY_OFF,
    }
    if quiet_logs:  # the CLI shows its own progress; Prefect's console lines would interleave
        wanted["PREFECT_LOGGING_LEVEL"] = "WARNING"
        wanted["MLFLOW_LOGGING_LEVEL"] = "WARNING"
    for key, value in wanted.items():
        os.environ.setdefault(key, value)
    return {key: os.environ[key] for key in wanted}


def setup_run_log(settings: Settings, *, verbose: bool = False) -> Path:
    """Send this process's log (Prefect's run and task logs, tracebacks, library warnings) to
    ``<work_dir>/logs/<command>-<UTC time>.log`` instead of the terminal, where the CLI shows
    its own lines; ``verbose`` keeps the terminal copy too. Returns the log's path."""
    import prefect  # noqa: F401  (configures Prefect's logging, once per process)
    from prefect.logging.handlers import PrefectConsoleHandler

    folder = Path(settings.project.work_dir).resolve() / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = folder / f"run-{stamp}-{os.getpid()}.log"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
    )
    for name in ("", "uvicorn", "fastapi"):
        logger = logging.getLogger(name)
        if not verbose:
            for console in [h for h in logger.handlers if isinstance(h, PrefectConsoleHandler)]:
                logger.removeHandler(console)
        logger.addHandler(handler)
    if not verbose:
        quiet_libraries(handler)
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    logging.getLogger("prefect").setLevel(logging.INFO)  # the file (and the UI) get run logs
    for noisy in ("httpx", "httpcore", "urllib3", "alembic", "git", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.captureWarnings(True)
    return path


def quiet_libraries(handler: logging.Handler) -> None:
    """Send what MLflow and DVC print on their own (DVC's init banner, MLflow's "Registered
    model ... Creating a new version", its warnings) to ``handler`` instead of the terminal:
    both attach console handlers to their loggers when imported, bypassing the root logger."""
    import dvc  # noqa: F401  (sets up its console handlers on import)
    import mlflow  # noqa: F401
    from mlflow.utils import logging_utils

    for name in ("dvc", "dvc_objects", "dvc_data", "mlflow", "alembic", "huey"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False
    # MLflow's eprint() lines write to its stream object, which forwards to sys.stderr at each
    # call (and is switched back on by its own context managers): make them log records
    console = logging.getLogger("mlflow.console")

    def write(text: str) -> None:
        if text.strip():
            console.info(text.rstrip())

    logging_utils.MLFLOW_LOGGING_STREAM.write = write  # type: ignore[method-assign]
    logging_utils.MLFLOW_LOGGING_STREAM.flush = lambda: None  # type: ignore[method-assign]
