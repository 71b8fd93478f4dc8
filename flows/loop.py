"""The loop flow: rounds until a stopping rule fires, or until a round waits for labels.

Rerunning it continues where it stopped: an unfinished round (crashed, or waiting for its
quorum) is continued first; a loop whose stopping rule has fired stops again at once.
"""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed
from pydantic import BaseModel

from flows.knobs import Backend, run_settings
from flows.progress import report
from flows.round import RoundResult, round_flow
from flows.slot import round_slot
from tasks.loop import lifecycle, rounds
from tasks.settings import Settings


class LoopResult(BaseModel):
    """How the loop run ended: ``stopped`` (a rule fired, with its reason), ``waiting`` (for
    labels) or ``skipped`` (another run of the project held its round slot)."""

    status: Literal["stopped", "waiting", "skipped"]
    reason: str
    rule: str | None = None
    rounds: list[RoundResult] = []
    n_labels: int | None = None
    metric: str
    score: float | None = None
    mlflow_run_id: str | None = None


@task(name="prepare-loop", cache_policy=NO_CACHE)
def prepare_task(settings: Settings) -> rounds.LoopState:
    return lifecycle.prepare_loop(settings)


@task(name="stopping-rules", cache_policy=NO_CACHE)
def stopping_task(settings: Settings, max_rounds: bool = True) -> Any:
    return lifecycle.stop_decision(settings, max_rounds=max_rounds)


@task(name="finish-loop", cache_policy=NO_CACHE)
def finish_task(settings: Settings, reason: str | None) -> rounds.LoopState:
    return lifecycle.finish_loop(settings, reason)


@flow(
    name="labelwise-loop",
    flow_run_name="loop-{settings.project.name}",
    validate_parameters=True,
)
def loop_flow(
    settings: Settings,
    rounds_this_run: int | None = None,
    overrides: list[str] | None = None,
    strategy: str | None = None,
    batch_size: int | None = None,
    label_budget: int | None = None,
    annotation_backend: Backend | None = None,
) -> Any:
    """Run rounds until a stopping rule fires (``loop`` section of the settings).

    Args:
        settings: every setting of the project (``params.yaml``); the fields above override them
        rounds_this_run: run at most this many rounds now (empty: until a stopping rule fires)
        overrides: more settings to change for this run, as KEY=VALUE, e.g. loop.quorum=0.8
        strategy: the query strategy for this run, a name from `labelwise strategies`
        batch_size: items selected per round
        label_budget: stop once this many annotations are spent
        annotation_backend: where items are labeled: simulated, label_studio or files
    """
    settings = run_settings(
        settings,
        overrides,
        strategy=strategy,
        batch_size=batch_size,
        label_budget=label_budget,
        annotation_backend=annotation_backend,
    )
    with round_slot(settings) as held:
        if not held.held:
            message = held.skipped()
            get_run_logger().warning(message)
            skipped = LoopResult(status="skipped", reason=message, metric=settings.evaluate.metric)
            return Completed(name="Skipped", message=message, data=skipped)
        return _run_loop(settings, rounds_this_run)


def _run_loop(settings: Settings, rounds_this_run: int | None) -> Any:
    loop = prepare_task(settings)
    done: list[RoundResult] = []
    rule, reason = None, ""
    while True:
        pending = rounds.unfinished_round(settings)
        if pending is None:
            decision = stopping_task(settings, max_rounds=rounds_this_run is None)
            if decision.stop:
                rule, reason = decision.rule, decision.reason
                break
            if rounds_this_run is not None and len(done) >= rounds_this_run:
                rule, reason = "rounds", f"{len(done)} round(s) run, as asked (--rounds)"
                break
        number = pending if pending is not None else rounds.next_round(settings)
        report("round_start", round=number, continued=pending is not None)
        result = round_flow(settings, number)
        report("round_end", result=result)
        done.append(result)
        if result.status == "waiting":
            finish_task(settings, None)
            summary = lifecycle.summary(settings)
            message = (
                f"waiting for labels: {result.id} has {result.labeled_fraction or 0:.0%} of its "
                f"batch labeled, quorum {settings.loop.quorum:.0%}; the next run continues it"
            )
            waiting = LoopResult(
                status="waiting",
                reason=message,
                rounds=done,
                n_labels=summary["n_labels"],
                metric=summary["metric"],
                score=summary["score"],
                mlflow_run_id=loop.mlflow_run_id,
            )
            report("loop_end", result=waiting)
            return Completed(name="Waiting", message=message, data=waiting)
    finish_task(settings, reason)
    summary = lifecycle.summary(settings)
    result = LoopResult(
        status="stopped",
        reason=reason,
        rule=rule,
        rounds=done,
        n_labels=summary["n_labels"],
        metric=summary["metric"],
        score=summary["score"],
        mlflow_run_id=loop.mlflow_run_id,
    )
    report("loop_end", result=result)
    return result
