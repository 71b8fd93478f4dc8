"""One active-learning round as resumable steps (plain functions; the Prefect flows wrap them).

A round has an id (``round-0003``) and a state file ``<data_dir>/rounds/round-0003.json``,
written atomically after every step with the steps done and what they produced. Each step returns
at once if the state says it is done, so rerunning a round after a crash at any point continues
it: the manifest is written once, a batch is dispatched once (and backends skip ids already sent),
collect appends only annotations not yet in the label log, a registered model is not registered
again. The loop's own state (its MLflow run, the stop set, the random fraction after a drift
flag, the champion's scores) is ``<data_dir>/rounds/loop.json``.

Steps, in order: ingest -> select -> dispatch -> collect (+ label gate; waits for the quorum) ->
train (+ training gate, register, promote) -> evaluate -> monitor -> version.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial, wraps
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from tasks import models
from tasks.data import labels as label_gate
from tasks.data import store
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
NON_FEATURES = {"id", "ingest_batch", "first_seen", "label", "source_path"}
DEDUP_KEY = ["id", "annotator", "round", "source"]
#: what selects while no model can be trained (no labels yet, or one class only): typical rows of
#: the pool's uncovered clusters, no model call; manifest rows say ``source: cold_start``
COLD_START = "representative"
FLAGGED_TAG_CHARS = 5000


class RoundError(RuntimeError):
    """A round cannot go on (no data, no features, an unknown round); the message says why."""


class TrackingError(RoundError):
    """The MLflow tracking server failed while a step logged to it; the step's inputs (labels,
    round state) are kept and a rerun continues from that step."""


def _tracked(step: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
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


# ---------------------------------------------------------------- state files


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


def _mark(settings: Settings, state: RoundState, step: str, **info: Any) -> RoundState:
    state.info.update(info)
    state.steps[step] = datetime.now(UTC).isoformat()
    save_round(settings, state)
    step_point(state.id, f"after:{step}")
    return state


# ---------------------------------------------------------------- data helpers


def feature_columns(pool: pd.DataFrame, settings: Settings) -> list[str]:
    """``data.feature_columns``, or every numeric pool column that is not bookkeeping."""
    if settings.data.feature_columns:
        return list(settings.data.feature_columns)
    columns = [
        c for c in pool.columns if c not in NON_FEATURES and pd.api.types.is_numeric_dtype(pool[c])
    ]
    if not columns:
        raise RoundError(
            "the pool has no numeric feature columns; set data.feature_columns "
            "(text and image pools need a featurizer first)"
        )
    return columns


def _matrix(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    return frame[columns].to_numpy(dtype=np.float64)


def training_labels(settings: Settings) -> pd.DataFrame:
    """One label per labeled id: the latest, or, where several annotators answered an item, the
    ``annotation.aggregation`` of their votes (majority or Dawid-Skene), fit on those items only:
    single answers (the seed labels, items outside the overlap share) tell EM nothing about an
    annotator's errors and let it drift away from them. Aggregated rows carry ``n_votes`` and
    ``agreement``."""
    log = store.read_labels(settings)
    latest = store.latest_labels(log)
    votes = several_votes(latest_per_annotator(log)) if len(log) else log
    if votes.empty:
        return latest
    from tasks.annotation.aggregate import aggregate

    classes = [str(c) for c in settings.data.classes] or None
    agreed = aggregate(votes, settings.annotation.aggregation, classes)
    single = latest.loc[~latest["id"].isin(set(agreed["id"])), ["id", "label"]]
    single = single.assign(n_votes=1, agreement=1.0)
    columns = ["id", "label", "n_votes", "agreement"]
    return pd.concat([single, agreed[columns]], ignore_index=True)


def latest_per_annotator(log: pd.DataFrame) -> pd.DataFrame:
    ordered = log.reset_index(drop=True).sort_values("time", kind="stable")
    return ordered.drop_duplicates(["id", "annotator"], keep="last").reset_index(drop=True)


def several_votes(votes: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``votes`` (one per id and annotator) on items that several annotators answered."""
    return votes[votes.groupby("id")["annotator"].transform("nunique").gt(1)].reset_index(drop=True)


def labeled_frame(settings: Settings, pool: pd.DataFrame | None = None) -> pd.DataFrame:
    """Pool rows that have a training label, in pool order, with ``label``."""
    pool = store.read_pool(settings) if pool is None else pool
    labels = training_labels(settings)
    if labels.empty:
        return pool.iloc[:0].assign(label=pd.Series(dtype="object"))
    return pool.merge(labels[["id", "label"]], on="id", how="inner")


