"""Usage analytics off for every library of the stack, in one place: the variables each one
reads, set (unless the user set them) before it is imported or started."""

from __future__ import annotations

import os

TELEMETRY_OFF = {
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DVC_NO_ANALYTICS": "1",
    "GX_ANALYTICS_ENABLED": "false",
    "COLLECT_ANALYTICS": "false",  # Label Studio
}


def telemetry_off(env: dict[str, str] | None = None) -> dict[str, str]:
    """Set the variables in ``env`` (default: this process's environment) where unset; returns
    ``env`` (a child process's environment, or ``os.environ``)."""
    target = os.environ if env is None else env
    for key, value in TELEMETRY_OFF.items():
        target.setdefault(key, value)
    return target  # type: ignore[return-value]
