"""The project's round slot: one round of a project runs at a time, and a dead run never locks
the project.

The slot is a Prefect global concurrency limit of 1 (``labelwise-round-<project>``), held with a
lease. Leases alone do not free a dead run's slot everywhere: the temporary local server runs no
service that revokes expired leases, and every Prefect server keeps leases in memory, so a
server restart leaves the slot counted as taken with no lease behind it. So the holder also
writes a record (a Prefect Variable ``labelwise-slot-<project>``: its flow run, process, host,
and when it last renewed) and refreshes it while it lives. A run that finds the slot taken
reads the record and takes the slot over when the holder is gone (:func:`stale_reason`); else it
names the holder. Acquiring and taking over are serialised between the processes of one machine
by a file lock under ``project.work_dir``.
"""

from __future__ import annotations

import contextvars
import fcntl
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from flows.runtime.holder import (
    RENEW_SHARE,
    Holder,
    stale_reason,
    this_machine,
)
from tasks.settings import Settings

log = logging.getLogger(__name__)

#: how often a waiting run (``serve.when_busy: wait``) tries again
POLL_SECONDS = 2.0


def limit_name(settings: Settings) -> str:
    """The Prefect global concurrency limit that lets one round of the project run at a time."""
    return f"labelwise-round-{settings.project.name}"


def record_name(settings: Settings) -> str:
    """The Prefect Variable holding the slot's holder record (names allow [a-z0-9_-] only)."""
    safe = re.sub(r"[^a-z0-9_-]+", "-", settings.project.name.lower()).strip("-")
    return f"labelwise-slot-{safe or 'project'}"[:255]


class SlotLost(RuntimeError):
    """Another run took the slot while this one held it (a server lost its lease and the
    record stopped being renewed); the run stops before its next step."""


@dataclass
class Slot:
    """What :func:`round_slot` yields: whether the slot is held, and if not, by whom."""

    held: bool
    message: str = ""
    holder: Holder | None = None
    lost: str | None = None

    def skipped(self) -> str:
        """Why a trigger ran nothing (``serve.when_busy: skip``)."""
        return f"skipped: {self.message}; this trigger ran nothing (serve.when_busy: skip)"

    def check(self) -> None:
        """Raise :class:`SlotLost` if the slot was lost while held."""
        if self.lost:
            raise SlotLost(self.lost)


# ---------------------------------------------------------------- Prefect I/O


def ensure_limit(settings: Settings) -> str:
    """Create the project's round limit (1 slot) unless it exists; returns its name."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    name = limit_name(settings)
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=1)
                )
            except ObjectAlreadyExists:  # another run created it meanwhile
                pass
    return name


def _logger() -> logging.Logger | logging.LoggerAdapter:
    """The flow run's logger (its lines reach the Prefect UI) inside a run, else this module's."""
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return log


def _status(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None)


def _this_flow_run() -> tuple[str | None, str | None]:
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return None, None
    return str(context.flow_run.id), context.flow_run.name


def _acquire(client: Any, name: str, lease_seconds: float) -> str | None:
    """A lease on the slot, or None when it is taken (HTTP 423)."""
    from prefect.client.schemas.objects import ConcurrencyLeaseHolder

    run_id, _ = _this_flow_run()
    holder = None if run_id is None else ConcurrencyLeaseHolder(type="flow_run", id=UUID(run_id))
    try:
        response = client.increment_concurrency_slots_with_lease(
            names=[name], slots=1, mode="concurrency", lease_duration=lease_seconds, holder=holder
        )
    except Exception as exc:
        if _status(exc) == 423:
            return None
        raise
    return str(response.json()["lease_id"])


def _read_record(client: Any, settings: Settings) -> Holder | None:
    variable = client.read_variable_by_name(record_name(settings))
    return None if variable is None else Holder.from_value(variable.value)


def _write_record(client: Any, settings: Settings, holder: Holder) -> None:
    from prefect.client.schemas.actions import VariableCreate, VariableUpdate
    from prefect.exceptions import ObjectAlreadyExists

    name, value = record_name(settings), asdict(holder)
    if client.read_variable_by_name(name) is None:
        try:
            client.create_variable(VariableCreate(name=name, value=value))
            return
        except ObjectAlreadyExists:
            pass
    client.update_variable(VariableUpdate(name=name, value=value))


def _delete_record(client: Any, settings: Settings, lease_id: str | None) -> None:
    """Delete the record if it is still this holder's."""
    from prefect.exceptions import ObjectNotFound

    current = _read_record(client, settings)
    if current is not None and current.lease_id == lease_id:
        try:
            client.delete_variable_by_name(record_name(settings))
        except ObjectNotFound:
            pass