def _tracking(settings: Settings) -> Any:
    from tasks.tracking import setup_tracking

    return setup_tracking(settings)


def _in_run(run_id: str) -> Any:
    """Re-enter a round's MLflow run (each step opens and closes it: steps may run in threads)."""
    import mlflow

    return mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None)


def make_backend(settings: Settings) -> Any:
    """The configured annotation backend (``annotation.backend``); the simulated annotators
    answer from the demo project's known labels and the holdout's (gold items come from it)."""
    from tasks.annotation import make_backend as build

    if settings.annotation.backend != "simulated":
        return build(settings)
    truth_file = truth_path(settings)
    if not truth_file.exists():
        raise RoundError(
            f"{truth_file}: no known labels for the simulated annotators "
            "(`labelwise run` creates them with the demo project)"
        )
    truth = pd.read_parquet(truth_file)
    holdout = store.read_holdout(settings)
    known = dict(zip(holdout["id"].astype(str), holdout["label"].astype(str), strict=True))
    return build(settings, truth=known | dict(zip(truth["id"], truth["label"], strict=True)))


def truth_path(settings: Settings) -> Path:
    return Path(settings.project.work_dir) / "demo" / "truth.parquet"


# ---------------------------------------------------------------- loop set-up


@_tracked("prepare-loop")
def prepare_loop(settings: Settings) -> LoopState:
    """Create the loop's MLflow parent run and choose the stop set, once."""
    import mlflow

    from tasks.tracking import start_loop_run

    loop = load_loop(settings)
    tracking = _tracking(settings)
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
        rng = np.random.default_rng([settings.project.seed, 7919])
        size = min(settings.loop.stop_set_size, len(candidates))
        picks = rng.choice(len(candidates), size=size, replace=False) if size else []
        loop.stop_ids = [candidates[int(i)] for i in sorted(picks)]
        save_loop(settings, loop)
    return loop


@_tracked("begin")
def begin_round(settings: Settings, round_: int) -> RoundState:
    """Load (or create) the round's state and its nested MLflow run under the loop run."""
    from tasks.tracking import start_round_run

    state = load_round(settings, round_)
    if state.status == "waiting":
        state.status = "running"
    if "mlflow_run_id" not in state.info:
        loop = load_loop(settings) if load_loop(settings).mlflow_run_id else prepare_loop(settings)
        tracking = _tracking(settings)
        with start_round_run(
            tracking,
            round_,
            parent_run_id=loop.mlflow_run_id,
            tags={"labelwise.round_id": state.id},
        ) as run:
            state.info["mlflow_run_id"] = run.info.run_id
    return save_round(settings, state)


# ---------------------------------------------------------------- steps


def ingest_new(settings: Settings, round_: int) -> RoundState:
    """Ingest (through the ingest gate) every file in ``loop.inbox`` not ingested yet, then move
    it to ``inbox/ingested/``. Re-ingesting a file after a crash adds nothing (rows already
    present are skipped)."""
    from tasks.data.ingest import ingest

    state = load_round(settings, round_)
    if state.done("ingested"):
        return state
    inbox = settings.loop.inbox
    added = 0
    files: list[str] = []
    if inbox is not None and Path(inbox).exists():
        done_dir = Path(inbox) / "ingested"
        for path in sorted(p for p in Path(inbox).iterdir() if p.is_file()):
            result = ingest(path, settings, round_=round_)
            added += result.added
            files.append(path.name)
            done_dir.mkdir(exist_ok=True)
            path.replace(done_dir / path.name)
    return _mark(settings, state, "ingested", ingested_files=files, ingested_rows=added)


def _initial_model(settings: Settings, labeled: pd.DataFrame, columns: list[str]) -> Any:
    return models.fit_model(
        models.build_model(settings.model, random_state=settings.project.seed),
        _matrix(labeled, columns),
        labeled["label"].astype(str).to_numpy(),
    )


