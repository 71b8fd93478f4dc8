"""The round flow: ingest -> select -> dispatch -> collect -> train -> evaluate -> monitor ->
version, each a thin task over a plain, resumable step in ``tasks.loop.labeling`` and
``tasks.loop.learning`` (their state: ``tasks.loop.rounds``).

A round whose batch has not reached its quorum ends the run as ``waiting`` (nothing holds a
worker); the next run of the loop continues it from its state file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from flows import slot
from flows.knobs import Backend, run_settings
from flows.progress import report
from tasks.loop import labeling, learning, lifecycle, rounds
from tasks.settings import ScaleSettings, Settings

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
    training: str | None = None  # why no model was trained this round (a cold project)


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
        training=info.get("waiting"),
    )


@task(name="begin", cache_policy=NO_CACHE)
def begin_task(settings: Settings, round_: int) -> rounds.RoundState:
    return lifecycle.begin_round(settings, round_)


@task(name="ingest", cache_policy=NO_CACHE)
def ingest_task(settings: Settings, round_: int) -> rounds.RoundState:
    return labeling.ingest_new(settings, round_)


def scaled_query(scale: ScaleSettings, work_dir: Path, name: str, chunk_size: int) -> Any:
    """A ``query`` for :func:`tasks.loop.labeling.select` that scores the pool's chunks on Dask
    (``flows.scale.select_at_scale``): the pool's features go to ``<work_dir>/scale/<name>.npy``
    so each worker reads its own rows. Strategies that need the whole pool at once (core-set, the
    random-fraction guard, ...) fall back to the in-process query, with a warning."""

    def query(strategy: Any, model: Any, X_pool: np.ndarray, batch: int, **kwargs: Any) -> Any:
        from flows.scale import select_at_scale
        from strategies.base import NotChunkable

        path = Path(work_dir) / "scale" / f"{name}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, np.ascontiguousarray(X_pool))  # chunks are row ranges of a C array
        try:
            return select_at_scale(scale, strategy, model, path, batch, **kwargs).selection
        except NotChunkable as exc:
            get_run_logger().warning("scale-out not possible (%s): scoring in process", exc)
            return strategy.query(model, X_pool, batch, chunk_size=chunk_size, **kwargs)
        finally:
            path.unlink(missing_ok=True)

    return query


def _predict_failed(task: Any, task_run: Any, state: Any) -> bool:
    """Retry a call of your model only when it raised (a wrong answer would come back wrong)."""
    from tasks.external.model import PredictFailed

    return isinstance(state.result(raise_on_failure=False), PredictFailed)


@task(name="predict", cache_policy=NO_CACHE, retry_condition_fn=_predict_failed)
def predict_task(fn: Any, spec: str, items: Any, call: int) -> Any:
    """One call of your ``model.predict`` on a chunk of items (``model.kind: external``)."""
    from tasks.external.model import call_predict

    return call_predict(fn, spec, items, call)


def external_predict(settings: Settings) -> Any:
    """``predict_task`` with ``model.predict_retries`` retries, the delays doubling; None when
    the project trains its own model."""
    if settings.model.kind != "external":
        return None
    first = settings.model.predict_retry_delay_seconds
    delays = [first * 2**n for n in range(settings.model.predict_retries)]
    return predict_task.with_options(
        retries=settings.model.predict_retries, retry_delay_seconds=delays or 0
    )


@task(name="select", cache_policy=NO_CACHE)
def select_task(settings: Settings, round_: int) -> rounds.RoundState:
    query = None
    if settings.scale.executor == "dask":
        work_dir = Path(settings.project.work_dir)
        query = scaled_query(
            settings.scale, work_dir, rounds.round_id(round_), settings.strategy.chunk_size
        )
    return labeling.select(settings, round_, query=query, predict=external_predict(settings))


@task(name="dispatch", cache_policy=NO_CACHE, retry_condition_fn=_transient)
def dispatch_task(settings: Settings, round_: int) -> rounds.RoundState:
    return labeling.dispatch(settings, round_)


@task(name="collect", cache_policy=NO_CACHE, retry_condition_fn=_transient)
def collect_task(settings: Settings, round_: int) -> rounds.RoundState:
    return labeling.collect(settings, round_)


@task(name="train", cache_policy=NO_CACHE)
def train_task(settings: Settings, round_: int) -> rounds.RoundState:
    return learning.train(settings, round_, predict=external_predict(settings))


@task(name="evaluate", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
def evaluate_task(settings: Settings, round_: int) -> rounds.RoundState:
    return learning.evaluate(settings, round_)


@task(name="monitor", cache_policy=NO_CACHE)
def monitor_task(settings: Settings, round_: int) -> rounds.RoundState:
    return learning.monitor(settings, round_)


@task(name="version", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5)
def version_task(settings: Settings, round_: int) -> rounds.RoundState:
    return learning.version(settings, round_)


@flow(name="labelwise-round", flow_run_name="round-{round_}", validate_parameters=True)
def round_flow(
    settings: Settings,
    round_: int | None = None,
    overrides: list[str] | None = None,
    strategy: str | None = None,
    batch_size: int | None = None,
    label_budget: int | None = None,
    annotation_backend: Backend | None = None,
) -> Any:
    """Run (or continue) one round.

    One round of a project runs at a time (:mod:`flows.slot`): a run that finds the slot held by
    a live run ends ``Skipped`` (or waits, ``serve.when_busy: wait``); a dead run's slot is
    taken over.

    Args:
        settings: every setting of the project (``params.yaml``); the fields above override them
        round_: the round to run (empty: the unfinished round, else the next one)
        overrides: more settings to change for this run, as KEY=VALUE, e.g. loop.quorum=0.8
        strategy: the query strategy for this run, a name from `labelwise strategies`
        batch_size: items selected in this round
        label_budget: stop selecting once this many annotations are spent
        annotation_backend: where items are labeled: simulated, label_studio or files
    """
    from prefect.states import Completed

    settings = run_settings(
        settings,
        overrides,
        strategy=strategy,
        batch_size=batch_size,
        label_budget=label_budget,
        annotation_backend=annotation_backend,
    )
    with slot.round_slot(settings) as held:
        if not held.held:
            message = held.skipped()
            get_run_logger().warning(message)
            return Completed(name="Skipped", message=message)
        if round_ is None:
            round_ = rounds.unfinished_round(settings) or rounds.next_round(settings)
        return _run_round(settings, round_)


def with_backend_retries(step: Any, settings: Settings) -> Any:
    """``step`` retried ``annotation.retries`` times, the delays doubling from
    ``annotation.retry_delay_seconds`` (each try shows as AwaitingRetry in the Prefect UI)."""
    first = settings.annotation.retry_delay_seconds
    delays = [first * 2**n for n in range(settings.annotation.retries)]
    return step.with_options(retries=settings.annotation.retries, retry_delay_seconds=delays)


def backend_down(settings: Settings, round_: int, step: str, exc: Exception) -> Any:
    """The state a round ends in when its annotation backend stayed unreachable through every
    retry: ``Failed`` named ``AnnotationBackendDown``, saying what was kept and what to do."""
    from prefect.states import Failed

    tries = settings.annotation.retries + 1
    message = (
        f"{rounds.round_id(round_)}: {step} failed {'once' if tries == 1 else f'{tries} times'}, "
        "the annotation backend "
        f"({settings.annotation.backend}) is down or refusing: {exc}. The round's batch and "
        "every label already collected are kept; run the round again once it answers: it "
        f"continues from {step}."
    )
    get_run_logger().error(message)
    return Failed(name="AnnotationBackendDown", message=message)


def _run_round(settings: Settings, round_: int) -> Any:
    from tasks.annotation.base import AnnotationBackendError

    state = begin_task(settings, round_)
    for step in (ingest_task, select_task, dispatch_task, collect_task):
        if step in (dispatch_task, collect_task):
            step = with_backend_retries(step, settings)
        try:
            state = step(settings, round_)
        except AnnotationBackendError as exc:
            return backend_down(settings, round_, step.name, exc)
        report("step", round=round_, step=step.name, state=state)
    if state.status == "waiting":
        return _result(state)
    for step in (train_task, evaluate_task, monitor_task, version_task):
        state = step(settings, round_)
        report("step", round=round_, step=step.name, state=state)
    return _result(state)
