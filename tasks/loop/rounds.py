"""Round and loop state: what is done in each round, and what each step produced.

A round has an id (``round-0003``) and a state file ``<data_dir>/rounds/round-0003.json``,
written atomically after every step with the steps done and what they produced. Each step
(:func:`round_step`) returns at once if the state says it is done, so rerunning a round after a
crash at any point continues it. The loop's own state (its MLflow run, the stop set, the random
fraction after a drift flag, the champion's scores) is ``<data_dir>/rounds/loop.json``.

Steps, in order: ingest -> select -> dispatch -> collect (+ label gate; waits for the quorum) ->
train (+ training gate, register, promote) -> evaluate -> monitor -> version.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from tasks.data import store
from tasks.data.profile import resolve
from tasks.failpoints import step_point
from tasks.settings import Settings

STEPS = (
    "ingested",
    "selected",
    "dispatched",
    "collected",
    "trained",
    "evaluated",
    "monitored",
    "versioned",
)


class RoundError(RuntimeError):
    """A round cannot go on (no data, no features, an unknown round); the message says why."""


class TrackingError(RoundError):
    """The MLflow tracking server failed while a step logged to it; the step's inputs (labels,
    round state) are kept and a rerun continues from that step."""


def tracked(step: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Turn an MLflow or network failure inside ``step`` into a :class:`TrackingError` that
    names the tracking server and says how to continue."""

    def wrap(function: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(function)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            import mlflow
            import requests
            from mlflow.exceptions import MlflowException

            try:
                return function(*args, **kwargs)
            except (MlflowException, requests.RequestException, ConnectionError) as exc:
                detail = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""
                raise TrackingError(
                    f"MLflow tracking server {mlflow.get_tracking_uri()} failed during {step}: "
                    f"{type(exc).__name__}: {detail}. Labels and round state are kept; run the "
                    f"round again once the server answers: it continues from {step}"
                ) from exc

        return guarded

    return wrap


class RoundState(BaseModel):
    """What is done in one round, and what each step produced (``info``)."""

    round: int
    id: str
    status: Literal["running", "waiting", "complete"] = "running"
    steps: dict[str, str] = Field(default_factory=dict)
    info: dict[str, Any] = Field(default_factory=dict)

    def done(self, step: str) -> bool:
        return step in self.steps


class LoopState(BaseModel):
    """The loop's state across rounds and runs."""

    mlflow_run_id: str | None = None
    stop_ids: list[str] = Field(default_factory=list)
    random_fraction: float | None = None
    champion_round: int | None = None
    champion_metrics: dict[str, float] = Field(default_factory=dict)
    stopped: str | None = None


def rounds_dir(settings: Settings) -> Path:
    return Path(settings.project.data_dir) / "rounds"


def round_id(round_: int) -> str:
    return f"round-{round_:04d}"


def _round_file(settings: Settings, round_: int) -> Path:
    return rounds_dir(settings) / f"{round_id(round_)}.json"


def load_round(settings: Settings, round_: int) -> RoundState:
    path = _round_file(settings, round_)
    if not path.exists():
        return RoundState(round=round_, id=round_id(round_))
    return RoundState.model_validate_json(path.read_text(encoding="utf-8"))


def save_round(settings: Settings, state: RoundState) -> RoundState:
    store.write_json_atomic(state.model_dump(mode="json"), _round_file(settings, state.round))
    return state


def round_states(settings: Settings) -> list[RoundState]:
    """Every round with a state file, oldest first."""
    folder = rounds_dir(settings)
    if not folder.exists():
        return []
    numbers = sorted(int(p.stem.split("-")[1]) for p in folder.glob("round-*.json"))
    return [load_round(settings, n) for n in numbers]


def unfinished_round(settings: Settings) -> int | None:
    """The round to continue (crashed or waiting for labels), or None."""
    for state in round_states(settings):
        if state.status != "complete":
            return state.round
    return None


def next_round(settings: Settings) -> int:
    states = round_states(settings)
    return (states[-1].round if states else 0) + 1


def load_loop(settings: Settings) -> LoopState:
    path = rounds_dir(settings) / "loop.json"
    if not path.exists():
        return LoopState()
    return LoopState.model_validate_json(path.read_text(encoding="utf-8"))


def save_loop(settings: Settings, state: LoopState) -> LoopState:
    store.write_json_atomic(state.model_dump(mode="json"), rounds_dir(settings) / "loop.json")
    return state


def mark(settings: Settings, state: RoundState, step: str, **info: Any) -> RoundState:
    """Record ``step`` as done (with ``info``), save the state, pass ``after:<step>``."""
    state.info.update(info)
    state.steps[step] = datetime.now(UTC).isoformat()
    save_round(settings, state)
    step_point(state.id, f"after:{step}")
    return state


def json_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-safe dicts (NaN -> None) for the round state."""
    return [
        {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in row.items()}
        for row in frame.astype(object).to_dict(orient="records")
    ]


StepBody = Callable[..., "dict[str, Any] | RoundState | None"]


def round_step(done: str, *, tracking: str | None = None) -> Callable[[StepBody], Any]:
    """A resumable round step: ``body(settings, state, *args)`` runs only while ``done`` is not
    in the round's state; a dict it returns is recorded with the step as done, a
    :class:`RoundState` is returned as is (the step is not done yet, e.g. waiting for labels).
    ``tracking``: the step's name in the :class:`TrackingError` of an MLflow failure."""

    def wrap(body: StepBody) -> Callable[..., RoundState]:
        @wraps(body)
        def step(settings: Settings, round_: int, *args: Any, **kwargs: Any) -> RoundState:
            settings = resolve(settings)
            state = load_round(settings, round_)
            if state.done(done):
                return state
            outcome = body(settings, state, *args, **kwargs)
            if isinstance(outcome, RoundState):
                return outcome
            return mark(settings, state, done, **(outcome or {}))

        return tracked(tracking)(step) if tracking else step

    return wrap