def select(settings: Settings, round_: int, query: Callable[..., Any] | None = None) -> RoundState:
    """Query the strategy with the champion (before the first champion: a model fit on the
    labels so far; with no labels or one class, the cold-start picks of ``COLD_START``) over pool
    rows neither labeled nor sent in an earlier round; write the manifest.

    ``query(strategy, model, X_pool, batch, **kwargs) -> Selection`` replaces the in-process
    ``strategy.query`` (the round flow passes the Dask scale-out when ``scale.executor: dask``)."""
    import strategies
    from tasks.registry import NoChampionError, load_champion

    state = load_round(settings, round_)
    if state.done("selected"):
        return state
    pool = store.read_pool(settings)
    if pool.empty:
        raise RoundError(f"{settings.project.data_dir}: the pool is empty; ingest data first")
    columns = feature_columns(pool, settings)
    labeled = labeled_frame(settings, pool)
    try:
        model, model_version = load_champion(_tracking(settings))
    except NoChampionError:
        model, model_version = None, "none"
        if labeled["label"].nunique() >= 2:
            model, model_version = _initial_model(settings, labeled, columns), "initial"
    sent = set()
    for earlier in range(0, round_):
        if store.data_paths(settings).manifest(earlier).exists():
            sent |= set(store.read_manifest(settings, earlier)["id"])
    exclude = pool["id"].isin(set(labeled["id"]) | sent).to_numpy()
    batch = settings.strategy.batch_size
    if settings.loop.label_budget is not None:
        spent = len(set(labeled["id"]) | sent)
        batch = max(0, min(batch, settings.loop.label_budget - spent))
    loop = load_loop(settings)
    strategy_settings = settings.strategy
    if loop.random_fraction is not None:
        strategy_settings = strategy_settings.model_copy(
            update={"random_fraction": loop.random_fraction}
        )
    rng = np.random.default_rng([settings.project.seed, round_])
    X_pool = _matrix(pool, columns)
    if batch and not exclude.all():
        strategy = strategy_settings.build()
        if model is None:  # a cold project: see COLD_START
            strategy, query = strategies.get(COLD_START), None
        if query is None:
            query = partial(strategy.query, chunk_size=settings.strategy.chunk_size)
        else:
            query = partial(query, strategy)
        selection = query(
            model,
            X_pool,
            batch,
            X_labeled=_matrix(labeled, columns),
            y_labeled=labeled["label"].astype(str).to_numpy(),
            random_state=rng,
            exclude=exclude,
        )
        ids, scores, sources = (
            pool["id"].to_numpy()[selection.indices],
            selection.scores,
            ["cold_start"] * len(selection) if model is None else list(selection.sources),
        )
    else:
        ids, scores, sources = [], [], "strategy"
    store.write_manifest(
        settings,
        round_,
        ids,
        scores,
        strategy=settings.strategy.name,
        strategy_params=settings.strategy.params,
        model_version=model_version,
        source=sources,
    )
    step_point(state.id, "during:select")
    return _mark(
        settings,
        state,
        "selected",
        n_selected=len(ids),
        selection_model=model_version,
        random_fraction=strategy_settings.random_fraction,
    )


def dispatch(settings: Settings, round_: int, backend: Any = None) -> RoundState:
    """Send the manifest's items to the annotation backend, once, with gold items mixed in
    (``annotation.gold_fraction``; their ids are recorded as ``gold_ids``, see :func:`with_gold`)."""
    state = load_round(settings, round_)
    if state.done("dispatched"):
        return state
    backend = make_backend(settings) if backend is None else backend
    manifest = store.read_manifest(settings, round_)
    pool = store.read_pool(settings)
    batch = manifest[["id", "round", "rank", "score"]].merge(pool, on="id", how="left")
    mixed, gold_ids = with_gold(settings, round_, batch)
    sent = backend.dispatch(mixed, round_) if len(mixed) else []
    step_point(state.id, "during:dispatch")
    return _mark(
        settings,
        state,
        "dispatched",
        n_dispatched=len(batch),
        newly_sent=len(sent),
        gold_ids=gold_ids,
    )


def with_gold(
    settings: Settings, round_: int, batch: pd.DataFrame
) -> tuple[pd.DataFrame, list[str]]:
    """``batch`` with ``annotation.gold_fraction`` gold items mixed in at random ranks, and their ids.

    Gold items are holdout rows: their labels are known and do not come from the annotators being
    checked. Backends skip ids sent before, so each holdout row is gold in one round at most. Gold
    ids are not in the manifest (the quorum ignores them) and their answers never reach the label
    log (:func:`collect` keeps them in ``gold_answers.parquet``), so the holdout stays out of
    training. The same round always gets the same gold items (a rerun after a crash sends none).
    """
    from tasks.annotation.aggregate import mix_gold

    if settings.annotation.gold_fraction <= 0 or batch.empty:
        return batch, []
    used = {
        i for s in round_states(settings) if s.round != round_ for i in s.info.get("gold_ids", [])
    }
    holdout = store.read_holdout(settings)
    candidates = holdout[~holdout["id"].astype(str).isin(used)]
    rng = np.random.default_rng([settings.project.seed, round_, 6])
    mixed = mix_gold(batch, candidates, settings.annotation.gold_fraction, random_state=rng)
    gold_ids = mixed.loc[mixed["gold"], "id"].astype(str).tolist()
    # the flag stays here: a backend that showed it would tell annotators which items are tests
    return mixed.drop(columns="gold"), gold_ids


