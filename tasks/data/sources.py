"""Pools read from files, a chunk at a time: a C-ordered ``.npy`` (one positioned read per chunk)
or a Parquet file (whole row groups), so a scale-out worker reads only its own rows. The
chunked scoring itself is :mod:`strategies.chunked`; in-memory pools are its ``ArraySource``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from strategies._pool import DEFAULT_CHUNK_SIZE
from strategies.base import NotChunkable
from strategies.chunked import ArraySource, even_bounds


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
            raise NotChunkable(f"{path}: only C-ordered .npy pools can be chunked")
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
        return even_bounds(self.n_rows, chunk_size)


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


def as_source(X_pool: Any) -> Any:
    """A lazy source from a ``.npy``/``.parquet`` path, a memory-mapped ``.npy`` or an array."""
    if isinstance(X_pool, ArraySource | NpySource | ParquetSource):
        return X_pool
    if isinstance(X_pool, str | Path):
        suffix = Path(X_pool).suffix.lower()
        if suffix == ".npy":
            return NpySource.from_path(X_pool)
        if suffix in (".parquet", ".pq"):
            return ParquetSource(str(Path(X_pool).resolve()))
        raise NotChunkable(f"{X_pool}: expected a .npy or .parquet pool file")
    if isinstance(X_pool, np.memmap) and getattr(X_pool, "filename", None):
        base = np.load(X_pool.filename, mmap_mode="r")
        if base.shape == X_pool.shape and base.offset == X_pool.offset:
            return NpySource.from_path(X_pool.filename)
    if hasattr(X_pool, "shape") and hasattr(X_pool, "__getitem__"):
        return ArraySource(X_pool)
    raise NotChunkable(
        f"cannot chunk a pool of type {type(X_pool).__name__}: pass an array, a .npy or a .parquet"
    )
