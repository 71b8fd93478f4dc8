"""One query scored in independent chunks, on workers, with the chunks' top-k merged exactly.

A strategy declares how its query splits (:meth:`~strategies.base.QueryStrategy.chunk_plan`: a
per-row scorer, how many candidates a chunk keeps, the final step); the same plan runs in memory
(:meth:`~strategies.base.ChunkPlan.run`) and here, so both select the same rows, ties broken by
the lower global row index. :func:`plan_query` prepares a query on the driver (the same random
draws as the in-memory query), :func:`score_chunk` is what a worker runs on its rows,
:func:`merge_topk` merges the parts and :func:`finish` gives the
:class:`~strategies.base.Selection`.

A pool is given as a *source*: an object with ``n_rows``, ``bounds(chunk_size)`` (row ranges),
``read(start, stop)`` (those rows) and ``open()`` (something :func:`strategies._pool.as_pool`
reads, for strategies that sample the pool while preparing). :class:`ArraySource` is the
in-memory one; file sources live with the data (``tasks.data.sources``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from strategies._pool import DEFAULT_CHUNK_SIZE, as_pool, chunk_exclusion_mask
from strategies.base import (
    ChunkPlan,
    NotChunkable,
    QueryContext,
    QueryStrategy,
    RandomState,
    ScoreStrategy,
    Selection,
    check_batch_size,
)
from strategies.selection import RunningTopK, _stack_rows


class PoolSource(Protocol):
    """A pool that can be read in row ranges (see the module docstring)."""

    @property
    def n_rows(self) -> int: ...

    def read(self, start: int, stop: int) -> Any: ...

    def open(self) -> Any: ...

    def bounds(self, chunk_size: int) -> list[tuple[int, int]]: ...


def even_bounds(n_rows: int, chunk_size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges of ``chunk_size`` rows covering ``n_rows``."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    return [(a, min(a + chunk_size, n_rows)) for a in range(0, n_rows, chunk_size)]


@dataclass(frozen=True)
class ArraySource:
    """An in-memory array (or DataFrame) whose first row is global row ``offset``. Its chunks
    carry their own rows through a scheduler: prefer a file for large pools."""

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
        return even_bounds(self.n_rows, chunk_size)


@dataclass(frozen=True)
class ChunkSpec:
    """Rows ``[start, stop)`` of a pool source; small to send, loaded where it is scored."""

    source: Any
    start: int
    stop: int

    def load(self) -> Any:
        return self.source.read(self.start, self.stop)


def plan_chunks(source: PoolSource, chunk_size: int) -> list[ChunkSpec]:
    """The pool cut into chunks of about ``chunk_size`` rows (as the source bounds them)."""
    if isinstance(source, ArraySource):  # ship each chunk its own rows, not the whole array
        return [
            ChunkSpec(ArraySource(source.read(a, b), a), a, b) for a, b in source.bounds(chunk_size)
        ]
    return [ChunkSpec(source, a, b) for a, b in source.bounds(chunk_size)]


# --- per-chunk top-k and the exact merge -------------------------------------------------------


@dataclass(frozen=True)
class ChunkTopK:
    """The best rows of a chunk (or of the merged pool): global ``indices``, highest ``scores``
    first, ties by lower index; ``rows`` holds their features when the plan keeps rows."""

    indices: np.ndarray
    scores: np.ndarray
    rows: Any = None

    def __iter__(self) -> Iterator[np.ndarray]:  # ``indices, scores = score_chunk(...)``
        return iter((self.indices, self.scores))


class _RngUnavailable:
    """Stands in for ``ctx.rng`` on workers: a score that draws random numbers per chunk would
    differ from the in-memory result, so using it is an error rather than a silent difference."""

    def __getattr__(self, name: str) -> Any:
        raise NotChunkable(
            "this strategy draws random numbers while scoring chunks; it cannot be distributed "
            "exactly (use scale.executor: local)"
        )


def row_keys_rng(rng_state: dict[str, Any], offset: int) -> np.random.Generator:
    """The generator the in-memory pass would hold at global row ``offset`` when every row draws
    one double (random keys): the query's generator advanced by ``offset`` draws."""
    bit_generator = getattr(np.random, rng_state["bit_generator"])()
    bit_generator.state = rng_state
    bit_generator.advance(offset)
    return np.random.Generator(bit_generator)


