"""Failpoints: named places in a round where a fault test makes it pause or fail, switched on
through the environment so that the fault also reaches a worker's flow-run subprocess::

    LABELWISE_FAILPOINTS="after:dispatched=sleep(60);after:trained=raise;during:train=pause"

Each round step passes ``after:<step>`` once its state is saved (``tasks.loop.rounds``), and the
steps whose work can be cut in half pass ``during:<step>`` in the middle of it (after their
side effects, before their state is saved), as does the demo seeding (``during:seed``).

Actions: ``sleep(S)``, ``raise``, and ``pause``: the process writes
``$LABELWISE_FAILPOINT_DIR/<point>.reached`` and waits until ``<point>.release`` appears there (or
until it is killed), so a fault test acts at the moment the point is reached, not after a guess
of how long that takes. Without the variable a failpoint costs one lookup. The fault tests use
them to kill a run, a worker, restart PostgreSQL or stop MLflow at a known point of a round (the
fault itself is real).
"""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path

VARIABLE = "LABELWISE_FAILPOINTS"
DIR_VARIABLE = "LABELWISE_FAILPOINT_DIR"
_ACTION = re.compile(r"^(?:sleep\((?P<seconds>\d+(?:\.\d+)?)\)|(?P<raise>raise)|(?P<pause>pause))$")
PAUSE_POLL_SECONDS = 0.05

log = logging.getLogger(__name__)


class FailpointError(RuntimeError):
    """Raised by a ``raise`` failpoint."""


def parse(spec: str) -> dict[str, str]:
    """``"a=sleep(1);b=raise"`` -> ``{"a": "sleep(1)", "b": "raise"}``; a bad entry is an error
    naming it (a typo must not silently disable a fault test)."""
    points = {}
    for entry in filter(None, (part.strip() for part in spec.split(";"))):
        name, sep, action = entry.partition("=")
        if not sep or not name.strip() or not _ACTION.match(action.strip()):
            raise ValueError(
                f"{VARIABLE}: bad entry {entry!r}; expected NAME=sleep(SECONDS), NAME=raise "
                "or NAME=pause"
            )
        points[name.strip()] = action.strip()
    return points


def failpoint(name: str) -> None:
    """Pause or fail here if ``LABELWISE_FAILPOINTS`` names this point."""
    spec = os.environ.get(VARIABLE)
    if not spec:
        return
    action = parse(spec).get(name)
    if action is None:
        return
    match = _ACTION.match(action)
    assert match is not None  # parse() checked it
    if match["raise"]:
        raise FailpointError(f"failpoint {name!r} ({VARIABLE})")
    if match["pause"]:
        pause(name)
        return
    log.warning("failpoint %r: sleeping %s s", name, match["seconds"])
    time.sleep(float(match["seconds"]))


def step_point(round_id: str, where: str) -> None:
    """The failpoints of a round step: ``<where>`` and ``<round_id>/<where>`` (e.g.
    ``during:select`` and ``round-0002/during:select``)."""
    failpoint(where)
    failpoint(f"{round_id}/{where}")


def signal_path(name: str, event: str) -> Path:
    """``$LABELWISE_FAILPOINT_DIR/<name>.<event>`` (``reached`` or ``release``)."""
    folder = os.environ.get(DIR_VARIABLE)
    if not folder:
        raise ValueError(f"{VARIABLE}: a pause failpoint needs {DIR_VARIABLE} (a folder)")
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
    return Path(folder) / f"{safe}.{event}"


def pause(name: str) -> None:
    """Say the point is reached (a file), then wait for its release file."""
    reached, release = signal_path(name, "reached"), signal_path(name, "release")
    reached.parent.mkdir(parents=True, exist_ok=True)
    reached.write_text(f"{os.getpid()}\n", encoding="utf-8")
    log.warning("failpoint %r: paused until %s exists", name, release)
    while not release.exists():
        time.sleep(PAUSE_POLL_SECONDS)
