"""Files backend, for teams with their own annotation tool: batches out, answers in.

``dispatch`` writes ``<dir>/outbox/round-NNNN-P.{csv,jsonl}`` (only ids never sent before, so a
re-dispatch writes nothing). The team drops answer files into ``<dir>/inbox/`` (CSV or JSONL,
any name) with columns ``id``, ``label``, ``annotator`` and optionally ``time``. ``collect``
validates every row and fails with the file, row and column of the first bad one.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.annotation.base import (
    ANNOTATION_COLUMNS,
    AnnotationBackendError,
    Progress,
    check_batch,
    empty_annotations,
)
from tasks.data.ingest import DuplicateKeyError, unique_keys

ANSWER_COLUMNS = ("id", "label", "annotator")
FORMATS = ("csv", "jsonl")


class AnnotationFileError(AnnotationBackendError):
    """A row of an answer file is invalid; carries ``file``, ``row`` (1-based line) and ``column``."""

    def __init__(self, file: Path, row: int | None, column: str | None, message: str):
        at = "".join(
            [f", row {row}" if row is not None else "", f", column {column!r}" if column else ""]
        )
        super().__init__(f"{file}{at}: {message}")
        self.file, self.row, self.column = Path(file), row, column


def _text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8").removeprefix("\ufeff")  # a spreadsheet's byte-order mark
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        message = f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
        raise AnnotationFileError(path, line, None, message) from None


def _read(path: Path) -> tuple[pd.DataFrame, list[int]]:
    """The file's rows as strings, with the line number of each."""
    text = _text(path)
    if path.suffix == ".csv":
        return _read_csv(path, text)
    records, lines = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line, object_pairs_hook=unique_keys)
        except json.JSONDecodeError as exc:
            raise AnnotationFileError(path, number, None, f"not valid JSON: {exc.msg}") from None
        except DuplicateKeyError as exc:
            raise AnnotationFileError(path, number, exc.key, "key appears twice") from None
        if not isinstance(record, dict):
            raise AnnotationFileError(path, number, None, "expected a JSON object")
        for key, value in record.items():  # (outbox files may carry lists: predicted spans)
            if key in (*ANSWER_COLUMNS, "time") and isinstance(value, (list, dict)):
                raise AnnotationFileError(path, number, key, f"expected a single value: {value!r}")
        records.append({k: "" if v is None else str(v) for k, v in record.items()})
        lines.append(number)
    return pd.DataFrame(records), lines


def _read_csv(path: Path, text: str) -> tuple[pd.DataFrame, list[int]]:
    # the csv module, not pandas: no silent renaming of repeated names, no index guessed from a
    # row with one field too many, and the real line of rows with quoted newlines
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            raise AnnotationFileError(path, None, None, "empty file")
        for position, name in enumerate(header, start=1):
            if not name.strip():
                raise AnnotationFileError(path, 1, None, f"column {position} has no name")
            if header.index(name) != position - 1:
                raise AnnotationFileError(path, 1, name, "column name appears twice")
        records, lines = [], []
        start = reader.line_num + 1
        for record in reader:
            line, start = start, reader.line_num + 1
            if not "".join(record).strip():
                continue
            if len(record) > len(header):
                message = f"{len(record)} fields but the header has {len(header)}"
                raise AnnotationFileError(path, line, None, message)
            records.append(
                dict(zip(header, record + [""] * (len(header) - len(record)), strict=True))
            )
            lines.append(line)
    except csv.Error as exc:
        raise AnnotationFileError(
            path, reader.line_num, None, f"not a readable CSV: {exc}"
        ) from None
    return pd.DataFrame(records, columns=header), lines


def _time(value: str) -> pd.Timestamp | None:
    try:
        time = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
        return None
    if time is pd.NaT:
        return None
    time = time.tz_localize("UTC") if time.tzinfo is None else time.tz_convert("UTC")
    return (
        time
        if pd.Timestamp("1678-01-01", tz="UTC") < time < pd.Timestamp("2262-01-01", tz="UTC")
        else None
    )


