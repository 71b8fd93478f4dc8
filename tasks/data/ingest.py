"""Ingest: CSV, Parquet, JSONL and folders of text or image files -> a new pool (or holdout) batch.

Each row gets a stable ``id`` (from ``data.id_column``, else a sha256 of its content), identical
rows are dropped within the file and against the pool, and the rest is appended as batch
``ingest_batch`` with a UTC ``first_seen`` time, only after the ingest gate has passed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.data import store
from tasks.data.validate import (
    Failure,
    GateResult,
    conclude,
    ingest_checks,
    numeric_failures,
    reject,
    run_checks,
    schema_failures,
)

TABLE_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl"}
TABLE_SUFFIXES[".ndjson"] = "jsonl"
TEXT_SUFFIXES = {".txt"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
RESERVED = ("ingest_batch", "first_seen")
HASH_KEY = "_content_sha256"


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


def content_id(payload: bytes) -> str:
    """The stable id of a piece of content: the first 32 hex digits of its sha256."""
    return hashlib.sha256(payload).hexdigest()[:32]


def _row_payload(values: list[Any]) -> bytes:
    def plain(v: Any) -> Any:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return None
        if hasattr(v, "item"):
            v = v.item()
        if isinstance(v, float) and v.is_integer():
            return int(v)  # 3 and 3.0 are the same content whatever the file's dtype
        if isinstance(v, pd.Timestamp):
            return v.isoformat()
        return v

    return json.dumps([plain(v) for v in values], default=str, ensure_ascii=False).encode()


def row_hashes(df: pd.DataFrame, columns: list[str]) -> pd.Series:
    """sha256-based content id of each row over ``columns`` (sorted by name)."""
    cols = sorted(columns)
    values = df[cols].astype(object).to_numpy().tolist() if cols else [[] for _ in range(len(df))]
    return pd.Series(
        [content_id(_row_payload(list(zip(cols, v, strict=True)))) for v in values],
        index=df.index,
        dtype=object,
    )


# --- reading --------------------------------------------------------------------------------------


def _decode(raw: bytes, path: Path, gate: str, where: Any, *, header: bool) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = raw.rfind(b"\n", 0, exc.start) + 1
        line = raw[:line_start].count(b"\n") + 1
        column = None
        if header:
            names = raw.split(b"\n", 1)[0].decode("utf-8", "replace").strip().split(",")
            position = raw[line_start : exc.start].count(b",")
            column = names[position] if position < len(names) else None
        row = line - 1 if header else line
        reason = f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
        if header and line == 1:  # the header itself: no data row, no trustworthy column name
            row, column, reason = None, None, f"{reason}, in the header line"
        reject(gate, where, path, row, column, reason, check="utf8")


def _numbered(df: pd.DataFrame) -> pd.DataFrame:
    df = df.reset_index(drop=True)
    df.index = pd.RangeIndex(1, len(df) + 1)
    return df


def read_table(path: Path, gate: str, where: Any) -> pd.DataFrame:
    """A CSV, Parquet or JSONL file as a DataFrame indexed by 1-based row number."""
    kind = TABLE_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        known = ", ".join(sorted(TABLE_SUFFIXES))
        reject(gate, where, path, None, None, f"unknown file type (expected {known} or a folder)")
    raw = path.read_bytes()
    if not raw.strip():
        reject(gate, where, path, None, None, "empty file", check="not_empty")
    if kind == "parquet":
        import pyarrow.parquet as pq

        try:
            names = pq.ParquetFile(io.BytesIO(raw)).schema_arrow.names
        except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for damaged files
            reason = f"not a readable Parquet file (truncated or damaged?): {exc}"
            reject(gate, where, path, None, None, reason)
        _check_names(names, path, gate, where)
        try:
            df = pq.read_table(io.BytesIO(raw)).to_pandas()
        except Exception as exc:
            reason = f"not a readable Parquet file (truncated or damaged?): {exc}"
            reject(gate, where, path, None, None, reason)
    elif kind == "csv":
        text = _decode(raw, path, gate, where, header=True)
        _check_csv_layout(text, path, gate, where)
        try:
            df = pd.read_csv(io.StringIO(text))
        except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            reject(gate, where, path, None, None, f"not a readable CSV file: {exc}")
    else:
        text = _decode(raw, path, gate, where, header=False)
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line, object_pairs_hook=unique_keys)
            except json.JSONDecodeError as exc:
                reject(gate, where, path, number, None, f"not valid JSON: {exc.msg}")
            except DuplicateKeyError as exc:
                reject(gate, where, path, number, exc.key, "key appears twice in the object")
            if not isinstance(record, dict):
                reject(gate, where, path, number, None, "each line must be a JSON object")
            records.append(record)
        df = pd.DataFrame.from_records(records)
    if len(df) == 0:
        reject(gate, where, path, None, None, "no rows (header only)", check="not_empty")
    df.columns = [str(c) for c in df.columns]
    return _numbered(df)


class DuplicateKeyError(ValueError):
    """A JSON object names a key twice (``json.loads`` would keep the last value silently)."""

    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for ``json.loads`` that raises :class:`DuplicateKeyError`."""
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise DuplicateKeyError(key)
        seen[key] = value
    return seen