def _run_state(client: Any, flow_run_id: str | None) -> str | None:
    from prefect.exceptions import ObjectNotFound

    if not flow_run_id:
        return None
    try:
        run = client.read_flow_run(UUID(flow_run_id))
    except (ObjectNotFound, ValueError):
        return "CRASHED"  # a run the server does not know (its database was reset) is not alive
    return None if run.state is None else run.state.type.value


def _limit_updated(client: Any, name: str) -> float | None:
    limit = client.read_global_concurrency_limit_by_name(name)
    return None if limit.updated is None else limit.updated.timestamp()


def _crash_runs(client: Any, holder: Holder, reason: str) -> None:
    """Mark the dead holder's flow run (and its running subflows) Crashed, so the UI tells the
    truth; best effort, the takeover does not depend on it."""
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterParentFlowRunId,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.filters import FlowRunFilterState as StateFilter
    from prefect.client.schemas.objects import StateType
    from prefect.states import Crashed

    if not holder.flow_run_id:
        return
    live = [StateType.RUNNING, StateType.PENDING, StateType.SCHEDULED, StateType.PAUSED]
    message = f"labelwise: the round slot was taken over because {reason}"
    try:
        ids = [UUID(holder.flow_run_id)]
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(
                parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=ids),
                state=StateFilter(type=FlowRunFilterStateType(any_=live)),
            )
        )
        for run_id in [*ids, *(child.id for child in children)]:
            run = client.read_flow_run(run_id)
            if run.state is not None and run.state.type in live:
                client.set_flow_run_state(run_id, Crashed(message=message), force=True)
    except Exception as exc:  # the takeover is done; the UI is only behind
        log.warning("could not mark the dead run %s Crashed: %s", holder.flow_run_id, exc)


def _free(client: Any, name: str, holder: Holder | None) -> None:
    """Free the slot a dead holder left: release its lease if the server still knows it, else
    decrement the slot count itself."""
    if holder is not None and holder.lease_id:
        client.release_concurrency_slots_with_lease(UUID(holder.lease_id))
    limit = client.read_global_concurrency_limit_by_name(name)
    if limit.active_slots >= limit.limit:
        started = holder.acquired_at if holder is not None else time.time() - 1.0
        client.release_concurrency_slots(
            names=[name], slots=1, occupancy_seconds=max(time.time() - started, 0.001)
        )


@contextmanager
def _machine_lock(settings: Settings) -> Iterator[None]:
    """Serialise acquire/take-over between the processes of this machine (a lock the kernel
    drops when its process dies)."""
    folder = Path(settings.project.work_dir) / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "round-slot.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# ---------------------------------------------------------------- acquire, keep, release


def _my_record(lease_id: str, lease_seconds: float, acquired_at: float | None = None) -> Holder:
    import psutil

    run_id, run_name = _this_flow_run()
    now = time.time()
    return Holder(
        lease_id=lease_id,
        flow_run_id=run_id,
        flow_run_name=run_name,
        pid=os.getpid(),
        host=socket.gethostname(),
        machine=this_machine(),
        process_started=psutil.Process().create_time(),
        acquired_at=acquired_at or now,
        renewed_at=now,
        lease_seconds=lease_seconds,
    )


def try_take(settings: Settings) -> tuple[Holder | None, Holder | None, str | None]:
    """One attempt: ``(mine, other, state)``: my record if I got the slot, else the holder's
    record and its flow run's state. A gone holder's slot is taken over on the way."""
    from prefect.client.orchestration import get_client

    lease_seconds = settings.serve.slot_lease_seconds
    name = ensure_limit(settings)
    with _machine_lock(settings), get_client(sync_client=True) as client:
        lease = _acquire(client, name, lease_seconds)
        other, state = None, None
        if lease is None:
            other = _read_record(client, settings)
            state = _run_state(client, other.flow_run_id) if other else None
            reason = stale_reason(
                other,
                now=time.time(),
                machine=this_machine(),
                lease_seconds=lease_seconds,
                run_state=state,
                limit_updated=_limit_updated(client, name) if other is None else None,
            )
            if reason is not None:
                who = other.describe(state) if other else "an unrecorded holder"
                _logger().warning("taking over the round slot %r from %s: %s", name, who, reason)
                if other is not None:
                    _crash_runs(client, other, reason)
                _free(client, name, other)
                lease = _acquire(client, name, lease_seconds)
                if lease is None:  # another machine was quicker
                    other = _read_record(client, settings)
                    state = _run_state(client, other.flow_run_id) if other else None
        if lease is None:
            return None, other, state
        mine = _my_record(lease, lease_seconds)
        _write_record(client, settings, mine)
        return mine, None, None


