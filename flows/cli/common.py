"""What every ``labelwise`` command shares: the typer app, the consoles, the common options,
and how a failure is shown (a few lines and a hint; details in the run log)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

app = typer.Typer(help="labelwise: an active-learning pipeline.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)

PARAMS = typer.Option(Path("params.yaml"), "--params", help="settings file")
SETS = typer.Option(None, "--set", help="override a setting, e.g. strategy.batch_size=50")
VERBOSE = typer.Option(
    False, "--verbose", "-v", help="also show the run log (and any traceback) in the terminal"
)

MAX_ERROR_LINES = 6


def fail(message: str, hint: str | None = None, *, log: Path | None = None) -> None:
    """Print one clear error (a few lines at most) and a hint, exit 1; ``log``: where the full
    details are."""
    lines = str(message).strip().splitlines() or ["(no message)"]
    shown = "\n".join(lines[:MAX_ERROR_LINES])
    if len(lines) > MAX_ERROR_LINES:
        shown += f"\n... {len(lines) - MAX_ERROR_LINES} more line(s)" + (
            " in the log" if log else ""
        )
    err.print(f"[bold red]error:[/] {shown}", markup=True, highlight=False)
    if hint:
        err.print(f"[dim]hint: {hint}[/]")
    if log is not None:
        err.print(f"[dim]details and traceback: {log}[/]", soft_wrap=True)
    raise typer.Exit(1)


def fail_on(exc: BaseException, hint: str, *, log: Path | None, verbose: bool) -> None:
    """An exception as :func:`fail` shows it: its traceback goes to the run log (and, with
    ``--verbose``, to the terminal); the terminal gets its message and the hint."""
    import logging
    import traceback

    logging.getLogger("labelwise").error("%s", exc, exc_info=(type(exc), exc, exc.__traceback__))
    if verbose:
        traceback.print_exception(exc, file=sys.stderr)
    fail(f"{_name(exc)}{exc}", _hint(exc, hint), log=log)


def _name(exc: BaseException) -> str:
    """The exception's type, where it says more than its message (not for our own errors)."""
    ours = type(exc).__module__.split(".")[0] in ("tasks", "flows", "strategies")
    ours = ours or type(exc).__name__ == "FailedRun"  # a state message, e.g. backend down
    return "" if ours else f"{type(exc).__name__}: "


def _hint(exc: BaseException, default: str) -> str:
    from tasks.annotation.base import AnnotationBackendError
    from tasks.data.validate import ValidationError
    from tasks.loop.rounds import TrackingError

    if isinstance(exc, ValidationError):
        return f"the failing rows and their reasons are in {exc.quarantine}; nothing was lost"
    if isinstance(exc, AnnotationBackendError) or "the annotation backend" in str(exc):
        return "check the annotation backend, then run again: the round continues where it stopped"
    if isinstance(exc, TrackingError):
        return "start the MLflow tracking server (tracking.tracking_uri), then run again"
    if type(exc).__name__ in ("ExternalModelError", "PredictFailed"):
        return (
            "fix your model.predict function (see docs/select.md for the shapes it may return), "
            "then run again: every label is kept and the round continues where it stopped"
        )
    return default


def load_or_fail(params: Path, overrides: list[str] | None) -> Any:
    from tasks.settings import SettingsError, load_settings

    try:
        return load_settings(params, overrides or [])
    except SettingsError as exc:
        fail(str(exc), "fix the key named above in params.yaml or in --set")


def interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
