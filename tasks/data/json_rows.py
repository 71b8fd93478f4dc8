"""Rows written as JSON text a column at a time: the bytes ``json.dumps`` gives row by row.

Numbers are written by orjson (one call per column) where it spells them as Python does, text
and other values by the ``json`` module, and pyarrow joins the columns into one string per row.
Content ids hash these strings; quarantine records store them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from json.encoder import encode_basestring, encode_basestring_ascii
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

CHUNK_ROWS = 1 << 15  # rows written at a time: bounds the memory of the row strings
# Python's repr of a float is positional for 1e-4 <= |x| < 1e16 (and 0): there orjson writes
# the same shortest digits; the rest are written one by one
POSITIONAL = (1e-4, 1e16)


def plain(value: Any) -> Any:
    """A cell as a plain Python value, missing values (None, NaN, NaT, NA) as None."""
    if value is None or (not isinstance(value, (list, dict, str)) and pd.isna(value)):
        return None
    return value.item() if hasattr(value, "item") else value


@dataclass(frozen=True)
class Dialect:
    """How a cell is written: what a float NaN becomes, how text and other values are written."""

    nan: str
    text: Callable[[str], str]
    other: Callable[[Any], str]


# json.dumps(value, default=str, ensure_ascii=False) of the value as given (content ids)
AS_GIVEN = Dialect(
    "NaN", encode_basestring, lambda v: json.dumps(v, default=str, ensure_ascii=False)
)
# json.dumps(plain(value), default=str) (quarantine records)
PLAIN = Dialect("null", encode_basestring_ascii, lambda v: json.dumps(plain(v), default=str))


def json_rows(
    df: pd.DataFrame, columns: list[Any], pieces: list[str], end: str, dialect: Dialect
) -> Iterator[pa.Array]:
    """Per chunk of rows, one string per row: ``pieces[i]`` before the cell of ``columns[i]``,
    ``end`` after the last (``df`` has unique column names, ``columns`` at least one)."""
    tail = pa.scalar(end, pa.large_string())
    for start in range(0, len(df), CHUNK_ROWS):
        part = df.iloc[start : start + CHUNK_ROWS]
        cells = [_cells(part[c], p, dialect) for c, p in zip(columns, pieces, strict=True)]
        yield pc.binary_join_element_wise(*cells, tail, pa.scalar("", tail.type))


def _cells(values: pd.Series, piece: str, dialect: Dialect) -> pa.Array:
    dtype = values.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "iub":  # Python ints and bools
        return _numbers(values.to_numpy(), piece)
    if isinstance(dtype, np.dtype) and dtype.kind == "f" and dtype.itemsize <= 8 and _fast():
        return _floats(values.to_numpy(dtype=np.float64), piece, dialect.nan)
    cells = values.astype(object).tolist()
    if pd.api.types.infer_dtype(cells, skipna=False) == "string":
        text = [piece + dialect.text(s) for s in cells]
    else:
        text = [piece + dialect.other(v) for v in cells]
    return pa.array(text, pa.large_string())


def _floats(x: np.ndarray, piece: str, nan: str) -> pa.Array:
    magnitude = np.abs(x)
    python = ~(((magnitude >= POSITIONAL[0]) & (magnitude < POSITIONAL[1])) | (magnitude == 0))
    if not python.any():
        return _numbers(x, piece)
    at = np.flatnonzero(python)  # NaN, infinities, 1e-05, 1e+16: Python's spelling
    return _numbers(x, piece, at, [_float_json(v, nan) for v in x[at].tolist()])


def _float_json(value: float, nan: str) -> str:
    if math.isfinite(value):
        return repr(value)
    return nan if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def _numbers(
    array: np.ndarray, piece: str, at: np.ndarray | None = None, texts: list[str] | None = None
) -> pa.Array:
    """``piece + element`` per element of a numeric array, from one orjson document; the
    elements at positions ``at`` are written ``texts`` instead."""
    import orjson

    if not len(array):
        return pa.array([], pa.large_string())
    raw = orjson.dumps(np.ascontiguousarray(array), option=orjson.OPT_SERIALIZE_NUMPY)
    cuts = np.flatnonzero(np.frombuffer(raw, np.uint8) == ord(","))
    # "[1.5,2]" -> piece 1.5 piece 2: numbers hold no comma
    sep = piece.encode()
    data = sep + raw[1:-1].replace(b",", sep)
    starts = np.empty(len(array) + 1, np.int64)
    starts[0], starts[-1] = 0, len(data)
    starts[1:-1] = cuts + len(sep) - 1 + np.arange(len(cuts)) * (len(sep) - 1)
    if at is not None and texts is not None and len(at):
        data, starts = _splice(data, starts, at, [sep + t.encode() for t in texts])
    return pa.LargeStringArray.from_buffers(len(array), pa.py_buffer(starts), pa.py_buffer(data))


def _splice(
    data: bytes, starts: np.ndarray, at: np.ndarray, new: list[bytes]
) -> tuple[bytes, np.ndarray]:
    """Replace the elements at positions ``at`` (ascending) of a packed string array."""
    view, parts, done = memoryview(data), [], 0
    begin, end = starts[at].tolist(), starts[at + 1].tolist()
    for b, e, text in zip(begin, end, new, strict=True):
        parts += [view[done:b], text]
        done = e
    parts.append(view[done:])
    growth = np.zeros(len(starts), np.int64)
    growth[at + 1] = np.fromiter(map(len, new), np.int64, len(new)) - (starts[at + 1] - starts[at])
    return b"".join(parts), starts + np.cumsum(growth)


@cache
def _fast() -> bool:
    """Whether orjson writes floats as ``repr`` does in the positional range (checked once)."""
    probes = np.array([0.1, 1 / 3, -2.5e-4, 1e-4, 3.0, -0.0, 123456.789, 4503599627370495.5])
    written = _numbers(probes, "").to_pylist()
    return written == [repr(float(p)) for p in probes]
