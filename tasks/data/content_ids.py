"""Content ids: the first 32 hex digits of the sha256 of a row's values written as JSON.

An id is defined by ``row_payload`` (one row at a time, the reference); ``row_hashes`` writes
the same bytes a column at a time (``json_rows``) and only hashes row by row, so existing
projects keep their ids.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from tasks.data.json_rows import AS_GIVEN, json_rows


def content_id(payload: bytes) -> str:
    """The stable id of a piece of content: the first 32 hex digits of its sha256."""
    return hashlib.sha256(payload).hexdigest()[:32]


def row_payload(pairs: list[tuple[str, Any]]) -> bytes:
    """The bytes a row's id hashes: its ``(column, value)`` pairs, sorted by column, as JSON.

    Values are written as they are: ``3`` and ``3.0``, or a timestamp and its text, differ.
    """
    return json.dumps(pairs, default=str, ensure_ascii=False).encode()


def row_hashes(df: pd.DataFrame, columns: list[str]) -> pd.Series:
    """sha256-based content id of each row over ``columns`` (sorted by name)."""
    cols = sorted(columns)
    if not cols:
        return pd.Series([content_id(b"[]")] * len(df), index=df.index, dtype=object)
    if not df.columns.is_unique:  # df[name] would be a frame: take the reference path
        return _row_hashes_one_by_one(df, cols)
    names = [json.dumps(c, ensure_ascii=False) for c in cols]
    pieces = [f"[[{names[0]}, ", *(f"], [{name}, " for name in names[1:])]
    ids = [
        i for payloads in json_rows(df, cols, pieces, "]]", AS_GIVEN) for i in _digests(payloads)
    ]
    return pd.Series(ids, index=df.index, dtype=object)


def _row_hashes_one_by_one(df: pd.DataFrame, cols: list[str]) -> pd.Series:
    values = df[cols].astype(object).to_numpy().tolist()
    return pd.Series(
        [content_id(row_payload(list(zip(cols, v, strict=True)))) for v in values],
        index=df.index,
        dtype=object,
    )


def _digests(payloads: pa.Array) -> list[str]:
    bounds = np.frombuffer(payloads.buffers()[1], np.int64)
    bounds = bounds[payloads.offset : payloads.offset + len(payloads) + 1].tolist()
    data = memoryview(payloads.buffers()[2])
    sha256 = hashlib.sha256
    return [sha256(data[a:b]).hexdigest()[:32] for a, b in itertools.pairwise(bounds)]
