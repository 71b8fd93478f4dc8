"""Scoring a pool in independent chunks and merging their top-k exactly.

A pool is described lazily (:class:`NpySource`, :class:`ParquetSource`, :class:`ArraySource`) and
cut into :class:`ChunkSpec` s, so a worker reads its own rows instead of receiving them through a
scheduler. :func:`plan_query` runs the strategy's per-query preparation once (a committee, density
centroids) exactly as the in-memory ``strategy.query`` does, :func:`score_chunk` returns a chunk's
exact top-k, :func:`merge_topk` merges them (ties by lower global index, as
:func:`strategies.selection.top_k` over the whole pool) and :func:`finish` turns the merged
candidates into the :class:`~strategies.base.Selection` the in-memory path returns.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from strategies._pool import DEFAULT_CHUNK_SIZE, as_pool, chunk_exclusion_mask, exclusion_index
from strategies.base import (
    QueryContext,
    QueryStrategy,
    RandomState,
    ScoreStrategy,
    Selection,
    check_random_state,
)
from strategies.diversity import Hybrid, cold_start_threshold
from strategies.guards import ExponentialMechanism
from strategies.random import RandomSampling
from strategies.selection import RunningTopK


def peak_rss_bytes() -> int:
    """Peak resident memory of this process image (Linux ``VmHWM``). Unlike ``ru_maxrss``, it is
    not inherited from the parent across fork + exec, so spawned workers report their own."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class DistributedScoringError(ValueError):
    """The strategy (or its configuration) cannot be scored chunk by chunk on separate workers."""


# --- lazy pool sources -------------------------------------------------------------------------


@dataclass(frozen=True)
class ArraySource:
    """An in-memory array (or DataFrame) whose first row is global row ``offset``. Its chunks
    carry their own rows through the scheduler: prefer a file for large pools."""

    array: Any
    offset: int = 0

    @property
    def n_rows(self) -> int:
        return int(self.array.shape[0])

    def read(self, start: int, stop: int) -> Any:
        return self.array[start - self.offset : stop - self.offset]

    def open(self) -> Any:
        return self.array

    def bounds(self, chunk_size: int) -> list[tuple[int, int]]:
        return _even_bounds(self.n_rows, chunk_size)


@dataclass(frozen=True)
class NpySource:
    """A C-ordered ``.npy`` file; each chunk is read with one positioned read (no memory map, so a
    worker's resident memory holds only its chunk)."""

    path: str
    shape: tuple[int, ...]
    dtype: str
    header_bytes: int

    @classmethod
    def from_path(cls, path: str | Path) -> NpySource:
        mm = np.load(path, mmap_mode="r")
        if not mm.flags.c_contiguous:
            raise DistributedScoringError(f"{path}: only C-ordered .npy pools can be chunked")
        return cls(str(Path(path).resolve()), tuple(mm.shape), mm.dtype.str, int(mm.offset))

    @property
    def n_rows(self) -> int:
        return int(self.shape[0])

    def read(self, start: int, stop: int) -> np.ndarray:
        dtype = np.dtype(self.dtype)
        row = int(np.prod(self.shape[1:], dtype=np.int64))
        stop = min(stop, self.n_rows)
        data = np.fromfile(
            self.path,
            dtype=dtype,
            count=(stop - start) * row,
            offset=self.header_bytes + start * row * dtype.itemsize,
        )
        return data.reshape((stop - start, *self.shape[1:]))

    def open(self) -> np.ndarray:
        return np.load(self.path, mmap_mode="r")

    def bounds(self, chunk_size: int) -> list[tuple[int, int]]:
        return _even_bounds(self.n_rows, chunk_size)


@dataclass(frozen=True)
class ParquetSource:
    """A Parquet file; chunks are whole row groups (merged up to ``chunk_size`` rows), read as a
    float array of ``columns`` (all columns when None), or a DataFrame with ``as_frame``."""

    path: str
    columns: tuple[str, ...] | None = None
    as_frame: bool = False

    def _file(self) -> Any:
        import pyarrow.parquet as pq

        return pq.ParquetFile(self.path)

    @property
    def n_rows(self) -> int:
        return int(self._file().metadata.num_rows)

    def _group_rows(self) -> list[int]:
        meta = self._file().metadata
        return [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]

    def read(self, start: int, stop: int) -> Any:
        starts = np.concatenate([[0], np.cumsum(self._group_rows())])
        first = int(np.searchsorted(starts, start, side="right") - 1)
        last = int(np.searchsorted(starts, stop, side="left"))
        columns = list(self.columns) if self.columns else None
        table = self._file().read_row_groups(list(range(first, last)), columns=columns)
        frame = table.to_pandas().iloc[start - starts[first] : stop - starts[first]]
        return frame.reset_index(drop=True) if self.as_frame else frame.to_numpy()

    def open(self) -> Any:
        """The pool as an iterator of chunks (strategies that sample the pool see the first one)."""
        return (self.read(a, b) for a, b in self.bounds(DEFAULT_CHUNK_SIZE))

    def bounds(self, chunk_size: int) -> list[tuple[int, int]]:
        out, start, stop = [], 0, 0
        for rows in self._group_rows():
            stop += rows
            if stop - start >= chunk_size:
                out.append((start, stop))
                start = stop
        if stop > start:
            out.append((start, stop))
        return out