def _check_names(names: list[Any], path: Path, gate: str, where: Any) -> None:
    """Every column has a name, and a name only once (pandas would rename or drop silently)."""
    seen: set[str] = set()
    for position, name in enumerate(names, start=1):
        name = str(name)
        if not name.strip():
            reject(gate, where, path, None, None, f"column {position} has no name in the header")
        if name in seen:
            reject(gate, where, path, None, name, "column name appears twice in the header")
        seen.add(name)


def _check_csv_layout(text: str, path: Path, gate: str, where: Any) -> None:
    """Header names, and no data row with more fields than the header (pandas would take the
    first field as an index, or drop the extra ones)."""
    try:
        records = csv.reader(io.StringIO(text, newline=""))
        header = next((r for r in records if r and "".join(r).strip()), [])
        _check_names(header, path, gate, where)
        row = 0
        for record in records:
            if not record or not "".join(record).strip():
                continue  # pandas skips blank lines: keep its row numbers
            row += 1
            if len(record) > len(header):
                reason = f"{len(record)} fields but the header has {len(header)}"
                reject(gate, where, path, row, None, reason, check="field_count")
    except csv.Error as exc:
        reject(gate, where, path, None, None, f"not a readable CSV file: {exc}")


def read_folder(path: Path, data: Any, gate: str, where: Any) -> tuple[pd.DataFrame, list[Failure]]:
    """A folder of .txt files (column ``data.text_column``) or images (``data.image_column``).

    Files are taken in sorted order; row N is the N-th file. Ids are hashes of the file bytes.
    """
    files = sorted(
        p
        for p in path.rglob("*")
        if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(path).parts)
        and p.suffix.lower() in TEXT_SUFFIXES | IMAGE_SUFFIXES
    )
    if not files:
        reject(
            gate, where, path, None, None, "no .txt or image files in the folder", check="not_empty"
        )
    rows, failures = [], []
    for number, file in enumerate(files, start=1):
        raw = file.read_bytes()
        row: dict[str, Any] = {
            "source_path": str(file.relative_to(path)),
            HASH_KEY: content_id(raw),
        }
        if file.suffix.lower() in TEXT_SUFFIXES:
            try:
                row[data.text_column] = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                reason = f"{row['source_path']}: not UTF-8 text (byte offset {exc.start})"
                reject(gate, where, path, number, data.text_column, reason, check="utf8")
            if not row[data.text_column].strip():
                failures.append(Failure(number, data.text_column, "not_empty", "empty text file"))
        else:
            row[data.image_column] = str(file.resolve())
            reason = _image_problem(file)
            if reason:
                failures.append(Failure(number, data.image_column, "readable_image", reason))
        rows.append(row)
    return _numbered(pd.DataFrame(rows)), failures


def _image_problem(path: Path) -> str | None:
    try:
        from PIL import Image
    except ImportError:  # pillow comes with matplotlib; without it images are not checked
        return None
    try:
        with Image.open(path) as image:
            image.verify()
    except Exception as exc:
        return f"not a readable image: {exc}"
    return None


# --- ingest ---------------------------------------------------------------------------------------


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
    pool = store.read_pool(where)
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
    stored = store.read_holdout(where) if holdout else pool
    skip = (HASH_KEY, "source_path", *([data.label_column] if holdout else []))
    extra += value_failures(df, stored, skip=skip)

    if data.id_column:
        ids = df[data.id_column].map(lambda v: None if pd.isna(v) else _id_text(v))
        df = df.drop(columns=[data.id_column])
        content_cols = [c for c in df.columns if c != HASH_KEY]
    else:
        # an item's id is its content, never its label (holdout rows must match pool rows)
        skip = (HASH_KEY, "source_path", data.label_column)
        content_cols = [c for c in df.columns if c not in skip]
        ids = df[HASH_KEY] if HASH_KEY in df.columns else row_hashes(df, content_cols)
    df = df.drop(columns=[c for c in (HASH_KEY,) if c in df.columns])
    df.insert(0, "id", ids.astype(object))
    if holdout:
        df = df.rename(columns={data.label_column: "label"})
        df["label"] = df["label"].map(lambda v: None if pd.isna(v) else _id_text(v))

    compare = [c for c in df.columns if c not in ("id", "source_path")]
    hashes = row_hashes(df, compare)
    exact = pd.DataFrame({"id": df["id"], "h": hashes}).duplicated()
    duplicates_in_file = int(exact.sum())
    df = df[~exact]

    own = store.read_holdout(where) if holdout else pool
    other = pool if holdout else store.read_holdout(where)
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
    new = df[~already]

    checks = ingest_checks(new, data, holdout=holdout)
    result = run_checks(new, gate, checks) if len(new) else GateResult()
    result.failures = extra + result.failures
    if data.id_column:  # report the input's own column name
        for failure in result.failures:
            failure.column = data.id_column if failure.column == "id" else failure.column
    summary = conclude(gate, where, path, result, df=df, round_=round_, rows=len(df))

    batch = store.next_ingest_batch(where)
    stamp = pd.Timestamp(now or datetime.now(UTC))
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    stamp = stamp.as_unit("us")
    new = new.reset_index(drop=True)
    new["ingest_batch"] = batch
    new["first_seen"] = pd.Series([stamp] * len(new), dtype="datetime64[us, UTC]")
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
