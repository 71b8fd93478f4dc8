"""Ingest: CSV, Parquet, JSONL and folders of text or image files -> a new pool (or holdout) batch.

Each row gets a stable ``id`` (from ``data.id_column``, else a sha256 of its content), identical
rows are dropped within the file and against the pool, and the rest is appended as batch
``ingest_batch`` with a UTC ``first_seen`` time, only after the ingest gate has passed.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
            df = pq.read_table(io.BytesIO(raw)).to_pandas()
        except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for damaged files
            reason = f"not a readable Parquet file (truncated or damaged?): {exc}"
            reject(gate, where, path, None, None, reason)
    elif kind == "csv":
        text = _decode(raw, path, gate, where, header=True)
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
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                reject(gate, where, path, number, None, f"not valid JSON: {exc.msg}")
            if not isinstance(record, dict):
                reject(gate, where, path, number, None, "each line must be a JSON object")
            records.append(record)
        df = pd.DataFrame.from_records(records)
    if len(df) == 0:
        reject(gate, where, path, None, None, "no rows (header only)", check="not_empty")
    df.columns = [str(c) for c in df.columns]
    return _numbered(df)


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


def _id_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)
