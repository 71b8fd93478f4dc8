"""The one interface every strategy implements, and the chunked scoring loop they share.

``select(model, X_pool, batch_size, *, X_labeled=None, y_labeled=None, random_state=None)``
returns unique pool row indices, most informative first. ``query`` returns the same indices with
their scores and where each came from (the strategy, or ``"random"`` for bias-guard picks), which
is what a round manifest records.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from strategies._pool import (
    DEFAULT_CHUNK_SIZE,
    Pool,
    as_pool,
    chunk_exclusion_mask,
    exclusion_index,
)
from strategies.selection import RunningTopK

RandomState = int | np.random.Generator | np.random.RandomState | None


def check_random_state(random_state: RandomState) -> np.random.Generator:
    """A ``Generator`` from a seed, a Generator (used as is) or a legacy RandomState."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(0, 2**31 - 1))
    return np.random.default_rng(random_state)


def sklearn_seed(rng: np.random.Generator) -> int:
    """An int seed for scikit-learn estimators, drawn from ``rng`` so runs stay reproducible."""
    return int(rng.integers(0, 2**31 - 1))


@dataclass(frozen=True)
class Selection:
    """A selected batch: pool row ``indices`` (most informative first), their ``scores`` and
    ``sources`` (the strategy's name, or ``"random"`` for rows drawn by the random-fraction guard).
    Scores are NaN where a row has no per-row score (batch-diversity picks, random picks)."""

    indices: np.ndarray
    scores: np.ndarray
    sources: np.ndarray

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    @staticmethod
    def of(indices: np.ndarray, scores: np.ndarray | None, source: str) -> Selection:
        indices = np.asarray(indices, dtype=np.int64)
        if scores is None:
            scores = np.full(indices.shape[0], np.nan)
        return Selection(
            indices,
            np.asarray(scores, dtype=np.float64),
            np.full(indices.shape[0], source, dtype=object),
        )

    def concat(self, other: Selection) -> Selection:
        return Selection(
            np.concatenate([self.indices, other.indices]),
            np.concatenate([self.scores, other.scores]),
            np.concatenate([self.sources, other.sources]),
        )


def check_batch_size(batch_size: Any) -> int:
    """``batch_size`` as an int, or a ValueError (a positive whole number is required)."""
    if (
        not isinstance(batch_size, int | np.integer)
        or isinstance(batch_size, bool)
        or batch_size < 1
    ):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return int(batch_size)


class NotChunkable(ValueError):
    """The strategy (or its configuration) cannot be scored chunk by chunk on separate workers:
    it needs the whole pool at once, or draws random numbers while scoring."""


RowFilter = Callable[[Any], np.ndarray]
ChunkObserver = Callable[[int, Any, np.ndarray], None]


@dataclass
class QueryContext:
    """Everything one query needs, built once: the model, the pool reader, the labeled data,
    the random generator, which rows are excluded, and hooks that guards add."""

    model: Any
    pool: Pool
    X_labeled: Any = None
    y_labeled: Any = None
    rng: np.random.Generator = field(default_factory=np.random.default_rng)
    excluded: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    row_filters: list[RowFilter] = field(default_factory=list)
    observers: list[ChunkObserver] = field(default_factory=list)
    last_scores: np.ndarray | None = None
    #: the pool row of the current chunk's first row (while :meth:`chunks` yields it)
    offset: int = 0
    _proba_key: int | None = None
    _proba: np.ndarray | None = None

    @classmethod
    def build(
        cls,
        model: Any,
        X_pool: Any,
        *,
        X_labeled: Any = None,
        y_labeled: Any = None,
        random_state: RandomState = None,
        exclude: Any = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        n_rows: int | None = None,
    ) -> QueryContext:
        """The one way a query is set up, in memory, chunked or distributed: the pool reader,
        the labeled rows, the generator, the excluded rows (``n_rows``: the pool's size when the
        reader cannot know it, e.g. a file read chunk by chunk)."""
        pool = as_pool(X_pool, chunk_size)
        return cls(
            model=model,
            pool=pool,
            X_labeled=X_labeled,
            y_labeled=None if y_labeled is None else np.asarray(y_labeled),
            rng=check_random_state(random_state),
            excluded=exclusion_index(exclude, pool.n_rows if n_rows is None else n_rows),
        )

    @property
    def n_labeled(self) -> int:
        """Size of the labeled set (0 when the caller passed none): what cold-start rules read."""
        for labeled in (self.X_labeled, self.y_labeled):
            if labeled is not None:
                return int(labeled.shape[0]) if hasattr(labeled, "shape") else len(labeled)
        return 0

    def predict_proba(self, X_chunk: Any) -> np.ndarray:
        """``model.predict_proba`` on a chunk, cached for the chunk so guards don't pay twice."""
        if self._proba_key != id(X_chunk):
            proba = np.asarray(self.model.predict_proba(X_chunk))
            if proba.ndim != 2:
                raise ValueError(f"predict_proba must return (n, n_classes), got {proba.shape}")
            self._proba, self._proba_key = proba, id(X_chunk)
        return self._proba

    def chunks(self) -> Iterator[tuple[int, Any, np.ndarray]]:
        """Yield ``(offset, chunk, eligible)``: ``eligible`` holds the chunk-local rows that may be
        selected (not excluded, not filtered). Observers see each chunk after the consumer."""
        for offset, chunk in self.pool.chunks():
            n = chunk.shape[0]
            blocked = chunk_exclusion_mask(self.excluded, offset, n)
            for row_filter in self.row_filters:
                bad = ~np.asarray(row_filter(chunk), dtype=bool)
                blocked = bad if blocked is None else (blocked | bad)
            eligible = np.arange(n) if blocked is None else np.flatnonzero(~blocked)
            self.last_scores, self.offset = None, offset
            yield offset, chunk, eligible
            for observe in self.observers:
                observe(offset, chunk, eligible)