def score_chunk(
    scorer: ScoreStrategy,
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
    chunk matter); ``state`` is what ``scorer.prepare`` returned for this query.
    """
    n = X_chunk.shape[0]
    ctx = QueryContext(model=model, pool=as_pool(X_chunk, max(n, 1)))
    ctx.rng = rng if rng is not None else _RngUnavailable()  # type: ignore[assignment]
    scores = scorer._scores(ctx, state, X_chunk)
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
        stacked = parts[0].rows
        for p in parts[1:]:
            stacked = _stack_rows(stacked, p.rows)
        rows = stacked.iloc[keep] if hasattr(stacked, "iloc") else stacked[keep]
    return ChunkTopK(indices[keep], scores[keep], rows)


# --- one query: plan on the driver, score anywhere, finish on the driver -----------------------


@dataclass
class DistributedQuery:
    """A query ready to be scored on workers: the strategy's :class:`ChunkPlan`, the driver's
    context for the final step, and the generator state random keys start from."""

    strategy: QueryStrategy
    plan: ChunkPlan
    ctx: QueryContext
    rng_state: dict[str, Any] | None = None

    def exclude_in(self, start: int, stop: int) -> np.ndarray:
        """Excluded global rows inside ``[start, stop)`` (what one chunk's task needs)."""
        lo, hi = np.searchsorted(self.ctx.excluded, [start, stop])
        return self.ctx.excluded[lo:hi]

    def chunk_rng(self, offset: int) -> np.random.Generator | None:
        """The generator of the chunk starting at ``offset`` (random keys only)."""
        return None if self.rng_state is None else row_keys_rng(self.rng_state, offset)


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
) -> DistributedQuery:
    """Prepare a query as ``strategy.query`` would (same random draws, same order), so the chunked
    result equals the in-memory one. Raises :class:`~strategies.base.NotChunkable` for a
    strategy that needs the whole pool at once, or whose score draws random numbers per chunk."""
    batch_size = check_batch_size(batch_size)
    ctx = QueryContext.build(
        model,
        source.open(),
        X_labeled=X_labeled,
        y_labeled=y_labeled,
        random_state=random_state,
        exclude=exclude,
        n_rows=source.n_rows,
    )
    plan = strategy.chunk_plan(ctx, batch_size)
    if plan.not_distributable:
        raise NotChunkable(f"{plan.not_distributable} (use scale.executor: local)")
    rng_state = None
    if plan.scorer.row_keys:
        if not hasattr(ctx.rng.bit_generator, "advance"):
            raise NotChunkable(
                f"random keys need a bit generator that can jump ahead (PCG64), "
                f"got {type(ctx.rng.bit_generator).__name__}"
            )
        rng_state = ctx.rng.bit_generator.state
    return DistributedQuery(strategy, plan, ctx, rng_state)


def finish(query: DistributedQuery, merged: ChunkTopK) -> Selection:
    """The query's :class:`~strategies.base.Selection` from the merged candidates."""
    best = RunningTopK(query.plan.k, keep_rows=query.plan.keep_rows)
    best.indices, best.scores, best.rows = merged.indices, merged.scores, merged.rows
    selection = query.plan.finish(best)
    if np.unique(selection.indices).shape[0] != selection.indices.shape[0]:
        raise AssertionError(f"{query.strategy.name} selected a row twice")  # a bug
    return selection


def score_parts(query: DistributedQuery, specs: Iterable[ChunkSpec]) -> list[ChunkTopK]:
    """Every chunk's top-k, one after the other in this process (what workers do in parallel)."""
    plan = query.plan
    return [
        score_chunk(
            plan.scorer,
            plan.state,
            query.ctx.model,
            spec.load(),
            spec.start,
            plan.k,
            query.exclude_in(spec.start, spec.stop),
            keep_rows=plan.keep_rows,
            rng=query.chunk_rng(spec.start),
        )
        for spec in specs
    ]


def select_chunked(
    strategy: QueryStrategy,
    model: Any,
    X_pool: Any,
    batch_size: int,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    **query: Any,
) -> Selection:
    """The distributed algorithm run serially in this process (the reference the scale-out is
    tested against). ``X_pool``: a source or an array; ``query``: the keywords of
    ``strategy.query``."""
    source = X_pool if hasattr(X_pool, "bounds") else ArraySource(X_pool)
    planned = plan_query(strategy, model, source, batch_size, **query)
    return finish(
        planned, merge_topk(score_parts(planned, plan_chunks(source, chunk_size)), planned.plan.k)
    )
