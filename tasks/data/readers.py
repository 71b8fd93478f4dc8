"""Readers: CSV, Parquet, JSONL and folders of text or image files as a DataFrame per input.

Every frame is indexed by the 1-based row number in the input, so a failure names the row a
person finds in the file. Inputs that cannot be read fail the gate through ``reject``.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.data.content_ids import content_id
from tasks.data.gates import Failure, reject

TABLE_SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl"}
TABLE_SUFFIXES[".ndjson"] = "jsonl"
TEXT_SUFFIXES = {".txt"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
#: suffixes of the files read in chunks (predictions, ratings): TSV is CSV, JSON is JSON lines
CHUNKED_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".tsv": "csv"}
CHUNKED_FORMATS |= {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
HASH_KEY = "_content_sha256"  # a folder's rows: the id is the hash of the file's bytes


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
    """``df``, a frame built here, indexed by 1-based row number (in place: no copy)."""
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


def chunked_format(path: Path) -> str | None:
    """``parquet``, ``csv`` or ``jsonl`` by the file's suffix (:data:`CHUNKED_FORMATS`); None
    for any other suffix (the caller's error names its file)."""
    return CHUNKED_FORMATS.get(path.suffix.lower())
