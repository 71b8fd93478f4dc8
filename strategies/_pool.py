"""Pool access for strategies: in-memory arrays, memory-mapped arrays and one-shot chunk iterators.

Every strategy reads the pool through :class:`Pool` (its chunks), so a 10M-row memmap or a generator of
chunks is scored with memory O(chunk + batch) instead of O(pool).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULT_CHUNK_SIZE = 65_536


def is_array_like(X: Any) -> bool:
    """True for pools that support ``len`` and row slicing (ndarray, memmap, sparse, DataFrame)."""
    return hasattr(X, "shape") and hasattr(X, "__getitem__")


def take_rows(X: Any, rows: np.ndarray) -> Any:
    """Rows of an array-like pool (``.iloc`` for DataFrames, fancy indexing otherwise)."""
    if hasattr(X, "iloc"):
        return X.iloc[rows]
    return X[rows]


@dataclass
class Pool:
    """A pool that can be iterated once, in chunks, with global row offsets.

    ``source`` is either array-like (sliced lazily, so memmaps stay on disk) or an iterable of
    array-like chunks. For iterables, :meth:`peek` keeps the first chunk so that strategies which
    need a reference sample (density, outlier filter) can look before the scoring pass.
    """

    source: Any
    chunk_size: int = DEFAULT_CHUNK_SIZE
    _head: Any = None
    _rest: Iterator[Any] | None = None

    def __post_init__(self) -> None:
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {self.chunk_size}")
        if isinstance(self.source, list | tuple):
            # A list is a list of items (e.g. token sequences), not of chunks.
            items = np.empty(len(self.source), dtype=object)
            items[:] = list(self.source)
            self.source = items
        if not is_array_like(self.source):
            if not isinstance(self.source, Iterable):
                raise TypeError(
                    "X_pool must be an array, a memory-mapped array or an iterable of chunks, "
                    f"got {type(self.source).__name__}"
                )
            self._rest = iter(self.source)

    @property
    def in_memory(self) -> bool:
        return self._rest is None

    @property
    def n_rows(self) -> int | None:
        """Number of rows, or None for an iterator (known only after a full pass)."""
        return self.source.shape[0] if self.in_memory else None

    def peek(self) -> Any:
        """First chunk (array-like pools: the first ``chunk_size`` rows) without consuming it."""
        if self.in_memory:
            return self.source[: self.chunk_size]
        if self._head is None:
            try:
                self._head = next(self._rest)
            except StopIteration:
                raise ValueError("X_pool iterator yielded no chunks: the pool is empty") from None
            self._rest = itertools.chain([self._head], self._rest)
        return self._head

    def chunks(self) -> Iterator[tuple[int, Any]]:
        """Yield ``(offset, chunk)``; offsets are global row indices of each chunk's first row."""
        if self.in_memory:
            n = self.source.shape[0]
            for start in range(0, n, self.chunk_size):
                yield start, self.source[start : start + self.chunk_size]
            return
        offset = 0
        for chunk in self._rest:
            if chunk.shape[0] == 0:
                continue
            yield offset, chunk
            offset += chunk.shape[0]
        self._rest = iter(())

    def sample(self, n: int, rng: np.random.Generator) -> Any:
        """Up to ``n`` rows drawn uniformly (array-like pools) or from the first chunk (iterators)."""
        head = self.source if self.in_memory else self.peek()
        n_avail = head.shape[0]
        if n_avail <= n:
            return head[:] if self.in_memory else head
        rows = np.sort(rng.choice(n_avail, size=n, replace=False))
        return take_rows(head, rows)


def as_pool(X_pool: Any, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Pool:
    return X_pool if isinstance(X_pool, Pool) else Pool(X_pool, chunk_size)


def exclusion_index(exclude: Any, n_rows: int | None) -> np.ndarray:
    """Sorted unique row indices to skip, from a boolean mask or an index array."""
    if exclude is None:
        return np.empty(0, dtype=np.int64)
    exclude = np.asarray(exclude)
    if exclude.dtype == bool:
        if n_rows is not None and exclude.shape[0] != n_rows:
            raise ValueError(
                f"exclude mask has {exclude.shape[0]} entries but the pool has {n_rows} rows"
            )
        return np.flatnonzero(exclude)
    if exclude.size and not np.issubdtype(exclude.dtype, np.integer):
        raise TypeError(f"exclude must be a boolean mask or integer indices, got {exclude.dtype}")
    return np.unique(exclude.astype(np.int64, copy=False))


def chunk_exclusion_mask(excluded: np.ndarray, offset: int, length: int) -> np.ndarray | None:
    """Boolean mask of excluded rows inside ``[offset, offset + length)``, or None if there are none."""
    lo, hi = np.searchsorted(excluded, [offset, offset + length])
    if lo == hi:
        return None
    mask = np.zeros(length, dtype=bool)
    mask[excluded[lo:hi] - offset] = True
    return mask
