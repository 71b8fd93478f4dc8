"""Failpoints (tasks/failpoints.py): parsed strictly, off unless named, sleep, raise and pause."""

from __future__ import annotations

import os
import time

import pytest

from tasks.failpoints import (
    DIR_VARIABLE,
    PAUSE_POLL_SECONDS,
    VARIABLE,
    FailpointError,
    failpoint,
    parse,
    signal_path,
)

pytestmark = pytest.mark.unit


def test_parse_reads_every_entry_and_ignores_blank_ones():
    spec = " after:dispatched=sleep(2.5) ; round-0002/after:trained=raise ;"
    assert parse(spec) == {
        "after:dispatched": "sleep(2.5)",
        "round-0002/after:trained": "raise",
    }


@pytest.mark.parametrize(
    "spec", ["after:x", "after:x=sleep", "=raise", "a=sleep(-1)", "a=exit", "a=pause(3)"]
)
def test_a_bad_entry_is_an_error_naming_it(spec):
    with pytest.raises(ValueError, match=VARIABLE):
        parse(spec)


def test_without_the_variable_nothing_happens(monkeypatch):
    monkeypatch.delenv(VARIABLE, raising=False)
    failpoint("after:dispatched")


def test_only_the_named_point_fires(monkeypatch):
    monkeypatch.setenv(VARIABLE, "after:trained=raise")
    failpoint("after:dispatched")
    with pytest.raises(FailpointError, match="after:trained"):
        failpoint("after:trained")


def test_sleep_pauses_at_the_point(monkeypatch):
    slept = []
    monkeypatch.setattr(time, "sleep", slept.append)
    monkeypatch.setenv(VARIABLE, "after:collected=sleep(7)")
    failpoint("after:collected")
    assert slept == [7.0]


def test_a_round_passes_its_own_failpoint_after_each_saved_step(make_settings, monkeypatch):
    from tasks.loop import rounds

    settings = make_settings()
    monkeypatch.setenv(VARIABLE, "round-0002/after:selected=raise")
    state = rounds.RoundState(round=1, id=rounds.round_id(1))
    rounds.mark(settings, state, "selected")  # round 1: not named
    state = rounds.RoundState(round=2, id=rounds.round_id(2))
    with pytest.raises(FailpointError):
        rounds.mark(settings, state, "selected")
    assert rounds.load_round(settings, 2).done("selected")  # saved before the fault


def test_pause_signals_the_point_then_waits_for_its_release_file(tmp_path, monkeypatch):
    point = "round-0001/during:select"
    monkeypatch.setenv(VARIABLE, f"{point}=pause")
    monkeypatch.setenv(DIR_VARIABLE, str(tmp_path))
    reached, release = signal_path(point, "reached"), signal_path(point, "release")
    assert reached.parent == tmp_path and "/" not in reached.name
    polls = []

    def poll(seconds: float) -> None:  # what the paused process does while it waits
        assert reached.read_text(encoding="utf-8") == f"{os.getpid()}\n"
        assert not release.exists()
        polls.append(seconds)
        if len(polls) == 3:
            release.touch()  # what the test does once its fault is in place

    monkeypatch.setattr(time, "sleep", poll)
    failpoint(point)
    assert polls == [PAUSE_POLL_SECONDS] * 3  # held until the release file appeared, not after


def test_pause_without_a_signal_folder_is_an_error_naming_the_variable(monkeypatch):
    monkeypatch.setenv(VARIABLE, "during:train=pause")
    monkeypatch.delenv(DIR_VARIABLE, raising=False)
    with pytest.raises(ValueError, match=DIR_VARIABLE):
        failpoint("during:train")
