"""``labelwise serve``: a served deployment, triggered through the Prefect API with a
parameter override, completes a round; two rounds of one project started at once run one after
the other (the project's global concurrency limit), with no item dispatched twice.

Two runs at once are two threads of this process; the one that selects round 1 first pauses at a
failpoint until the other one has been skipped or waits for the slot, so they surely overlap."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from tasks.data import store
from tasks.failpoints import DIR_VARIABLE, VARIABLE, signal_path
from tasks.loop import demo as project
from tasks.loop import lifecycle, rounds
from tasks.settings import Settings

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.usefixtures("prefect_harness"),
]

BATCH, SEED_LABELS = 5, 20
#: where the first of two runs at once pauses: round 1 selected, the round slot held
HOLD = "round-0001/after:selected"
OVERLAP_TIMEOUT = 300.0


def _sections(name: str, **serve: object) -> dict[str, dict]:
    """The digits demo, 200 rows (20 labeled), 3 rounds of 5 margin picks, triggered only."""
    return {
        "project": {"name": name, "seed": 5},
        "strategy": {"name": "margin", "batch_size": BATCH},
        "loop": {
            "max_rounds": 3,
            "demo_rows": 200,
            "holdout_fraction": 0.25,
            "initial_labels": SEED_LABELS,
            "stop_set_size": 20,
        },
        "serve": {"cron": None, **serve},
    }


def _per_round(settings: Settings) -> dict[int, int]:
    return store.read_labels(settings).groupby("round").size().to_dict()


def _sent(settings: Settings) -> pd.Series:
    return pd.read_parquet(Path(settings.project.work_dir) / "annotation" / "simulated.parquet")[
        "id"
    ]


def _in_thread(target, *args) -> threading.Thread:
    """A thread that runs ``target`` in a copy of this context (the test harness's API URL)."""
    thread = threading.Thread(
        target=contextvars.copy_context().run, args=(target, *args), daemon=True
    )
    thread.start()
    return thread


def _stop(runner, loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    """Stop the runner in its own event loop (once it has started) and wait for its thread."""
    deadline = time.monotonic() + 60
    while thread.is_alive() and not runner.started and time.monotonic() < deadline:
        time.sleep(0.2)
    if runner.started:
        asyncio.run_coroutine_threadsafe(runner.astop(), loop).result(timeout=60)
    thread.join(timeout=60)


def _wait_until(condition, what: str) -> None:
    deadline = time.monotonic() + OVERLAP_TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {OVERLAP_TIMEOUT:.0f} s for {what}")
        time.sleep(0.05)


def _two_at_once(settings: Settings, flow, monkeypatch, *, release_once: str) -> list:
    """Start ``flow(settings)`` twice at once, in two threads; the two final states.

    The run that selects round 1 first pauses there (:data:`HOLD`) until the other one has ended
    (``release_once="ended"``: it was skipped) or has found the slot taken and waits for it
    (``"waiting"``); then round 1 goes on."""
    import flows.slot

    assert release_once in ("ended", "waiting")
    folder = Path(settings.project.work_dir) / "failpoints"
    monkeypatch.setenv(VARIABLE, f"{HOLD}=pause")
    monkeypatch.setenv(DIR_VARIABLE, str(folder))
    refused = []  # every attempt on the slot that found it taken
    take = flows.slot.try_take

    def try_take(settings_: Settings):
        mine, other, state = take(settings_)
        if mine is None:
            refused.append(other)
        return mine, other, state

    monkeypatch.setattr(flows.slot, "try_take", try_take)
    states, errors = [], []

    def one_run() -> None:
        try:
            states.append(flow(settings, return_state=True))
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [_in_thread(one_run) for _ in range(2)]
    try:
        _wait_until(lambda: signal_path(HOLD, "reached").exists() or errors, f"{HOLD} reached")
        if release_once == "ended":
            _wait_until(lambda: states or errors, "the other run to end while round 1 is held")
        else:
            _wait_until(lambda: refused or errors, "the other run to wait for the round slot")
    finally:
        folder.mkdir(parents=True, exist_ok=True)
        signal_path(HOLD, "release").touch()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors and len(states) == 2
    assert refused  # the two runs overlapped: one found the slot held by the other
    return states


def _slot_is_free(settings: Settings) -> bool:
    from prefect.client.orchestration import get_client

    from flows.slot import limit_name

    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(limit_name(settings))
    return limit.limit == 1 and limit.active_slots == 0


def test_two_rounds_triggered_at_once_run_one_round_and_the_other_is_skipped(
    tmp_path, monkeypatch, make_settings
):
    from flows.round import round_flow

    monkeypatch.chdir(tmp_path)
    settings = make_settings(**_sections("it-skip"))
    project.seed_project(settings)
    states = _two_at_once(settings, round_flow, monkeypatch, release_once="ended")
    names = sorted(state.name for state in states)
    assert names == ["Completed", "Skipped"]
    skipped = next(state for state in states if state.name == "Skipped")
    assert skipped.is_completed() and "holds the round slot" in skipped.message
    assert [state.round for state in rounds.round_states(settings)] == [1]
    assert _per_round(settings) == {0: SEED_LABELS, 1: BATCH}
    sent = _sent(settings)
    assert len(sent) == SEED_LABELS + BATCH and not sent.duplicated().any()
    assert _slot_is_free(settings)


def test_two_loops_triggered_at_once_run_one_loop(tmp_path, monkeypatch, make_settings):
    from flows.loop import loop_flow

    monkeypatch.chdir(tmp_path)
    settings = make_settings(**_sections("it-skip-loop"))
    project.seed_project(settings)
    states = _two_at_once(settings, loop_flow, monkeypatch, release_once="ended")
    by_name = {state.name: state for state in states}
    assert sorted(by_name) == ["Completed", "Skipped"]
    assert by_name["Skipped"].result().status == "skipped"
    ran = by_name["Completed"].result()
    assert ran.status == "stopped" and len(ran.rounds) == 3  # loop.max_rounds
    assert _per_round(settings) == {0: SEED_LABELS, 1: BATCH, 2: BATCH, 3: BATCH}
    assert not store.read_labels(settings)["id"].duplicated().any()
    assert _slot_is_free(settings)


def test_with_when_busy_wait_two_rounds_hold_the_slot_one_after_the_other(
    tmp_path, monkeypatch, make_settings
):
    from flows.round import round_flow

    monkeypatch.chdir(tmp_path)
    settings = make_settings(**_sections("it-slot", when_busy="wait"))
    project.seed_project(settings)
    states = _two_at_once(settings, round_flow, monkeypatch, release_once="waiting")
    results = [state.result() for state in states]
    # the second run waited for the slot, then saw round 1 done and ran round 2
    assert sorted(r.round for r in results) == [1, 2]
    assert {r.status for r in results} == {"complete"}
    first, second = rounds.load_round(settings, 1), rounds.load_round(settings, 2)
    first_done = max(map(datetime.fromisoformat, first.steps.values()))
    assert first_done <= min(map(datetime.fromisoformat, second.steps.values()))
    assert _per_round(settings) == {0: SEED_LABELS, 1: BATCH, 2: BATCH}
    assert not store.read_labels(settings)["id"].duplicated().any()
    sent = _sent(settings)  # what the simulated annotators were asked: the seed set, 2 batches
    assert len(sent) == SEED_LABELS + 2 * BATCH and not sent.duplicated().any()
    assert not lifecycle.dispatch_log(settings)["id"].duplicated().any()
    assert _slot_is_free(settings)


def test_a_round_that_cannot_get_the_slot_in_time_is_refused_with_a_clear_message(
    tmp_path, monkeypatch, make_settings
):
    from prefect.concurrency.sync import concurrency

    from flows.round import round_flow
    from flows.slot import ensure_limit

    monkeypatch.chdir(tmp_path)
    settings = make_settings(**_sections("it-busy", when_busy="wait", slot_timeout_seconds=2))
    with concurrency(ensure_limit(settings), occupy=1, strict=True):
        state = round_flow(settings, 1, return_state=True)
    assert state.is_failed()
    with pytest.raises(TimeoutError, match="another round of project 'it-busy'"):
        state.result()
    assert not rounds.round_states(settings)  # nothing of the round was started


def test_a_served_deployment_run_through_the_api_completes_a_round(
    tmp_path, monkeypatch, make_settings
):
    from prefect.deployments import run_deployment
    from prefect.runner import Runner

    from flows.deploy import build_deployments

    monkeypatch.chdir(tmp_path)
    settings = make_settings(**_sections("it-serve", deployment="it"))
    project.seed_project(settings)
    deployments = build_deployments(settings)  # to_deployment returns a coroutine in async code
    runner = Runner(name="it-serve", query_seconds=1, pause_on_shutdown=False)
    loop = asyncio.new_event_loop()
    registered = threading.Event()

    async def serve() -> None:
        for deployment in deployments:
            await runner.aadd_deployment(deployment)
        registered.set()
        await runner.start()

    thread = _in_thread(loop.run_until_complete, serve())
    try:
        assert registered.wait(timeout=120), "the runner did not register the deployment"
        flow_run = run_deployment(
            "labelwise-loop/it",
            parameters={"rounds_this_run": 1, "overrides": ["strategy.batch_size=3"]},
            timeout=300,
            poll_interval=2,
        )
    finally:
        _stop(runner, loop, thread)
    assert not thread.is_alive()
    assert flow_run.state.is_completed(), flow_run.state
    assert (
        flow_run.parameters["settings"]["project"]["work_dir"]
        == settings.project.work_dir.as_posix()
    )
    assert rounds.load_round(settings, 1).status == "complete"
    assert _per_round(settings) == {0: SEED_LABELS, 1: 3}  # the override reached the run
    assert not rounds.unfinished_round(settings)


def test_the_zombie_automations_exist_once_however_often_the_project_is_deployed(make_settings):
    from prefect.client.orchestration import get_client

    from flows.deploy import SUBFLOW_AUTOMATION, ensure_zombie_automation, zombie_automation_name

    settings = make_settings(**_sections("it-zombie", heartbeat_seconds=40))
    ids = [ensure_zombie_automation(settings) for _ in range(2)]
    with get_client(sync_client=True) as client:
        [project] = client.read_automations_by_name(zombie_automation_name(settings))
        [rounds_] = client.read_automations_by_name(SUBFLOW_AUTOMATION)
    assert project.id == ids[-1]
    assert project.trigger.within.total_seconds() == 120  # 3 beats of 40 s
    assert project.trigger.match_related["prefect.resource.id"] == ["prefect.tag.project:it-zombie"]
    assert [a.type for a in project.actions] == ["change-flow-run-state", "run-deployment"]
    assert project.actions[1].parameters["overrides"][0] == "serve.when_busy=wait"
    assert [a.type for a in rounds_.actions] == ["change-flow-run-state"]
    off = settings.model_copy(
        update={"serve": settings.serve.model_copy(update={"heartbeat_seconds": None})}
    )
    assert ensure_zombie_automation(off) is None