def new_annotations(settings: Settings, annotations: pd.DataFrame) -> pd.DataFrame:
    """The annotations not yet in the label log, keyed by (id, annotator, round, source)."""
    if annotations.empty:
        return annotations
    frame = annotations.copy()
    frame["round"] = frame["round"].astype("int64")
    for column in ("id", "annotator", "source"):
        frame[column] = frame[column].astype(str)
    frame = frame.drop_duplicates(DEDUP_KEY, keep="first")
    log = store.read_labels(settings)[DEDUP_KEY].astype({"round": "int64"})
    merged = frame.merge(log.drop_duplicates(), on=DEDUP_KEY, how="left", indicator=True)
    return frame[(merged["_merge"] == "left_only").to_numpy()].reset_index(drop=True)


def gold_answers_path(settings: Settings) -> Path:
    return store.data_paths(settings).root / "gold_answers.parquet"


def gold_answers(settings: Settings) -> pd.DataFrame:
    """Every answer collected on a gold item (label-log columns); never training labels."""
    path = gold_answers_path(settings)
    if not path.exists():
        return store.LABELS_SCHEMA.empty_table().to_pandas()
    return pd.read_parquet(path)


def store_gold_answers(settings: Settings, answers: pd.DataFrame) -> int:
    """Append the answers on gold items not stored yet (same key as the label log); returns how
    many were new."""
    if answers.empty:
        return 0
    fresh = store.normalize_labels(answers).drop_duplicates(DEDUP_KEY)
    with store.locked(settings):
        old = gold_answers(settings)
        seen = pd.MultiIndex.from_frame(old[DEDUP_KEY].astype({"round": "int64"}))
        fresh = fresh[~pd.MultiIndex.from_frame(fresh[DEDUP_KEY]).isin(seen)]
        if len(fresh):
            combined = pd.concat([old, fresh], ignore_index=True) if len(old) else fresh
            store.write_parquet_atomic(
                combined, gold_answers_path(settings), schema=store.LABELS_SCHEMA
            )
    return len(fresh)


def review_agreement(
    settings: Settings, state: RoundState, backend: Any, wanted: set[str]
) -> tuple[int, set[str]]:
    """Check the agreement of the round's items; returns (requests sent, ids still pending).

    An item whose agreement (share of votes for its ``annotation.aggregation`` label) is below
    ``annotation.agreement_threshold`` is sent to one more annotator (``backend.request_more``);
    ``info["more_requested"]`` keeps its vote count then, and it is pending until it has more.
    Items at ``annotation.max_annotators`` votes, or with nobody left to ask, are flagged:
    ``info["annotation_flagged"]`` (they keep their aggregated label; the list is for review).
    """
    from tasks.annotation.aggregate import aggregate, needs_attention

    cfg = settings.annotation
    log = store.read_labels(settings)
    answers = several_votes(
        latest_per_annotator(log[log["id"].isin(wanted)]).dropna(subset=["label"])
    )
    if answers.empty:  # one answer per item: nothing to disagree about
        return 0, set()
    classes = [str(c) for c in settings.data.classes] or None
    agreed = aggregate(answers, cfg.aggregation, classes)
    more, flagged = needs_attention(agreed, cfg.agreement_threshold, cfg.max_annotators)
    votes = dict(zip(agreed["id"].astype(str), agreed["n_votes"].astype(int), strict=True))
    asked: dict[str, int] = state.info.setdefault("more_requested", {})
    fresh = [i for i in more if votes[i] > asked.get(i, 0)]
    request_more = getattr(backend, "request_more", None)
    sent: list[str] = []
    if fresh and request_more is not None:
        answer = request_more(fresh)
        sent = list(fresh) if answer is None else [str(i) for i in answer]  # Label Studio: None
    asked.update({i: votes[i] for i in sent})
    unserved = set(fresh) - set(sent)
    state.info["annotation_flagged"] = sorted(set(flagged) | unserved)
    save_round(settings, state)
    return len(sent), {i for i, n in asked.items() if votes.get(i, 0) <= n}