class QueryStrategy(ABC):
    """Base class: constructor stores parameters only; all validation happens at query time."""

    name: ClassVar[str] = "strategy"
    #: one line on what it costs per query, shown by ``labelwise strategies``
    cost: ClassVar[str] = ""
    #: the kinds of model it can query: "classification" (class probabilities), "regression"
    #: (predictions and their spread), "sequence" (per-token probabilities of each item)
    tasks: ClassVar[frozenset[str]] = frozenset({"classification"})

    def select(self, model: Any, X_pool: Any, batch_size: int, **query: Any) -> np.ndarray:
        """Unique pool row indices of shape (min(batch_size, n_eligible),), most informative
        first; ``query``: the keywords of :meth:`query`."""
        return self.query(model, X_pool, batch_size, **query).indices

    def query(
        self,
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
        """Like :meth:`select`, with each row's score and source."""
        batch_size = check_batch_size(batch_size)
        ctx = QueryContext.build(
            model,
            X_pool,
            X_labeled=X_labeled,
            y_labeled=y_labeled,
            random_state=random_state,
            exclude=exclude,
            chunk_size=chunk_size,
        )
        selection = self._query(ctx, batch_size)
        if np.unique(selection.indices).shape[0] != selection.indices.shape[0]:
            raise AssertionError(f"{self.name} selected a row twice")  # a bug, never user error
        return selection

    @abstractmethod
    def _query(self, ctx: QueryContext, batch_size: int) -> Selection:
        """Select from ``ctx.pool`` using ``ctx.chunks()`` so exclusions and guards apply."""

    def chunk_plan(self, ctx: QueryContext, batch_size: int) -> ChunkPlan:
        """This query as independent per-chunk scoring plus one final step (what scale-out
        runs); raises :class:`NotChunkable` for a strategy that needs the whole pool at once."""
        raise NotChunkable(
            f"strategy {self.name!r} ({type(self).__name__}) needs the whole pool at once: "
            "only per-row scores and hybrid can be scored in chunks (use scale.executor: local)"
        )

    def map_scores(self, wrap: Callable[[ScoreStrategy], ScoreStrategy]) -> QueryStrategy:
        """This strategy with its per-row score wrapped (costs, privacy noise)."""
        raise ValueError(f"strategy {self.name!r} has no per-row score to weight or perturb")

    def observe(self, indices: Any, labels: Any) -> None:
        """Labels of pool rows (by index) picked earlier, once they arrive: for a strategy that
        learns across rounds (``auto``); the others ignore them."""
        return None

    def get_state(self) -> dict[str, Any] | None:
        """What a strategy that learns across rounds carries to the next query (plain JSON, pool
        rows as indices), or None: a caller that rebuilds the strategy passes it back as the
        ``state`` parameter."""
        return None

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue from a state that :meth:`get_state` gave (a no-op for stateless ones)."""
        return None

    def get_params(self) -> dict[str, Any]:
        """The constructor's parameters, by name (scikit-learn's convention)."""
        parameters = inspect.signature(type(self).__init__).parameters.values()
        named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return {
            p.name: getattr(self, p.name)
            for p in parameters
            if p.name != "self" and p.kind in named
        }

    def clone(self, **changes: Any) -> QueryStrategy:
        """A new strategy with the same parameters, ``changes`` applied by name."""
        unknown = set(changes) - set(self.get_params())
        if unknown:
            raise ValueError(f"{type(self).__name__} has no parameter(s) {sorted(unknown)}")
        return type(self)(**{**self.get_params(), **changes})

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"


class ScoreStrategy(QueryStrategy):
    """A strategy with an independent score per row: the batch is the top-k scores.

    Subclasses implement :meth:`chunk_scores` (and :meth:`prepare` for per-query state, such as a
    committee or k-means centroids). The pool is scored chunk by chunk with a running top-k.
    """

    def prepare(self, ctx: QueryContext) -> Any:
        """Per-query state shared by all chunks (fitted once per query)."""
        return None

    @abstractmethod
    def chunk_scores(self, ctx: QueryContext, state: Any, X_chunk: Any) -> np.ndarray:
        """Scores of shape (len(X_chunk),), higher is more informative."""

    def score(
        self,
        model: Any,
        X_pool: Any,
        *,
        X_labeled: Any = None,
        y_labeled: Any = None,
        random_state: RandomState = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> np.ndarray:
        """Scores of shape (n_pool,) for every pool row, higher is more informative."""
        ctx = QueryContext.build(
            model,
            X_pool,
            X_labeled=X_labeled,
            y_labeled=y_labeled,
            random_state=random_state,
            chunk_size=chunk_size,
        )
        state = self.prepare(ctx)
        parts = [self._scores(ctx, state, chunk) for _, chunk, _ in ctx.chunks()]
        return np.concatenate(parts) if parts else np.empty(0)

    def _scores(self, ctx: QueryContext, state: Any, chunk: Any) -> np.ndarray:
        scores = np.asarray(self.chunk_scores(ctx, state, chunk), dtype=np.float64)
        if scores.shape != (chunk.shape[0],):
            raise ValueError(
                f"{self.name}: expected {chunk.shape[0]} scores for the chunk, got {scores.shape}"
            )
        ctx.last_scores = scores
        return scores

    #: why the score cannot be computed on separate workers exactly (None: it can)
    not_distributable: ClassVar[str | None] = None
    #: the score draws one random number per row from ``ctx.rng`` (random keys): a worker gets
    #: the generator advanced to its chunk's first row
    row_keys: ClassVar[bool] = False

    def top_candidates(
        self, ctx: QueryContext, k: int, keep_rows: bool = False, state: Any = None
    ) -> RunningTopK:
        """One pass over the pool keeping the ``k`` best eligible rows (and their features)."""
        state = self.prepare(ctx) if state is None else state
        return ChunkPlan(self, state, k, keep_rows=keep_rows).scan(ctx)

    def chunk_plan(self, ctx: QueryContext, batch_size: int) -> ChunkPlan:
        return ChunkPlan(self, self.prepare(ctx), batch_size, self._as_selection)

    def _as_selection(self, best: RunningTopK) -> Selection:
        return Selection.of(best.indices, best.scores, self.name)

    def _query(self, ctx: QueryContext, batch_size: int) -> Selection:
        return self.chunk_plan(ctx, batch_size).run(ctx)

    def map_scores(self, wrap: Callable[[ScoreStrategy], ScoreStrategy]) -> QueryStrategy:
        return wrap(self)


class ProbaScoreStrategy(ScoreStrategy):
    """A score computed from the model's class probabilities alone (uncertainty sampling)."""

    score_fn: ClassVar[Callable[[np.ndarray], np.ndarray]]

    def chunk_scores(self, ctx: QueryContext, state: Any, X_chunk: Any) -> np.ndarray:
        return type(self).score_fn(ctx.predict_proba(X_chunk))


