"""Ingest: CSV, Parquet, JSONL and folders of text or image files -> a new pool (or holdout) batch.

Each row gets a stable ``id`` (from ``data.id_column``, else a sha256 of its content), identical
rows are dropped within the file and against the pool, and the rest is appended as batch
``ingest_batch`` with a UTC ``first_seen`` time, only after the ingest gate has passed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.data import store
from tasks.data.checks import run_checks
from tasks.data.content_ids import content_id, row_hashes
from tasks.data.gates import Failure, GateResult, conclude, reject
from tasks.data.readers import HASH_KEY, DuplicateKeyError, read_folder, read_table, unique_keys
from tasks.data.profile import resolve
from tasks.data.typed_checks import item_failures
from tasks.data.validate import ingest_checks, numeric_failures, schema_failures

__all__ = [  # the readers and content ids, importable from here as before the split
    "HASH_KEY",
    "DuplicateKeyError",
    "IngestResult",
    "content_id",
    "ingest",
    "read_folder",
    "read_table",
    "row_hashes",
    "unique_keys",
    "value_failures",
]

RESERVED = ("ingest_batch", "first_seen")


@dataclass
class IngestResult:
    """What one ingest added."""

    path: str
    batch: int
    added: int
    duplicates_in_file: int
    already_present: int
    target: str
    summary: dict[str, Any] = field(default_factory=dict)


def ingest(
    path: Path | str,
    settings: Any,
    *,
    holdout: bool = False,
    round_: int | None = None,
    now: datetime | None = None,
) -> IngestResult:
    """Read ``path``, give rows stable ids, de-duplicate, gate, and append a new ingest batch.

    ``holdout=True`` appends to ``holdout.parquet`` instead (rows must carry ``data.label_column``).
    Raises ``ValidationError`` (pool and holdout unchanged) if any row fails the ingest gate.
    """
    data = settings.data
    path = Path(path)
    gate = "holdout_ingest" if holdout else "ingest"
    where = settings
    if not path.exists():
        reject(gate, where, path, None, None, "no such file or folder", round_=round_)
    extra: list[Failure] = []
    if path.is_dir():
        df, extra = read_folder(path, data, gate, where)
    else:
        df = read_table(path, gate, where)

    required = list(data.feature_columns)
    if data.id_column:
        required.append(data.id_column)
    if holdout:
        required.append(data.label_column)
    pool, stored_holdout = store.read_pool(where), store.read_holdout(where)
    existing_cols = [c for c in pool.columns if c not in store.POOL_META]
    if not holdout:
        required += [c for c in existing_cols if c not in data.nullable_columns]
    failures = schema_failures(df, list(dict.fromkeys(required)))
    for column in (*RESERVED, *([] if data.id_column == "id" else ["id"])):
        if column in df.columns:
            hint = " (set data.id_column: id to use it as the id)" if column == "id" else ""
            failures.append(Failure(None, column, "reserved", f"reserved column name{hint}"))
    if failures:
        conclude(gate, where, path, GateResult(failures), df=df, round_=round_)

    # numeric in the config or already numeric in the pool: every new value must be a number too
    pool_numeric = [c for c in existing_cols if pd.api.types.is_numeric_dtype(pool[c])]
    numeric = list(dict.fromkeys([*data.feature_columns, *data.value_ranges, *pool_numeric]))
    df, type_failures = numeric_failures(df, numeric)
    extra += type_failures
    # the rows must fit the columns they will join (labels are stored as text whatever their type)
    own, other = (stored_holdout, pool) if holdout else (pool, stored_holdout)
    skip = (HASH_KEY, "source_path", *([data.label_column] if holdout else []))
    extra += value_failures(df, own, skip=skip)
    # usable as its kind: a text with words, an image that opens, a list of tokens
    extra += item_failures(df, resolve(settings))
    if holdout and settings.model.task == "detection" and data.image_column in df.columns:
        from tasks.data.typed_checks import region_failures

        # the holdout's regions: boxes on their own image, as collected answers are checked
        names = pd.Series([f"row {n + 1}" for n in range(len(df))], index=df.index)
        labels, images = df[data.label_column], df[data.image_column]
        extra += region_failures(labels, images, names, settings, data.label_column)

    hashed = not data.id_column and HASH_KEY not in df.columns
    if data.id_column:
        ids = df[data.id_column].map(lambda v: None if pd.isna(v) else _id_text(v))
        df = df.drop(columns=[data.id_column])
        content_cols = [c for c in df.columns if c != HASH_KEY]
    else:
        # an item's id is its content, never its label (holdout rows must match pool rows)
        skip = (HASH_KEY, "source_path", data.label_column)
        content_cols = [c for c in df.columns if c not in skip]
        ids = df[HASH_KEY] if HASH_KEY in df.columns else row_hashes(df, content_cols)
    if HASH_KEY in df.columns:
        df = df.drop(columns=[HASH_KEY])
    df.insert(0, "id", ids.astype(object))
    if holdout:
        df = df.rename(columns={data.label_column: "label"})
        df["label"] = df["label"].map(lambda v: None if pd.isna(v) else _id_text(v))

    compare = [c for c in df.columns if c not in ("id", "source_path")]
    # ids hashed from exactly the compared columns already are those columns' hashes
    hashes = df["id"] if hashed and set(compare) == set(content_cols) else row_hashes(df, compare)
    exact = pd.DataFrame({"id": df["id"], "h": hashes}).duplicated()
    duplicates_in_file = int(exact.sum())
    if duplicates_in_file:
        df = df[~exact]

    already = df["id"].isin(set(own["id"]))
    if already.any():
        shared = [c for c in compare if c in own.columns]
        theirs = own.drop_duplicates("id").set_index("id")
        known = df[already]
        same = (
            row_hashes(known, shared).to_numpy()
            == row_hashes(theirs.loc[known["id"]].reset_index(), shared).to_numpy()
        )
        for row in known.index[~same]:
            where_to = "holdout" if holdout else "pool"
            reason = f"id already in the {where_to} with different content"
            extra.append(Failure(int(row), "id", "id_unchanged", reason))
    clash = df["id"].isin(set(other["id"]))
    for row in df.index[clash]:
        reason = "id is in the pool" if holdout else "id is in the holdout (never queried)"
        extra.append(Failure(int(row), "id", "holdout_disjoint", reason))
    already_present = int(already.sum())
    new = df[~already] if already_present else df

    detection = settings.model.task == "detection"
    checks = ingest_checks(new, data, holdout=holdout, class_labels=not detection)
    result = run_checks(new, gate, checks) if len(new) else GateResult()
    result.failures = extra + result.failures
    if data.id_column:  # report the input's own column name
        for failure in result.failures:
            failure.column = data.id_column if failure.column == "id" else failure.column
    summary = conclude(gate, where, path, result, df=df, round_=round_, rows=len(df))

    batch = store.next_ingest_batch(where)
    stamp = pd.Timestamp(now or datetime.now(UTC))
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    new = new.copy(deep=False)  # new columns on this frame only; the data is not copied
    new.index = pd.RangeIndex(len(new))
    new["ingest_batch"] = batch
    new["first_seen"] = pd.DatetimeIndex([stamp]).as_unit("us").repeat(len(new))
    if len(new):
        if holdout:
            store.write_holdout(where, new)
        else:
            store.append_pool(where, new)
    return IngestResult(
        path=str(path),
        batch=batch,
        added=len(new),
        duplicates_in_file=duplicates_in_file,
        already_present=already_present,
        target="holdout" if holdout else "pool",
        summary=summary,
    )


INT64 = (-(2**63), 2**63 - 1)


def _kind(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "true/false"
    if isinstance(value, (int, float, np.number)):
        return "number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, (datetime, pd.Timestamp, np.datetime64)):
        return "date-time"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, (list, tuple, np.ndarray)):
        return "list"
    return type(value).__name__


def _dtype_kind(column: pd.Series) -> str | None:
    if pd.api.types.is_bool_dtype(column):
        return "true/false"
    if pd.api.types.is_numeric_dtype(column):
        return "number"
    if pd.api.types.is_datetime64_any_dtype(column):
        return "date-time"
    present = column.dropna()
    return _kind(present.iloc[0]) if len(present) else None


def value_failures(df: pd.DataFrame, pool: pd.DataFrame, *, skip: tuple[str, ...]) -> list[Failure]:
    """A failure per value the pool cannot store as given: a column mixing kinds of values (or
    of another kind than the pool's column), nested lists or objects, non-finite numbers,
    integers beyond 64 bits."""
    failures = []
    for column in df.columns:
        if column in skip:
            continue
        values = df[column]
        theirs = pool[column] if column in pool.columns else None
        expected = _dtype_kind(theirs) if theirs is not None else None
        if values.dtype != object:
            kind = _dtype_kind(values)
            if kind == "number":
                infinite = np.isinf(values.to_numpy(dtype=float, na_value=np.nan))
                for row in values.index[infinite]:
                    failures.append(Failure(int(row), column, "finite", "not a finite number"))
            if expected is not None and kind != expected:
                for row, value in values.dropna().items():
                    reason = f"{kind} value {value!r} in a column of {expected} values"
                    failures.append(
                        Failure(int(row), column, "expect_column_values_to_be_of_type", reason)
                    )
            continue
        if expected in (None, "text") and pd.api.types.infer_dtype(values) == "string":
            continue  # only text and nulls: nothing the loop below would report
        for row, value in values.items():
            if value is None or (
                not isinstance(value, (list, dict, tuple, np.ndarray)) and pd.isna(value)
            ):
                continue
            kind = _kind(value)
            shown = repr(value)[:60]
            if kind in ("list", "object"):
                reason = f"nested {kind} value {shown}: flatten it or store it as text"
            elif kind == "number" and isinstance(value, int) and not INT64[0] <= value <= INT64[1]:
                reason = f"integer too large for a 64-bit column: {shown}"
            elif kind == "number" and isinstance(value, float) and not np.isfinite(value):
                reason = "not a finite number"
            elif expected is None:
                expected = kind
                continue
            elif kind != expected:
                reason = f"{kind} value {shown} in a column of {expected} values"
            else:
                continue
            failures.append(Failure(int(row), column, "expect_column_values_to_be_of_type", reason))
    return failures


def _id_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)
