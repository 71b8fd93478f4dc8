"""The loop around the rounds: its MLflow parent run and stop set, each round's beginning, the
stopping decision over finished rounds, the summary, and the loop's end."""

from __future__ import annotations

from typing import Any

import pandas as pd

from tasks.data import store
from tasks.data.profile import resolve
from tasks.loop.rounds import (
    LoopState,
    RoundState,
    load_loop,
    load_round,
    round_states,
    save_loop,
    save_round,
    tracked,
)
from tasks.loop.training_data import training_labels
from tasks.settings import Settings
from tasks.tracking.runs import setup_tracking


@tracked("prepare-loop")
def prepare_loop(settings: Settings) -> LoopState:
    """Create the loop's MLflow parent run and choose the stop set, once."""
    import mlflow

    from tasks.tracking.runs import start_loop_run

    loop = load_loop(settings)
    tracking = setup_tracking(settings)
    if loop.mlflow_run_id is None:
        with start_loop_run(tracking, settings, run_name=f"loop-{settings.project.name}") as run:
            loop.mlflow_run_id = run.info.run_id
        save_loop(settings, loop)
    else:
        mlflow.MlflowClient().update_run(loop.mlflow_run_id, status="RUNNING")
    if not loop.stop_ids and settings.loop.stop_set_size:
        pool = store.read_pool(settings)
        labeled = set(store.read_labels(settings)["id"])
        candidates = sorted(set(pool["id"]) - labeled)
        rng = settings.project.rng("stop_set")
        size = min(settings.loop.stop_set_size, len(candidates))
        picks = rng.choice(len(candidates), size=size, replace=False) if size else []
        loop.stop_ids = [candidates[int(i)] for i in sorted(picks)]
        save_loop(settings, loop)
    return loop


@tracked("begin")
def begin_round(settings: Settings, round_: int) -> RoundState:
    """Load (or create) the round's state and its nested MLflow run under the loop run."""
    from tasks.tracking.runs import start_round_run

    state = load_round(settings, round_)
    if state.status == "waiting":
        state.status = "running"
    if "mlflow_run_id" not in state.info:
        loop = load_loop(settings) if load_loop(settings).mlflow_run_id else prepare_loop(settings)
        tracking = setup_tracking(settings)
        with start_round_run(
            tracking,
            round_,
            parent_run_id=loop.mlflow_run_id,
            tags={"labelwise.round_id": state.id},
        ) as run:
            state.info["mlflow_run_id"] = run.info.run_id
    return save_round(settings, state)


def loop_records(settings: Settings) -> list[Any]:
    """The finished rounds as ``stopping.RoundRecord`` (score: the champion's, on the target
    metric)."""
    settings = resolve(settings)
    from tasks.loop.stopping import RoundRecord

    metric = settings.loop.target_metric or settings.evaluate.metric
    records = []
    for state in round_states(settings):
        if state.status != "complete":
            continue
        champion = state.info.get("champion_metrics") or {}
        records.append(
            RoundRecord(
                round=state.round,
                n_labels=int(state.info.get("n_labels", 0)),
                score=champion.get(metric),
                stop_predictions=tuple(state.info.get("stop_predictions") or ()) or None,
                n_annotations=state.info.get("n_annotations"),
            )
        )
    return records


def stop_decision(settings: Settings, *, max_rounds: bool = True) -> Any:
    """Apply the stopping rules to the finished rounds (``max_rounds=False``: skip that rule)."""
    settings = resolve(settings)
    from tasks.loop import stopping
    from tasks.model.metrics import higher_is_better

    metric = settings.loop.target_metric or settings.evaluate.metric
    loop = settings.loop
    if not max_rounds:
        loop = loop.model_copy(update={"max_rounds": 10**9})
    return stopping.should_stop(
        loop_records(settings), loop, metric=metric, higher=higher_is_better(metric)
    )


@tracked("finish-loop")
def finish_loop(settings: Settings, reason: str | None) -> LoopState:
    """Record why the loop stopped (None: it is waiting) and close its MLflow run."""
    import mlflow

    loop = load_loop(settings)
    loop.stopped = reason
    save_loop(settings, loop)
    if loop.mlflow_run_id:
        setup_tracking(settings)
        client = mlflow.MlflowClient()
        client.set_tag(loop.mlflow_run_id, "labelwise.stop_reason", reason or "waiting for labels")
        client.set_terminated(loop.mlflow_run_id, "FINISHED")
    return loop


def summary(settings: Settings) -> dict[str, Any]:
    """Labels used, rounds done and the champion's holdout metrics, from the state files."""
    settings = resolve(settings)
    records = loop_records(settings)
    loop = load_loop(settings)
    return {
        "rounds": len(records),
        "n_labels": records[-1].n_labels if records else len(training_labels(settings)),
        "metric": settings.evaluate.metric,
        "score": loop.champion_metrics.get(settings.evaluate.metric),
        "champion_round": loop.champion_round,
        "stopped": loop.stopped,
    }


def dispatch_log(settings: Settings) -> pd.DataFrame:
    """Every manifest row of every round (what was selected to be sent), for audits and tests."""
    folder = store.data_paths(settings).manifests
    frames = [pd.read_parquet(p) for p in sorted(folder.glob("round-*.parquet"))]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