@dataclass
class ChunkPlan:
    """A query as independent per-chunk scoring plus one final step: every chunk keeps its ``k``
    best rows by ``scorer`` (with its prepared ``state``; with the rows themselves when
    ``keep_rows``), and ``finish`` turns the merged candidates into the selection. The in-memory
    query runs the plan in this process (:meth:`run`); scale-out runs the same plan on workers
    (:mod:`strategies.chunked`), so both select the same rows."""

    scorer: ScoreStrategy
    state: Any
    k: int
    finish: Callable[[RunningTopK], Selection] | None = None
    keep_rows: bool = False

    @property
    def not_distributable(self) -> str | None:
        """Why workers could not score this plan exactly (None: they can)."""
        return self.scorer.not_distributable

    def scan(self, ctx: QueryContext) -> RunningTopK:
        """The ``k`` best eligible rows over every chunk of the pool, in this process."""
        best = RunningTopK(self.k, keep_rows=self.keep_rows)
        for offset, chunk, eligible in ctx.chunks():
            best.push(self.scorer._scores(ctx, self.state, chunk), offset, chunk, eligible)
        return best

    def run(self, ctx: QueryContext) -> Selection:
        """Scan the pool here and finish: the in-memory query."""
        if self.finish is None:
            raise ValueError("a candidate-only plan has no final step")
        return self.finish(self.scan(ctx))