PoolSource = ArraySource | NpySource | ParquetSource


def as_source(X_pool: Any) -> PoolSource:
    """A lazy source from a ``.npy``/``.parquet`` path, a memory-mapped ``.npy`` or an array."""
    if isinstance(X_pool, ArraySource | NpySource | ParquetSource):
        return X_pool
    if isinstance(X_pool, str | Path):
        suffix = Path(X_pool).suffix.lower()
        if suffix == ".npy":
            return NpySource.from_path(X_pool)
        if suffix in (".parquet", ".pq"):
            return ParquetSource(str(Path(X_pool).resolve()))
        raise DistributedScoringError(f"{X_pool}: expected a .npy or .parquet pool file")
    if isinstance(X_pool, np.memmap) and getattr(X_pool, "filename", None):
        base = np.load(X_pool.filename, mmap_mode="r")
        if base.shape == X_pool.shape and base.offset == X_pool.offset:
            return NpySource.from_path(X_pool.filename)
    if hasattr(X_pool, "shape") and hasattr(X_pool, "__getitem__"):
        return ArraySource(X_pool)
    raise DistributedScoringError(
        f"cannot chunk a pool of type {type(X_pool).__name__}: pass an array, a .npy or a .parquet"
    )


def _even_bounds(n_rows: int, chunk_size: int) -> list[tuple[int, int]]:
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    return [(a, min(a + chunk_size, n_rows)) for a in range(0, n_rows, chunk_size)]


@dataclass(frozen=True)
class ChunkSpec:
    """Rows ``[start, stop)`` of a pool source; small to send, loaded where it is scored."""

    source: PoolSource
    start: int
    stop: int

    def load(self) -> Any:
        return self.source.read(self.start, self.stop)


def plan_chunks(source: PoolSource, chunk_size: int) -> list[ChunkSpec]:
    """The pool cut into chunks of about ``chunk_size`` rows (Parquet: whole row groups)."""
    if isinstance(source, ArraySource):  # ship each chunk its own rows, not the whole array
        return [
            ChunkSpec(ArraySource(source.read(a, b), a), a, b) for a, b in source.bounds(chunk_size)
        ]
    return [ChunkSpec(source, a, b) for a, b in source.bounds(chunk_size)]


# --- per-chunk top-k and the exact merge -------------------------------------------------------


@dataclass(frozen=True)
class ChunkTopK:
    """The best rows of a chunk (or of the merged pool): global ``indices``, highest ``scores``
    first, ties by lower index; ``rows`` holds their features when asked for (hybrid)."""

    indices: np.ndarray
    scores: np.ndarray
    rows: Any = None

    def __iter__(self):  # ``indices, scores = score_chunk(...)``
        return iter((self.indices, self.scores))


class _RngUnavailable:
    """Stands in for ``ctx.rng`` on workers: a score that draws random numbers per chunk would
    differ from the in-memory result, so using it is an error rather than a silent difference."""

    def __getattr__(self, name: str) -> Any:
        raise DistributedScoringError(
            "this strategy draws random numbers while scoring chunks; it cannot be distributed "
            "exactly (use scale.executor: local)"
        )


def row_keys_rng(rng_state: dict[str, Any], offset: int) -> np.random.Generator:
    """The generator the in-memory pass would hold at global row ``offset`` when every row draws
    one double (random sampling): the query's generator advanced by ``offset`` draws."""
    bit_generator = getattr(np.random, rng_state["bit_generator"])()
    bit_generator.state = rng_state
    bit_generator.advance(offset)
    return np.random.Generator(bit_generator)