class _Keeper:
    """Renews the lease and refreshes the record while the slot is held (a daemon thread in a
    copy of the caller's context, so it talks to the same Prefect API)."""

    def __init__(self, settings: Settings, mine: Holder, slot: Slot) -> None:
        self.settings, self.mine, self.slot = settings, mine, slot
        self.lease_lost = False
        self.stop = threading.Event()
        context = contextvars.copy_context()
        self.thread = threading.Thread(
            target=context.run, args=(self._run,), daemon=True, name="labelwise-slot-keeper"
        )

    def _run(self) -> None:
        from prefect.client.orchestration import get_client

        every = self.mine.lease_seconds * RENEW_SHARE
        while not self.stop.wait(every):
            try:
                with get_client(sync_client=True) as client:
                    self._renew(client)
            except Exception as exc:  # the server is down: the record simply ages
                log.warning("could not renew the round slot: %s", exc)

    def _renew(self, client: Any) -> None:
        name = limit_name(self.settings)
        current = _read_record(client, self.settings)
        if current is not None and current.lease_id != self.mine.lease_id:
            self.slot.lost = f"the round slot {name!r} was taken by {current.describe()}"
            log.error("%s while this run held it", self.slot.lost)
            self.stop.set()
            return
        lease = self.mine.lease_id
        if not self.lease_lost and lease:
            try:
                client.renew_concurrency_lease(UUID(lease), self.mine.lease_seconds)
            except Exception as exc:
                if _status(exc) != 410:
                    raise
                # the server lost the lease (restarted) or revoked it: hold the count again if
                # it was freed; if it is still counted, the count is this run's
                fresh = _acquire(client, name, self.mine.lease_seconds)
                if fresh is None:
                    self.lease_lost = True
                else:
                    lease = fresh
        self.mine = Holder(**{**asdict(self.mine), "lease_id": lease, "renewed_at": time.time()})
        _write_record(client, self.settings, self.mine)

    def release(self) -> None:
        from prefect.client.orchestration import get_client

        self.stop.set()
        self.thread.join(timeout=10)
        if self.slot.lost:
            return
        with get_client(sync_client=True) as client:
            if self.mine.lease_id:
                client.release_concurrency_slots_with_lease(UUID(self.mine.lease_id))
            if self.lease_lost:  # the count outlived its lease: give it back by hand
                client.release_concurrency_slots(
                    names=[limit_name(self.settings)],
                    slots=1,
                    occupancy_seconds=max(time.time() - self.mine.acquired_at, 0.001),
                )
            _delete_record(client, self.settings, self.mine.lease_id)


_HELD: contextvars.ContextVar[Slot | None] = contextvars.ContextVar(
    "labelwise_round_slot", default=None
)


def busy_message(settings: Settings, holder: Holder | None, state: str | None) -> str:
    """Why a trigger ran nothing: the run holding the slot, and how to stop it."""
    name = limit_name(settings)
    who = holder.describe(state) if holder else "a run that recorded no details"
    if holder is not None and holder.machine == this_machine():
        how = f"stop it with Ctrl-C where it runs, or `kill {holder.pid}`"
    elif holder is not None and holder.flow_run_id:
        how = f"stop it with `prefect flow-run cancel {holder.flow_run_id}`"
    else:
        how = "stop it where it runs"
    return (
        f"another run of project {settings.project.name!r} holds the round slot {name!r}: "
        f"{who}; {how}, or wait for it to finish"
    )


@contextmanager
def round_slot(
    settings: Settings, *, sleep: Callable[[float], None] = time.sleep
) -> Iterator[Slot]:
    """Hold the project's round slot for the block; yields a :class:`Slot`.

    ``serve.when_busy``: ``skip`` yields an unheld slot at once when a live run holds it (its
    message names that run); ``wait`` tries again every ``POLL_SECONDS`` for up to
    ``serve.slot_timeout_seconds`` (then ``TimeoutError`` naming the holder). A slot whose holder
    is gone is taken over at once. Nested use (a loop's rounds) holds it once."""
    held = _HELD.get()
    if held is not None:
        yield held
        return
    serve = settings.serve
    deadline = (
        None
        if serve.slot_timeout_seconds is None
        else (time.monotonic() + serve.slot_timeout_seconds)
    )
    while True:
        mine, other, state = try_take(settings)
        if mine is not None:
            break
        message = busy_message(settings, other, state)
        if serve.when_busy == "skip":
            yield Slot(held=False, message=message, holder=other)
            return
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(
                f"another round of project {settings.project.name!r} held the slot "
                f"{limit_name(settings)!r} for more than {serve.slot_timeout_seconds:.0f} s "
                f"(serve.slot_timeout_seconds); nothing was run. {message}"
            )
        sleep(POLL_SECONDS)
    slot = Slot(held=True, holder=mine)
    keeper = _Keeper(settings, mine, slot)
    keeper.thread.start()
    token = _HELD.set(slot)
    try:
        yield slot
    finally:
        _HELD.reset(token)
        try:
            keeper.release()
        except Exception as exc:  # the server is down: the next run judges the record instead
            log.warning("could not release the round slot %r: %s", limit_name(settings), exc)