def _write(df: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if path.suffix == ".csv":
        df.to_csv(tmp, index=False)
    else:
        df.to_json(tmp, orient="records", lines=True, date_format="iso")
    tmp.replace(path)


@dataclass
class FilesBackend:
    """Dispatch to and collect from plain files under ``directory``."""

    directory: Path
    file_format: str = "csv"
    classes: Sequence[str] | None = None
    name: str = "files"

    def __post_init__(self) -> None:
        self.directory = Path(self.directory)
        if self.file_format not in FORMATS:
            raise ValueError(f"file format must be one of {', '.join(FORMATS)}")

    @property
    def outbox(self) -> Path:
        return self.directory / "outbox"

    @property
    def inbox(self) -> Path:
        return self.directory / "inbox"

    def dispatched(self) -> pd.DataFrame:
        """``id`` and ``round`` of everything sent so far."""
        frames = [_read(p)[0] for p in sorted(self.outbox.glob("round-*.*"))]
        frames = [f[["id", "round"]] for f in frames if len(f)]
        if not frames:
            return pd.DataFrame({"id": pd.Series(dtype=str), "round": pd.Series(dtype=int)})
        out = pd.concat(frames, ignore_index=True)
        return out.assign(round=out["round"].astype(int))

    def dispatch(self, batch: pd.DataFrame, round_: int) -> list[str]:
        check_batch(batch)
        sent = set(self.dispatched()["id"])
        new = batch[~batch["id"].astype(str).isin(sent)].assign(round=round_)
        if new.empty:
            return []
        part = len(list(self.outbox.glob(f"round-{round_:04d}-*.*"))) + 1
        _write(new, self.outbox / f"round-{round_:04d}-{part}.{self.file_format}")
        return new["id"].astype(str).tolist()

    def _validate(self, path: Path, sent: dict[str, int]) -> list[dict[str, Any]]:
        df, lines = _read(path)
        for column in ANSWER_COLUMNS:
            if column not in df.columns:
                raise AnnotationFileError(path, None, column, "missing column")
        rows = []
        for line, record in zip(lines, df.to_dict(orient="records"), strict=True):
            for column in ANSWER_COLUMNS:
                if not str(record.get(column, "")).strip():
                    raise AnnotationFileError(path, line, column, "empty value")
            item = str(record["id"]).strip()
            if item not in sent:
                raise AnnotationFileError(path, line, "id", f"id {item!r} was never dispatched")
            label = str(record["label"]).strip()
            if self.classes and label not in self.classes:
                raise AnnotationFileError(
                    path, line, "label", f"{label!r} is not one of {', '.join(self.classes)}"
                )
            time = pd.Timestamp(path.stat().st_mtime, unit="s", tz="UTC")
            if str(record.get("time", "")).strip():
                time = _time(record["time"])
                if time is None:
                    raise AnnotationFileError(
                        path, line, "time", f"{record['time']!r} is not a date-time"
                    )
            rows.append(
                {
                    "id": item,
                    "label": label,
                    "annotator": str(record["annotator"]).strip(),
                    "round": sent[item],
                    "time": time,
                    "source": "human",
                }
            )
        return rows

    def collect(self, round_: int | None = None) -> pd.DataFrame:
        """Every valid answer in the inbox (an annotator's latest answer per id)."""
        sent = dict(zip(*(self.dispatched()[c] for c in ("id", "round")), strict=True))
        rows: list[dict[str, Any]] = []
        for path in sorted(self.inbox.glob("*")):
            if path.suffix in (".csv", ".jsonl") and not path.name.startswith("."):
                rows.extend(self._validate(path, sent))
        if not rows:
            return empty_annotations()
        out = pd.DataFrame(rows, columns=list(ANNOTATION_COLUMNS))
        out = out.drop_duplicates(["id", "annotator"], keep="last")
        if round_ is not None:
            out = out[out["round"] == round_]
        return out.reset_index(drop=True)

    def progress(self, round_: int) -> Progress:
        sent = self.dispatched()
        done = self.collect(round_)
        return Progress(
            dispatched=int((sent["round"] == round_).sum()),
            annotated=done["id"].nunique(),
            annotations=len(done),
        )