def collect(
    settings: Settings,
    round_: int,
    backend: Any = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> RoundState:
    """Append new annotations (after the label gate) and check the round's quorum, polling for up
    to ``loop.wait_seconds``. Without a quorum the round's status becomes ``waiting``.

    Answers on gold (holdout) items go to ``gold_answers.parquet``, never to the label log. Items
    whose annotators disagree go to one more annotator and count as unlabeled until that answer
    arrives, or are flagged (:func:`review_agreement`).
    """
    state = load_round(settings, round_)
    if state.done("collected"):
        return state
    backend = make_backend(settings) if backend is None else backend
    wanted = set(store.read_manifest(settings, round_)["id"])
    holdout_ids = set(store.read_holdout(settings)["id"].astype(str))
    deadline = time.monotonic() + settings.loop.wait_seconds
    appended = int(state.info.get("n_collected", 0))
    while True:
        collected = backend.collect(None)
        is_gold = (
            collected["id"].astype(str).isin(holdout_ids).to_numpy()
            if len(collected)
            else np.zeros(0, dtype=bool)
        )
        store_gold_answers(settings, collected[is_gold])
        new = new_annotations(settings, collected[~is_gold])
        if len(new):
            label_gate.collect_labels(
                new, settings, round_=round_, file=f"{backend.name} annotations"
            )
            appended += len(new)
            state.info["n_collected"] = appended
            save_round(settings, state)
        asked, pending = review_agreement(settings, state, backend, wanted)
        if asked:
            continue  # a backend may answer at once (the simulated one does): poll again now
        have = (set(store.read_labels(settings)["id"]) & wanted) - pending
        fraction = len(have) / len(wanted) if wanted else 1.0
        if fraction >= settings.loop.quorum:
            state.status = "running"
            return _mark(
                settings, state, "collected", labeled_fraction=fraction, n_labeled=len(have)
            )
        if time.monotonic() >= deadline:
            state.status = "waiting"
            state.info.update(labeled_fraction=fraction, n_labeled=len(have))
            return save_round(settings, state)
        sleep(min(settings.loop.poll_seconds, max(0.0, deadline - time.monotonic())))


def _classes(model: Any) -> list[str]:
    return [str(c) for c in model.classes_]


def prior_predictions(
    settings: Settings,
    round_: int,
    labeled: pd.DataFrame,
    pool: pd.DataFrame,
    holdout: pd.DataFrame,
    columns: list[str],
) -> dict[str, str]:
    """id -> label predicted for the round's items and gold items by a model fit on the labels
    from before the round (what the selecting model knew), so that comparing annotators with the
    model is out of sample; {} when those labels hold fewer than two classes."""
    ids = set(store.read_manifest(settings, round_)["id"].astype(str))
    before = labeled[~labeled["id"].astype(str).isin(ids)]
    if before["label"].nunique() < 2:
        return {}
    gold = set(load_round(settings, round_).info.get("gold_ids", []))
    rows = pd.concat(
        [pool[pool["id"].astype(str).isin(ids)], holdout[holdout["id"].astype(str).isin(gold)]],
        ignore_index=True,
    )
    if rows.empty:
        return {}
    model = _initial_model(settings, before, columns)
    predicted = model.predict(_matrix(rows, columns))
    return dict(zip(rows["id"].astype(str), map(str, predicted), strict=True))


def annotation_stats(
    settings: Settings, round_: int, predictions: dict[str, str] | None = None
) -> pd.DataFrame:
    """One row per annotator over every answer so far (label log and gold answers): ``n``,
    ``gold_n``/``gold_accuracy`` (vs the holdout labels of gold items), ``model_agreement`` (vs
    each round's :func:`prior_predictions`, ``predictions`` for this round), ``majority_agreement``,
    ``aggregate_agreement`` (vs the ``annotation.aggregation`` labels) and ``ds_accuracy``."""
    from tasks.annotation.aggregate import accuracy_against, aggregate, annotator_stats

    gold_log = gold_answers(settings)
    answers = latest_per_annotator(
        pd.concat([store.read_labels(settings), gold_log], ignore_index=True)
    ).dropna(subset=["label"])
    if answers.empty:
        return pd.DataFrame()
    holdout = store.read_holdout(settings)
    holdout = holdout[holdout["id"].astype(str).isin(set(gold_log["id"]))]
    gold = dict(zip(holdout["id"].astype(str), holdout["label"].astype(str), strict=True))
    known: dict[str, str] = {}
    for earlier in round_states(settings):
        if earlier.round < round_:
            known |= earlier.info.get("model_predictions", {})
    known |= predictions or {}
    classes = [str(c) for c in settings.data.classes] or None
    stats = annotator_stats(answers, gold=gold, predictions=known, classes=classes)
    # agreement with the others and Dawid-Skene only where there are others (see training_labels)
    multi = several_votes(answers)
    stats = stats.drop(columns=["majority_agreement", "ds_accuracy"], errors="ignore")
    if multi.empty:
        return stats
    among = annotator_stats(multi, classes=classes).set_index("annotator")
    agreed = aggregate(multi, settings.annotation.aggregation, classes)
    versus = accuracy_against(multi, dict(zip(agreed["id"], agreed["label"], strict=True)))
    for column, values in (
        ("majority_agreement", among["majority_agreement"]),
        ("aggregate_agreement", versus["accuracy"]),
        ("ds_accuracy", among["ds_accuracy"]),
    ):
        stats[column] = stats["annotator"].map(values)
    return stats


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-safe dicts (NaN -> None) for the round state."""
    return [
        {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in row.items()}
        for row in frame.astype(object).to_dict(orient="records")
    ]


def training_waits(labels: pd.DataFrame, settings: Settings) -> str | None:
    """Why no model can be trained yet (None: it can): a classifier needs two classes, and
    each class of ``data.classes`` needs ``data.min_per_class`` labels. Not an error: a project
    that starts with no labels gets there round by round (the training gate checks the rest)."""
    counts = labels["label"].astype(str).value_counts()
    declared = [str(c) for c in settings.data.classes]
    if declared:
        counts = counts.reindex(declared, fill_value=0)
    minimum = max(settings.data.min_per_class, 1)
    short = [f"{label!r} has {int(n)}" for label, n in counts.items() if n < minimum]
    if (counts >= minimum).sum() < 2:
        seen = ", ".join(f"{label!r}: {int(n)}" for label, n in counts.items()) or "none"
        return f"training waits for {minimum}+ labels in two classes (labels so far: {seen})"
    if short and settings.data.min_per_class > 0:
        return f"training waits for data.min_per_class={minimum} labels per class: " + ", ".join(
            short
        )
    return None


@_tracked("train")
def train(settings: Settings, round_: int) -> RoundState:
    """Training gate, fit, holdout metrics, log and register the challenger, promote if better;
    also the model's predictions on the stop set (for the stabilising-predictions rule) and the
    annotators' statistics (:func:`annotation_stats`, logged by :func:`evaluate`)."""
    from tasks.data.validate import validate_training
    from tasks.evaluate import evaluate_classifier
    from tasks.registry import (
        current_champion,
        promote_if_better,
        register_challenger,
        registered_version,
    )
    from tasks.tracking import log_model

    state = load_round(settings, round_)
    if state.done("trained"):
        return state
    if settings.model.task != "classification":
        raise RoundError("the loop flows support model.task=classification only")
    tracking = _tracking(settings)
    pool = store.read_pool(settings)
    columns = feature_columns(pool, settings)
    labels = training_labels(settings)
    waiting = training_waits(labels, settings)
    if waiting is not None:  # a cold project: the next round picks more cold-start rows
        return _mark(
            settings,
            state,
            "trained",
            trained=False,
            waiting=waiting,
            n_labels=len(labels),
            metrics={},
            promoted=False,
            champion_metrics=load_loop(settings).champion_metrics,
            stop_predictions=[],
            model_predictions={},
            annotator_stats=_records(annotation_stats(settings, round_, {})),
        )
    validate_training(labels, settings, round_=round_)
    labeled = labeled_frame(settings, pool)
    X = _matrix(labeled, columns)
    model = models.fit_model(
        models.build_model(settings.model, random_state=settings.project.seed),
        X,
        labeled["label"].astype(str).to_numpy(),
    )
    holdout = store.read_holdout(settings)
    metrics = evaluate_classifier(
        holdout["label"].astype(str).to_numpy(),
        model.predict_proba(_matrix(holdout, columns)),
        _classes(model),
        n_bins=settings.evaluate.ece_bins,
        rare_class=settings.evaluate.rare_class,
    )
    loop = load_loop(settings)
    stop = pool[pool["id"].isin(set(loop.stop_ids))]
    stop_predictions = [str(p) for p in model.predict(_matrix(stop, columns))] if len(stop) else []
    metric = settings.evaluate.metric
    with _in_run(state.info["mlflow_run_id"]):
        if "model_version" not in state.info:
            # a rerun after a crash that followed the registration finds its version
            version_ = registered_version(tracking, state.info["mlflow_run_id"])
            if version_ is None:
                info = log_model(model, X[:5])
                version_ = register_challenger(
                    tracking, info.model_uri, metrics[metric], metric, round_
                )
                step_point(state.id, "during:train")
            state.info["model_version"] = version_
            save_round(settings, state)
        decision = promote_if_better(
            tracking,
            state.info["model_version"],
            metrics[metric],
            metric=metric,
            margin=settings.evaluate.margin,
            step=round_,
        )
    champion = current_champion(tracking)
    # a rerun after a crash that followed the promotion: the alias already points here
    promoted = decision.promoted or (
        champion is not None and champion[0] == decision.challenger_version
    )
    if promoted:
        loop.champion_round, loop.champion_metrics = round_, metrics
        save_loop(settings, loop)
    predictions = prior_predictions(settings, round_, labeled, pool, holdout, columns)
    return _mark(
        settings,
        state,
        "trained",
        trained=True,
        n_labels=len(labeled),
        metrics=metrics,
        promoted=promoted,
        decision=decision.reason,
        champion_metrics=loop.champion_metrics,
        stop_predictions=stop_predictions,
        model_predictions=predictions,
        annotator_stats=_records(annotation_stats(settings, round_, predictions)),
    )


@_tracked("evaluate")
def evaluate(settings: Settings, round_: int) -> RoundState:
    """Log the round in MLflow: challenger holdout metrics, champion metrics, labels, manifest,
    the loop's learning curve so far and the annotation quality (:func:`log_annotation`)."""
    from tasks.tracking import log_learning_curve, log_round, round_params

    state = load_round(settings, round_)
    if state.done("evaluated"):
        return state
    _tracking(settings)
    metrics = dict(state.info["metrics"])
    metrics |= {f"champion.{k}": v for k, v in state.info["champion_metrics"].items()}
    loop = load_loop(settings)
    data_version = f"{settings.versioning.tag_prefix}{round_}"
    with _in_run(state.info["mlflow_run_id"]):
        log_round(
            round_,
            int(state.info["n_labels"]),
            metrics,
            params=round_params(settings, data_version) | {"round_id": state.id},
            manifest=store.data_paths(settings).manifest(round_),
            parent_metrics=[settings.evaluate.metric, f"champion.{settings.evaluate.metric}"],
        )
        if loop.mlflow_run_id:
            log_learning_curve(loop.mlflow_run_id, [settings.evaluate.metric], round_)
        log_annotation(state)
        if state.info.get("waiting"):
            import mlflow

            mlflow.set_tag("labelwise.training", state.info["waiting"])
    return _mark(settings, state, "evaluated")


def log_annotation(state: RoundState) -> None:
    """Log a round's annotation quality in the active run: the annotator statistics
    (``annotator.<name>.<stat>``), the metrics ``annotation.flagged``, ``annotation.gold_items``
    and ``annotation.more_requested``, and the flagged ids as the tag ``annotation.flagged``."""
    import mlflow

    from tasks.annotation.aggregate import log_annotator_stats
    from tasks.tracking import log_json

    if state.info.get("annotator_stats"):
        log_annotator_stats(pd.DataFrame(state.info["annotator_stats"]), state.round)
    flagged = list(state.info.get("annotation_flagged", []))
    mlflow.log_metrics(
        {
            "annotation.flagged": len(flagged),
            "annotation.gold_items": len(state.info.get("gold_ids", [])),
            "annotation.more_requested": len(state.info.get("more_requested", {})),
        },
        step=state.round,
    )
    if flagged:
        text = ",".join(flagged)
        if len(text) > FLAGGED_TAG_CHARS:  # MLflow caps tag values; the JSON has them all
            text = text[: FLAGGED_TAG_CHARS - 20].rsplit(",", 1)[0] + ",..."
        mlflow.set_tag("annotation.flagged", text)
        log_json({"flagged": flagged}, f"annotation/flagged_round_{state.round:03d}.json")


@_tracked("monitor")
def monitor(settings: Settings, round_: int) -> RoundState:
    """Monitoring checks on the champion (sampling bias, class balance, calibration trend); a
    drift flag raises the random fraction of the next batch."""
    from tasks.monitor import log_monitoring, next_random_fraction, run_monitoring
    from tasks.registry import load_champion

    state = load_round(settings, round_)
    if state.done("monitored"):
        return state
    if not settings.monitor.enabled or state.info.get("trained") is False:
        return _mark(settings, state, "monitored", flags=[])  # off, or no model to watch yet
    tracking = _tracking(settings)
    model, _ = load_champion(tracking)
    pool = store.read_pool(settings)
    columns = feature_columns(pool, settings)
    labeled = labeled_frame(settings, pool)
    unlabeled = pool[~pool["id"].isin(set(labeled["id"]))]
    history = [
        s.info["metrics"]["ece_top_label"]
        for s in round_states(settings)
        if s.round < round_ and "metrics" in s.info
    ]
    with warnings.catch_warnings():
        # Evidently's correlations divide by the zero spread of constant columns (NaN, ignored)
        warnings.simplefilter("ignore", RuntimeWarning)
        result = run_monitoring(
            settings.monitor,
            Path(settings.project.work_dir) / "monitoring" / state.id,
            classes=_classes(model),
            labeled_X=labeled[columns],
            pool_X=unlabeled[columns] if len(unlabeled) else pool[columns],
            labeled_y=labeled["label"].astype(str).to_numpy(),
            pool_pred=model.predict(_matrix(pool, columns)),
            ece=state.info["metrics"]["ece_top_label"],
            ece_history=history,
            seed=settings.project.seed,
        )
    with _in_run(state.info["mlflow_run_id"]):
        log_monitoring(result, step=round_)
    loop = load_loop(settings)
    current = (
        loop.random_fraction
        if loop.random_fraction is not None
        else settings.strategy.random_fraction
    )
    loop.random_fraction = next_random_fraction(current, result, settings.monitor)
    save_loop(settings, loop)
    return _mark(settings, state, "monitored", flags=result.flagged)


def version(settings: Settings, round_: int) -> RoundState:
    """Commit and tag the data as ``round-N`` and push it to the DVC remote; finish the round."""
    from tasks.data import versioning

    state = load_round(settings, round_)
    if state.done("versioned"):
        return state
    tag = None
    if settings.versioning.enabled:
        # a crash after tagging but before this state was saved: move the tag to a fresh commit
        exists = f"{settings.versioning.tag_prefix}{round_}" in versioning.tags(settings)
        tag = versioning.commit_round(settings, round_, force=exists)
        if state.info.get("mlflow_run_id"):
            with _in_run(state.info["mlflow_run_id"]):
                import mlflow

                mlflow.set_tag("labelwise.data_version", tag)
    state.status = "complete"
    return _mark(settings, state, "versioned", data_version=tag)


def loop_records(settings: Settings) -> list[Any]:
    """The finished rounds as ``stopping.RoundRecord`` (score: the champion's, on the target
    metric)."""
    from tasks.stopping import RoundRecord

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
            )
        )
    return records