def score_chunk(
    strategy: ScoreStrategy,
    state: Any,
    model: Any,
    X_chunk: Any,
    offset: int,
    k: int,
    exclude: np.ndarray | None = None,
    *,
    keep_rows: bool = False,
    rng: np.random.Generator | None = None,
) -> ChunkTopK:
    """The exact top-``k`` of one chunk whose first row is global row ``offset``.

    ``exclude`` holds sorted global row indices that must not be chosen (only those inside the
    chunk matter); ``state`` is what ``strategy.prepare`` returned for this query.
    """
    n = X_chunk.shape[0]
    ctx = QueryContext(model=model, pool=as_pool(X_chunk, max(n, 1)))
    ctx.rng = rng if rng is not None else _RngUnavailable()  # type: ignore[assignment]
    scores = np.asarray(strategy.chunk_scores(ctx, state, X_chunk), dtype=np.float64)
    if scores.shape != (n,):
        raise ValueError(f"{strategy.name}: expected {n} scores for the chunk, got {scores.shape}")
    excluded = np.empty(0, np.int64) if exclude is None else np.asarray(exclude, dtype=np.int64)
    blocked = chunk_exclusion_mask(excluded, offset, n)
    eligible = None if blocked is None else np.flatnonzero(~blocked)
    best = RunningTopK(k, keep_rows=keep_rows)
    best.push(scores, offset, X_chunk, eligible)
    return ChunkTopK(best.indices, best.scores, best.rows)


def merge_topk(parts: Iterable[ChunkTopK], k: int) -> ChunkTopK:
    """Exact top-``k`` over all parts: highest score first, ties by lower global index."""
    parts = [p for p in parts if p.indices.shape[0]]
    if not parts or k <= 0:
        return ChunkTopK(np.empty(0, np.int64), np.empty(0, np.float64))
    scores = np.concatenate([p.scores for p in parts]).astype(np.float64, copy=False)
    indices = np.concatenate([p.indices for p in parts]).astype(np.int64, copy=False)
    keep = np.lexsort((indices, -scores))[:k]
    rows = None
    if all(p.rows is not None for p in parts):
        from strategies.selection import _stack_rows

        stacked = parts[0].rows
        for p in parts[1:]:
            stacked = _stack_rows(stacked, p.rows)
        rows = stacked.iloc[keep] if hasattr(stacked, "iloc") else stacked[keep]
    return ChunkTopK(indices[keep], scores[keep], rows)


# --- one query: plan on the driver, score anywhere, finish on the driver -----------------------


@dataclass
class ScoringPlan:
    """What a distributed query needs after preparation: the per-row scorer and its state, how
    many candidates each chunk keeps, and the driver's context for the final step."""

    strategy: QueryStrategy
    scorer: ScoreStrategy
    state: Any
    k: int
    keep_rows: bool
    batch_size: int
    ctx: QueryContext
    rng_state: dict[str, Any] | None = None

    def exclude_in(self, start: int, stop: int) -> np.ndarray:
        """Excluded global rows inside ``[start, stop)`` (what one chunk's task needs)."""
        lo, hi = np.searchsorted(self.ctx.excluded, [start, stop])
        return self.ctx.excluded[lo:hi]

    def chunk_rng(self, offset: int) -> np.random.Generator | None:
        return None if self.rng_state is None else row_keys_rng(self.rng_state, offset)


def _score_chain(scorer: ScoreStrategy) -> list[ScoreStrategy]:
    chain = [scorer]
    while isinstance(getattr(chain[-1], "base", None), ScoreStrategy):
        chain.append(chain[-1].base)
    return chain


