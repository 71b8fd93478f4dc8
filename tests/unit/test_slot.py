"""The round slot's judgement of a holder (flows/slot.py): hand-made records, a fixed clock,
and a process table given as a function, so every rule is checked without a server."""

from __future__ import annotations

import pytest

from flows.runtime.holder import GRACE_SECONDS, RENEW_SHARE, Holder, stale_reason
from flows.slot import record_name
from tasks.settings import Settings

pytestmark = pytest.mark.unit

NOW, LEASE = 10_000.0, 60.0
HERE, ELSEWHERE = "boot-a/4026531836", "boot-b/4026531836"


def holder(machine: str = HERE, renewed: float = NOW - 5, pid: int = 42) -> Holder:
    return Holder(
        lease_id="lease-1",
        flow_run_id="run-1",
        flow_run_name="loop-demo",
        pid=pid,
        host="box",
        machine=machine,
        process_started=1_000.0,
        acquired_at=NOW - 100,
        renewed_at=renewed,
        lease_seconds=LEASE,
    )


def judge(record: Holder | None, *, alive: bool = True, **kwargs) -> str | None:
    options = {"now": NOW, "machine": HERE, "lease_seconds": LEASE} | kwargs
    return stale_reason(record, alive=lambda pid, started: alive, **options)


def test_a_live_process_on_this_machine_keeps_the_slot_whatever_its_record_says():
    # even a record not renewed for an hour, or a run the server calls Crashed
    assert judge(holder(renewed=NOW - 3600), run_state="CRASHED") is None


def test_a_dead_process_on_this_machine_loses_the_slot_at_once():
    reason = judge(holder(renewed=NOW - 1), alive=False)
    assert reason is not None and "process 42" in reason and "gone" in reason


def test_the_pid_check_compares_the_start_time_so_a_reused_pid_does_not_count():
    seen = []

    def alive(pid: int, started: float) -> bool:
        seen.append((pid, started))
        return False

    assert stale_reason(holder(), now=NOW, machine=HERE, lease_seconds=LEASE, alive=alive)
    assert seen == [(42, 1_000.0)]


def test_elsewhere_a_fresh_record_keeps_the_slot_and_the_process_table_is_not_read():
    def alive(pid: int, started: float) -> bool:
        raise AssertionError("a pid of another machine means nothing here")

    record = holder(machine=ELSEWHERE, renewed=NOW - LEASE)
    assert stale_reason(record, now=NOW, machine=HERE, lease_seconds=LEASE, alive=alive) is None


def test_elsewhere_a_record_silent_for_a_lease_plus_the_grace_is_stale_by_the_clock():
    limit = LEASE + GRACE_SECONDS
    assert judge(holder(machine=ELSEWHERE, renewed=NOW - limit + 1)) is None
    reason = judge(holder(machine=ELSEWHERE, renewed=NOW - limit - 1))
    assert reason is not None and f"{limit + 1:.0f} s ago" in reason


def test_elsewhere_a_finished_run_is_stale_once_it_missed_two_renewals():
    two = 2 * RENEW_SHARE * LEASE
    for state in ("COMPLETED", "FAILED", "CANCELLED", "CRASHED"):
        assert judge(holder(machine=ELSEWHERE, renewed=NOW - two + 1), run_state=state) is None
        reason = judge(holder(machine=ELSEWHERE, renewed=NOW - two - 1), run_state=state)
        assert reason is not None and state.title() in reason
    assert judge(holder(machine=ELSEWHERE, renewed=NOW - two - 1), run_state="RUNNING") is None


def test_a_slot_taken_without_a_record_is_abandoned_only_after_a_lease_plus_the_grace():
    limit = LEASE + GRACE_SECONDS
    assert judge(None) is None  # the limit's age unknown: never guess
    assert judge(None, limit_updated=NOW - 2) is None  # a holder between acquire and record
    reason = judge(None, limit_updated=NOW - limit - 1)
    assert reason is not None and "no holder recorded" in reason


def test_the_longer_of_the_holders_lease_and_ours_counts():
    record = Holder(**{**holder(machine=ELSEWHERE).__dict__, "lease_seconds": 600.0})
    record = Holder(**{**record.__dict__, "renewed_at": NOW - 300})
    assert judge(record) is None  # silent 300 s, within its own 600 s lease


def test_a_record_round_trips_and_junk_is_no_record():
    record = holder()
    assert Holder.from_value(record.__dict__) == record
    assert Holder.from_value("not a record") is None
    assert Holder.from_value({"pid": 1}) is None  # a record of another version


@pytest.mark.parametrize(
    ("project", "expected"),
    [
        ("labelwise-demo", "labelwise-slot-labelwise-demo"),
        ("My Project.v2", "labelwise-slot-my-project-v2"),
    ],
)
def test_the_record_name_is_a_valid_prefect_variable_name(project, expected):
    assert record_name(Settings.model_validate({"project": {"name": project}})) == expected
