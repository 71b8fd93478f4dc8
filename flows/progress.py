"""In-process progress events of the flows (the CLI's rich display listens to them)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

#: callables told ``(event, data)`` as rounds and steps end; in-process only, never a parameter
REPORTERS: list[Callable[[str, dict[str, Any]], None]] = []


def report(event: str, **data: Any) -> None:
    for reporter in list(REPORTERS):
        reporter(event, data)
