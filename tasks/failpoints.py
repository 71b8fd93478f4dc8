"""Failpoints: named places in a round where a fault test makes it pause or fail, switched on
through the environment so that the fault also reaches a worker's flow-run subprocess::

    LABELWISE_FAILPOINTS="after:dispatched=sleep(60);after:trained=raise"

Each round step passes ``after:<step>`` once its state is saved (``tasks.rounds``). Without the
variable a failpoint costs one lookup. The production profile's fault tests use them to kill a
worker, restart PostgreSQL or stop MLflow at a known point of a round (the fault itself is real).
"""

from __future__ import annotations

import logging
import os
import re
import time

VARIABLE = "LABELWISE_FAILPOINTS"
_ACTION = re.compile(r"^(?:sleep\((?P<seconds>\d+(?:\.\d+)?)\)|(?P<raise>raise))$")

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
                f"{VARIABLE}: bad entry {entry!r}; expected NAME=sleep(SECONDS) or NAME=raise"
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
    log.warning("failpoint %r: sleeping %s s", name, match["seconds"])
    time.sleep(float(match["seconds"]))
