"""The round flow: ingest -> select -> dispatch -> collect -> train -> evaluate -> monitor ->
version, each a thin task over a plain, resumable step in ``tasks.rounds``.

A round whose batch has not reached its quorum ends the run as ``waiting`` (nothing holds a
worker); the next run of the loop continues it from its state file.
"""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from flows.progress import report
from tasks import rounds
from tasks.settings import Settings

TRANSIENT = (ConnectionError, TimeoutError, OSError)


def _transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only failures that a second try can fix: the annotation backend or the network."""
    from tasks.annotation.base import AnnotationBackendError

    error = state.result(raise_on_failure=False)
    return isinstance(error, (AnnotationBackendError, *TRANSIENT))


class RoundResult(BaseModel):
    """What a round run returns: its id, whether it finished or waits for labels, its numbers."""

    round: int
    id: str
    status: Literal["running", "waiting", "complete"]
    steps: list[str]
    n_labels: int | None = None
    metrics: dict[str, float] = {}
    promoted: bool | None = None
    labeled_fraction: float | None = None
    flags: list[str] = []


def _result(state: rounds.RoundState) -> RoundResult:
    info = state.info
    return RoundResult(
        round=state.round,
        id=state.id,
        status=state.status,
        steps=list(state.steps),
        n_labels=info.get("n_labels"),
        metrics=info.get("metrics", {}),
        promoted=info.get("promoted"),
        labeled_fraction=info.get("labeled_fraction"),
        flags=info.get("flags", []),
    )


@task(name="begin", cache_policy=NO_CACHE)
def begin_task(settings: Settings, round_: int) -> rounds.RoundState:
    return rounds.begin_round(settings, round_)


@task(name="ingest", cache_policy=NO_CACHE)
def ingest_task(settings: Settings, round_: int) -> rounds.RoundState:
    return rounds.ingest_new(settings, round_)


@task(name="select", cache_policy=NO_CACHE)
def select_task(settings: Settings, round_: int) -> rounds.RoundState:
    return rounds.select(settings, round_)


@task(
    name="dispatch",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=10,
    retry_condition_fn=_transient,
)
def dispatch_task(settings: Settings, round_: int) -> rounds.RoundState:
    return rounds.dispatch(settings, round_)


@task(
    name="collect",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=10,
    retry_condition_fn=_transient,
)
def collect_task(settings: Settings, round_: int) -> rounds.RoundState:
    return rounds.collect(settings, round_)


@task(name="train", cache_policy=NO_CACHE)
def train_task(settings: Settings, round_: int) -> rounds.RoundState:
    return rounds.train(settings, round_)


@task(name="evaluate", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def evaluate_task(settings: Settings, round_: int) -> rounds.RoundState:
    return rounds.evaluate(settings, round_)


@task(name="monitor", cache_policy=NO_CACHE)
def monitor_task(settings: Settings, round_: int) -> rounds.RoundState:
    return rounds.monitor(settings, round_)


@task(name="version", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5)
def version_task(settings: Settings, round_: int) -> rounds.RoundState:
    return rounds.version(settings, round_)


@flow(name="labelwise-round", flow_run_name="round-{round_}", validate_parameters=True)
def round_flow(settings: Settings, round_: int | None = None) -> RoundResult:
    """Run (or continue) one round; ``round_`` None: the unfinished round, else the next one."""
    if round_ is None:
        round_ = rounds.unfinished_round(settings) or rounds.next_round(settings)
    state = begin_task(settings, round_)
    for step in (ingest_task, select_task, dispatch_task, collect_task):
        state = step(settings, round_)
        report("step", round=round_, step=step.name, state=state)
    if state.status == "waiting":
        return _result(state)
    for step in (train_task, evaluate_task, monitor_task, version_task):
        state = step(settings, round_)
        report("step", round=round_, step=step.name, state=state)
    return _result(state)
