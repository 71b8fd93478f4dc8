"""Waiting for a round's quorum (``tasks.annotation.base.wait_for``) on a fake clock: which polls
happen when, how long each sleep is, and when a webhook's wake-up cuts a sleep short."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tasks.annotation import SimulatedAnnotator, SimulatedBackend
from tasks.annotation.base import Progress, wait_for

pytestmark = pytest.mark.unit

START = pd.Timestamp("2026-01-01", tz="UTC")


class FakeTime:
    """A monotonic clock that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def timestamp(self) -> pd.Timestamp:
        """The same time as a wall-clock timestamp (what the simulated annotators read)."""
        return START + pd.Timedelta(seconds=self.now)


class Scripted:
    """A backend whose batch of 10 has ``annotated(now)`` items done; records each poll's time."""

    name = "scripted"

    def __init__(self, time: FakeTime, annotated) -> None:
        self.time, self.annotated = time, annotated
        self.polls: list[float] = []

    def progress(self, round_: int) -> Progress:
        self.polls.append(self.time.now)
        done = self.annotated(self.time.now)
        return Progress(dispatched=10, annotated=done, annotations=done)


class FakeWake:
    """A webhook event that fires ``after`` seconds into each wait (never if None)."""

    def __init__(self, time: FakeTime, after: float | None) -> None:
        self.time, self.after = time, after
        self.waits: list[float] = []
        self.cleared = 0

    def wait(self, timeout: float) -> bool:
        self.waits.append(timeout)
        fired = self.after is not None and self.after < timeout
        self.time.now += self.after if fired else timeout
        return fired

    def clear(self) -> None:
        self.cleared += 1


def _wait(backend, time: FakeTime, **kwargs) -> Progress:
    return wait_for(backend, 1, clock=time.clock, sleep=time.sleep, **kwargs)


def test_it_polls_every_interval_until_the_batch_is_annotated():
    time = FakeTime()
    backend = Scripted(time, lambda now: 10 if now >= 25 else 3)
    progress = _wait(backend, time, timeout=600, poll_seconds=10)
    assert progress.annotated == 10
    assert backend.polls == [0, 10, 20, 30]
    assert time.sleeps == [10, 10, 10]


def test_it_returns_at_the_quorum_not_at_the_whole_batch():
    time = FakeTime()
    backend = Scripted(time, lambda now: 5 if now < 15 else 6)
    progress = _wait(backend, time, quorum=0.6, timeout=600, poll_seconds=10)
    assert progress.annotated == 6 and backend.polls == [0, 10, 20]


def test_at_the_timeout_it_returns_the_last_progress_and_never_sleeps_past_the_deadline():
    time = FakeTime()
    backend = Scripted(time, lambda now: 2)
    progress = _wait(backend, time, timeout=25, poll_seconds=10)
    assert progress.annotated == 2
    assert backend.polls == [0, 10, 20, 25]
    assert time.sleeps == [10, 10, 5]  # the last sleep ends at the deadline


def test_without_a_timeout_it_polls_once():
    time = FakeTime()
    backend = Scripted(time, lambda now: 0)
    assert _wait(backend, time, poll_seconds=10).annotated == 0
    assert backend.polls == [0] and time.sleeps == []


def test_a_wake_up_polls_at_once_instead_of_at_the_next_interval():
    time = FakeTime()
    backend = Scripted(time, lambda now: 10 if now >= 3 else 0)
    wake = FakeWake(time, after=3)  # the webhook fires 3 s into a 30 s wait
    progress = _wait(backend, time, timeout=60, poll_seconds=30, wake=wake)
    assert progress.fraction == 1.0
    assert backend.polls == [0, 3]
    assert wake.waits == [30] and wake.cleared == 1
    assert time.sleeps == []  # with a wake event it waits on the event, not on sleep


def test_without_a_wake_up_it_still_polls_at_the_interval():
    time = FakeTime()
    backend = Scripted(time, lambda now: 10 if now >= 50 else 0)
    wake = FakeWake(time, after=None)  # no webhook ever arrives: polling alone finds the answers
    assert _wait(backend, time, timeout=600, poll_seconds=30, wake=wake).annotated == 10
    assert backend.polls == [0, 30, 60] and wake.waits == [30, 30]


def test_simulated_annotators_are_found_at_the_first_poll_after_their_answers(tmp_path):
    time = FakeTime()
    ids = [f"i{i}" for i in range(10)]
    backend = SimulatedBackend(
        dict.fromkeys(ids, "a"),
        ["a", "b"],
        tmp_path / "s.parquet",
        annotators=[SimulatedAnnotator("s", latency=60)],  # answers 30-90 s after dispatch
        clock=time.timestamp,
    )
    batch = pd.DataFrame(
        {"id": ids, "round": 1, "rank": range(1, 11), "score": np.linspace(1.0, 0.0, 10)}
    )
    backend.dispatch(batch, 1)
    answered_at = sorted(
        (pd.read_parquet(backend.state_file)["time"] - START).dt.total_seconds().tolist()
    )
    assert answered_at[0] > 20 and len(answered_at) == 10
    seen: list[tuple[float, int]] = []
    progress = backend.progress

    def recorded(round_: int) -> Progress:
        seen.append((time.now, progress(round_).annotated))
        return Progress(dispatched=10, annotated=seen[-1][1], annotations=seen[-1][1])

    backend.progress = recorded
    assert _wait(backend, time, timeout=20, poll_seconds=15).annotated == 0  # before any answer
    assert seen == [(0, 0), (15, 0), (20, 0)]
    seen.clear()
    assert _wait(backend, time, timeout=600, poll_seconds=15).annotated == 10
    polls = [20.0]
    while polls[-1] < answered_at[-1]:
        polls.append(polls[-1] + 15)
    assert seen == [(t, sum(a <= t for a in answered_at)) for t in polls]
