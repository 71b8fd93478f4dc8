"""Who holds a project's round slot, and whether that holder is gone: the record a holder keeps
while it lives, and the rules by which another run judges it (no I/O beyond reading this
machine's process table; the slot itself is in :mod:`flows.slot`)."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

#: after the lease's end, how long a record may stay unrenewed before its holder counts as gone
GRACE_SECONDS = 15.0
#: how often a holder renews its lease and refreshes its record, as a share of the lease
RENEW_SHARE = 0.25
#: flow-run states of a run that no longer runs
FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}


@dataclass(frozen=True)
class Holder:
    """Who holds the slot: its lease, flow run, process and when it last renewed (epoch s)."""

    lease_id: str | None
    flow_run_id: str | None
    flow_run_name: str | None
    pid: int
    host: str
    machine: str
    process_started: float
    acquired_at: float
    renewed_at: float
    lease_seconds: float

    @classmethod
    def from_value(cls, value: Any) -> Holder | None:
        """The record read back from its Variable; None when absent or not a record."""
        fields = cls.__dataclass_fields__
        if not isinstance(value, dict) or any(name not in value for name in fields):
            return None
        return cls(**{name: value[name] for name in fields})

    def describe(self, state: str | None = None) -> str:
        started = datetime.fromtimestamp(self.acquired_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        run = f"flow run {self.flow_run_name or '?'} (id {self.flow_run_id or 'unknown'}"
        run += f", {state.title()}" if state else ""
        return f"{run}, started {started}, process {self.pid} on host {self.host})"


def this_machine() -> str:
    """This kernel boot and pid namespace: where a recorded pid can be checked (a hostname
    alone is not enough: containers and cloned machines repeat them)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return f"{socket.gethostname()}/unknown"
    return f"{boot}/{namespace}"


def process_alive(pid: int, started: float) -> bool:
    """Whether process ``pid`` of this machine is the one that started at ``started`` (a pid
    reused by a later process does not count)."""
    import psutil

    try:
        return abs(psutil.Process(pid).create_time() - started) < 1.0
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return False


def stale_reason(
    holder: Holder | None,
    *,
    now: float,
    machine: str,
    lease_seconds: float,
    run_state: str | None = None,
    limit_updated: float | None = None,
    alive: Callable[[int, float], bool] = process_alive,
) -> str | None:
    """Why the slot's holder is gone (the slot may be taken over), or None while it may live.

    On this machine its process decides: gone when it no longer runs. Elsewhere: its flow run
    ended or crashed and its record went unrenewed for two renewals, or the record went
    unrenewed for a lease plus ``GRACE_SECONDS`` by the clock (whether or not a server revoked
    the lease). With no record at all, the slot counts as abandoned once the limit has not
    changed for a lease plus the grace (a holder writes its record as it acquires)."""
    patience = lease_seconds + GRACE_SECONDS
    if holder is None:
        if limit_updated is not None and now - limit_updated > patience:
            return (
                f"the slot has been taken for {now - limit_updated:.0f} s with no holder recorded"
            )
        return None
    if holder.machine == machine:  # its process can be looked at: that decides
        if alive(holder.pid, holder.process_started):
            return None
        return f"its process {holder.pid} on this machine ({holder.host}) is gone"
    silent = now - holder.renewed_at
    if run_state in FINAL_STATES and silent > 2 * RENEW_SHARE * lease_seconds:
        return f"its flow run is {run_state.title()} and it last renewed {silent:.0f} s ago"
    if silent > max(holder.lease_seconds or 0.0, lease_seconds) + GRACE_SECONDS:
        return f"its lease was last renewed {silent:.0f} s ago"
    return None