def stop_decision(settings: Settings, *, max_rounds: bool = True) -> Any:
    """Apply the stopping rules to the finished rounds (``max_rounds=False``: skip that rule)."""
    from tasks import stopping
    from tasks.evaluate import higher_is_better

    metric = settings.loop.target_metric or settings.evaluate.metric
    loop = settings.loop
    if not max_rounds:
        loop = loop.model_copy(update={"max_rounds": 10**9})
    return stopping.should_stop(
        loop_records(settings), loop, metric=metric, higher=higher_is_better(metric)
    )


@_tracked("finish-loop")
def finish_loop(settings: Settings, reason: str | None) -> LoopState:
    """Record why the loop stopped (None: it is waiting) and close its MLflow run."""
    import mlflow

    loop = load_loop(settings)
    loop.stopped = reason
    save_loop(settings, loop)
    if loop.mlflow_run_id:
        _tracking(settings)
        client = mlflow.MlflowClient()
        client.set_tag(loop.mlflow_run_id, "labelwise.stop_reason", reason or "waiting for labels")
        client.set_terminated(loop.mlflow_run_id, "FINISHED")
    return loop


def summary(settings: Settings) -> dict[str, Any]:
    """Labels used, rounds done and the champion's holdout metrics, from the state files."""
    records = loop_records(settings)
    loop = load_loop(settings)
    return {
        "rounds": len(records),
        "n_labels": records[-1].n_labels if records else len(labeled_frame(settings)),
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


def describe(state: RoundState) -> str:
    return json.dumps({"id": state.id, "status": state.status, "steps": list(state.steps)})
