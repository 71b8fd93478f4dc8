"""Scale-out scoring: the pool's chunks scored in parallel on Dask, top-k merged exactly.

``distributed_select`` maps a thin task over chunk descriptions (each worker reads its own rows
from the ``.npy``/Parquet file) and returns the selection the in-memory ``strategy.query`` gives.
Run it with the task runner from ``params.yaml``'s ``scale:`` section::

    result = select_at_scale(settings.scale, strategy, model, "pool.npy", batch_size=100)

Entry points that use a LocalCluster must sit under ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from prefect import flow, task, unmapped
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner
from prefect_dask import DaskTaskRunner

import strategies
from strategies.base import QueryStrategy, RandomState, ScoreStrategy, Selection
from strategies.chunked import (
    ChunkSpec,
    ChunkTopK,
    finish,
    merge_topk,
    plan_chunks,
    plan_query,
    score_chunk,
)
from tasks.data.sources import as_source, peak_rss_bytes
from tasks.settings import ScaleSettings


@dataclass(frozen=True)
class ChunkResult:
    """A chunk's top-k and what scoring it cost on the worker that ran it."""

    top: ChunkTopK
    pid: int
    host: str
    rows: int
    seconds: float
    peak_rss_bytes: int


@dataclass(frozen=True)
class DistributedSelection:
    """The selection (equal to the in-memory one) plus per-worker cost: ``workers`` maps
    ``host:pid`` to rows, chunks, busy seconds and peak resident memory (bytes)."""

    selection: Selection
    n_rows: int
    n_chunks: int
    workers: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def indices(self) -> np.ndarray:
        return self.selection.indices

    @property
    def scores(self) -> np.ndarray:
        return self.selection.scores


@task(name="score-chunk", cache_policy=NO_CACHE, retries=1)
def score_chunk_task(
    scorer: ScoreStrategy,
    state: Any,
    model: Any,
    spec: ChunkSpec,
    k: int,
    exclude: np.ndarray,
    keep_rows: bool,
    rng: np.random.Generator | None,
) -> ChunkResult:
    """Load one chunk on the worker and return its exact top-k."""
    started = time.perf_counter()
    X_chunk = spec.load()
    top = score_chunk(
        scorer, state, model, X_chunk, spec.start, k, exclude, keep_rows=keep_rows, rng=rng
    )
    return ChunkResult(
        top,
        os.getpid(),
        socket.gethostname(),
        spec.stop - spec.start,
        time.perf_counter() - started,
        peak_rss_bytes(),
    )


def _workers(results: list[ChunkResult]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for r in results:
        w = out.setdefault(
            f"{r.host}:{r.pid}", {"rows": 0, "chunks": 0, "seconds": 0.0, "peak_rss_bytes": 0}
        )
        w["rows"] += r.rows
        w["chunks"] += 1
        w["seconds"] += r.seconds
        w["peak_rss_bytes"] = max(w["peak_rss_bytes"], r.peak_rss_bytes)
    return out


@contextmanager
def _api_shared_with_workers() -> Iterator[None]:
    """Without a configured API, Prefect runs a temporary server in this process, and each Dask
    worker would start its own (~15 s each, same database): point the workers at ours instead."""
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    if get_current_settings().api.url:
        yield
        return
    from prefect.client.orchestration import get_client

    with temporary_settings(updates={PREFECT_API_URL: str(get_client().api_url)}):
        yield


def local_cluster_runner(n_workers: int = 2, threads_per_worker: int = 1) -> DaskTaskRunner:
    """A DaskTaskRunner that starts (and stops) a LocalCluster of worker processes."""
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": n_workers,
            "threads_per_worker": threads_per_worker,
            "processes": True,
            "dashboard_address": ":0",  # None still binds :8787 and warns when it is taken
        }
    )


def task_runner(scale: ScaleSettings) -> Any:
    """The task runner ``scale:`` asks for: threads here, a LocalCluster, or an existing cluster."""
    if scale.executor == "local":
        return ThreadPoolTaskRunner(max_workers=scale.n_workers)
    if scale.dask_address:
        return DaskTaskRunner(address=scale.dask_address)
    return local_cluster_runner(scale.n_workers, scale.threads_per_worker)


@flow(name="distributed-select", validate_parameters=False, task_runner=local_cluster_runner())
def distributed_select(
    strategy: QueryStrategy | str,
    model: Any,
    pool: Any,
    batch_size: int,
    *,
    X_labeled: Any = None,
    y_labeled: Any = None,
    random_state: RandomState = None,
    exclude: Any = None,
    chunk_size: int = 250_000,
) -> DistributedSelection:
    """Select ``batch_size`` rows of ``pool`` (a ``.npy``/Parquet path, a memory-mapped ``.npy``
    or an array) by scoring its chunks in parallel; equals ``strategy.query(...)`` exactly."""
    if isinstance(strategy, str):
        strategy = strategies.get(strategy)
    source = as_source(pool)
    query = plan_query(
        strategy,
        model,
        source,
        batch_size,
        X_labeled=X_labeled,
        y_labeled=y_labeled,
        random_state=random_state,
        exclude=exclude,
    )
    specs = plan_chunks(source, chunk_size)
    with _api_shared_with_workers():
        futures = score_chunk_task.map(
            unmapped(query.plan.scorer),
            unmapped(query.plan.state),
            unmapped(model),
            specs,
            unmapped(query.plan.k),
            [query.exclude_in(s.start, s.stop) for s in specs],
            unmapped(query.plan.keep_rows),
            [query.chunk_rng(s.start) for s in specs],
        )
        results = [f.result() for f in futures]
    merged = merge_topk([r.top for r in results], query.plan.k)
    return DistributedSelection(finish(query, merged), source.n_rows, len(specs), _workers(results))


def select_at_scale(
    scale: ScaleSettings,
    strategy: QueryStrategy | str,
    model: Any,
    pool: Any,
    batch_size: int,
    **kwargs: Any,
) -> DistributedSelection:
    """:func:`distributed_select` on the task runner and chunk size of ``scale``."""
    kwargs.setdefault("chunk_size", scale.chunk_size)
    return distributed_select.with_options(task_runner=task_runner(scale))(
        strategy, model, pool, batch_size, **kwargs
    )