def plan_query(
    strategy: QueryStrategy,
    model: Any,
    source: PoolSource,
    batch_size: int,
    *,
    X_labeled: Any = None,
    y_labeled: Any = None,
    random_state: RandomState = None,
    exclude: Any = None,
) -> ScoringPlan:
    """Prepare a query as ``strategy.query`` would (same random draws, same order), so the chunked
    result equals the in-memory one. Raises :class:`DistributedScoringError` for strategies that
    need the whole pool at once (core-set, expected error reduction, guards other than costs)."""
    if not isinstance(batch_size, int | np.integer) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    batch_size = int(batch_size)
    if isinstance(strategy, Hybrid):
        if strategy.diversity not in ("kcenter", "kmeans++"):
            raise ValueError(
                f"hybrid: diversity must be 'kcenter' or 'kmeans++', got {strategy.diversity!r}"
            )
        if strategy.prefilter < 1:
            raise ValueError(f"hybrid: prefilter must be >= 1, got {strategy.prefilter}")
        n_labeled = 0 if X_labeled is None else int(np.shape(X_labeled)[0])
        known = SimpleNamespace(model=model, y_labeled=y_labeled)
        if strategy.cold_start and n_labeled < cold_start_threshold(known, strategy.cold_start):
            raise DistributedScoringError(
                f"hybrid is in its cold start ({n_labeled} labels, fewer than "
                f"{strategy.cold_start} per class): it clusters a sample of the whole pool"
            )
        scorer = strategy._informativeness(model)
        k, keep_rows = strategy.prefilter * batch_size, True
    elif isinstance(strategy, ScoreStrategy):
        scorer, k, keep_rows = strategy, batch_size, False
    else:
        raise DistributedScoringError(
            f"strategy {strategy.name!r} ({type(strategy).__name__}) is batch-aware or guarded: "
            "only per-row scores and hybrid can be scored in chunks (use scale.executor: local)"
        )
    chain = _score_chain(scorer)
    if any(isinstance(s, ExponentialMechanism) for s in chain):
        raise DistributedScoringError(
            "privacy noise draws random numbers per chunk and cannot be distributed exactly "
            "(use scale.executor: local)"
        )
    pool = as_pool(source.open())
    ctx = QueryContext(
        model=model,
        pool=pool,
        X_labeled=X_labeled,
        y_labeled=None if y_labeled is None else np.asarray(y_labeled),
        rng=check_random_state(random_state),
        excluded=exclusion_index(exclude, source.n_rows),
    )
    state = scorer.prepare(ctx)
    rng_state = None
    if isinstance(chain[-1], RandomSampling):
        if not hasattr(ctx.rng.bit_generator, "advance"):
            raise DistributedScoringError(
                f"random keys need a bit generator that can jump ahead (PCG64), "
                f"got {type(ctx.rng.bit_generator).__name__}"
            )
        rng_state = ctx.rng.bit_generator.state
    return ScoringPlan(strategy, scorer, state, k, keep_rows, batch_size, ctx, rng_state)


class _Merged(ScoreStrategy):
    """A scorer whose candidates are already known: lets :class:`Hybrid` run its diversity step on
    the merged distributed prefilter with its own code."""

    def __init__(self, name: str, merged: ChunkTopK) -> None:
        self._name, self.merged = name, merged

    @property
    def name(self) -> str:  # type: ignore[override]
        return self._name

    def chunk_scores(self, ctx: QueryContext, state: Any, X_chunk: Any) -> np.ndarray:
        raise AssertionError("merged candidates are never rescored")

    def top_candidates(
        self, ctx: QueryContext, k: int, keep_rows: bool = False, state: Any = None
    ) -> RunningTopK:
        best = RunningTopK(k, keep_rows=keep_rows)
        best.indices, best.scores, best.rows = self.merged.indices, self.merged.scores, None
        if keep_rows:
            best.rows = self.merged.rows
        return best


def finish(plan: ScoringPlan, merged: ChunkTopK) -> Selection:
    """The query's :class:`Selection` from the merged candidates (hybrid: its diversity step)."""
    if isinstance(plan.strategy, Hybrid):
        hybrid = Hybrid(
            _Merged(plan.scorer.name, merged),
            plan.strategy.prefilter,
            plan.strategy.diversity,
            plan.strategy.against_labeled,
            plan.strategy.features,
            cold_start=0,  # plan_query refused a query in its cold start
        )
        selection = hybrid._query(plan.ctx, plan.batch_size)
    else:
        selection = Selection.of(merged.indices, merged.scores, plan.strategy.name)
    if np.unique(selection.indices).shape[0] != selection.indices.shape[0]:
        raise AssertionError(f"{plan.strategy.name} selected a row twice")  # a bug
    return selection


def select_chunked(
    strategy: QueryStrategy,
    model: Any,
    X_pool: Any,
    batch_size: int,
    *,
    X_labeled: Any = None,
    y_labeled: Any = None,
    random_state: RandomState = None,
    exclude: Any = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> Selection:
    """The distributed algorithm run serially in this process (reference and fallback)."""
    source = as_source(X_pool)
    plan = plan_query(
        strategy,
        model,
        source,
        batch_size,
        X_labeled=X_labeled,
        y_labeled=y_labeled,
        random_state=random_state,
        exclude=exclude,
    )
    parts = [
        score_chunk(
            plan.scorer,
            plan.state,
            model,
            spec.load(),
            spec.start,
            plan.k,
            plan.exclude_in(spec.start, spec.stop),
            keep_rows=plan.keep_rows,
            rng=plan.chunk_rng(spec.start),
        )
        for spec in plan_chunks(source, chunk_size)
    ]
    return finish(plan, merge_topk(parts, plan.k))
