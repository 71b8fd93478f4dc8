"""Files backend, for teams with their own annotation tool: batches out, answers in.

``dispatch`` writes ``<dir>/outbox/round-NNNN-P.{csv,jsonl}`` (only ids never sent before, so a
re-dispatch writes nothing). The team drops answer files into ``<dir>/inbox/`` (CSV or JSONL,
any name) with columns ``id``, ``label``, ``annotator`` and optionally ``time``. ``collect``
validates every row and fails with the file, row and column of the first bad one.

Format ``prodigy`` writes each batch as Prodigy tasks (``round-NNNN-P.jsonl``: ``text``,
``meta.id``, ``_input_hash``, ``options`` or ``tokens``, pre-annotated ``accept``/``spans``);
whatever the format, an inbox JSONL of Prodigy answers (``prodigy db-out``) is read as such
(:func:`prodigy_task`, :class:`ProdigyAnswers`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.annotation.base import (
    ANNOTATION_COLUMNS,
    BATCH_COLUMNS,
    PREDICTION_COLUMNS,
    AnnotationBackendError,
    Progress,
    check_batch,
    empty_annotations,
    jsonable,
)
from tasks.annotation.spans import sentence, tags_to_spans, token_offsets
from tasks.data.ingest import DuplicateKeyError, unique_keys

ANSWER_COLUMNS = ("id", "label", "annotator")
FORMATS = ("csv", "jsonl", "prodigy")
#: Prodigy's answers; only ``accept`` (and ``reject`` of a binary label, two classes) is a label
PRODIGY_ANSWERS = ("accept", "reject", "ignore")
#: the annotator of a Prodigy answer with neither ``_annotator_id`` nor ``_session_id``
PRODIGY_ANNOTATOR = "prodigy"
#: batch columns that are labelwise's bookkeeping, not the item shown
RESERVED_COLUMNS = {*BATCH_COLUMNS, *PREDICTION_COLUMNS, "model_version", "gold"}

log = logging.getLogger(__name__)


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


def _json_lines(path: Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of each non-blank line of a JSONL text, read lazily so the first
    bad line is the one reported."""
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
        yield number, record


def _read(path: Path) -> tuple[pd.DataFrame, list[int]]:
    """The file's rows as strings, with the line number of each."""
    text = _text(path)
    if path.suffix == ".csv":
        return _read_csv(path, text)
    records, lines = [], []
    for number, record in _json_lines(path, text):
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


def _in_range(time: pd.Timestamp) -> bool:
    """Whether a UTC time fits the label store's nanosecond timestamps."""
    return pd.Timestamp("1678-01-01", tz="UTC") < time < pd.Timestamp("2262-01-01", tz="UTC")


def _time(value: str) -> pd.Timestamp | None:
    try:
        time = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
        return None
    if time is pd.NaT:
        return None
    time = time.tz_localize("UTC") if time.tzinfo is None else time.tz_convert("UTC")
    return time if _in_range(time) else None


def _unix_time(value: Any) -> pd.Timestamp | None:
    """A time given as unix seconds (Prodigy's ``_timestamp``); None if it is none."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    try:
        time = pd.Timestamp(value, unit="s", tz="UTC")
    except (ValueError, OverflowError):
        return None
    return time if _in_range(time) else None


def _write(df: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    if path.suffix == ".csv":
        df.to_csv(tmp, index=False)
    else:
        df.to_json(tmp, orient="records", lines=True, date_format="iso")
    tmp.replace(path)


def _write_records(records: Sequence[dict[str, Any]], path: Path) -> None:
    """JSON objects one a line, written atomically (a crash leaves no half file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    lines = (json.dumps(r, ensure_ascii=False, allow_nan=False) + "\n" for r in records)
    tmp.write_text("".join(lines), encoding="utf-8")
    tmp.replace(path)


# -- Prodigy tasks out -------------------------------------------------------------------------


def _prodigy_hash(*parts: str) -> int:
    """A signed 32-bit int (the range of Prodigy's own hashes) from the SHA-256 of ``parts``:
    the same item gets the same hash in every round and on every machine."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big", signed=True)


def input_hash(item: str) -> int:
    """The ``_input_hash`` of item ``item``'s task: from its id (two items may share a text)."""
    return _prodigy_hash("labelwise-input", item)


def task_hash(item: str, view: str) -> int:
    """The ``_task_hash`` of the question ``view`` (choice, ner, text) about item ``item``."""
    return _prodigy_hash("labelwise-task", item, view)


def _missing(value: Any) -> bool:
    """Whether a batch cell holds nothing (None or NaN); a list is never missing."""
    return value is None or (isinstance(value, float | np.floating) and math.isnan(value))


def _token_list(value: Any) -> list[str] | None:
    """A sentence's tokens given as a list or as a JSON list (None: the value is no list)."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return None
    if isinstance(value, list | tuple | np.ndarray):
        return [str(t) for t in value]
    return None


def _tokens(value: Any) -> list[str]:
    """A sentence's tokens: a (JSON) list as is, text split on whitespace."""
    tokens = _token_list(value)
    return tokens if tokens is not None else ("" if _missing(value) else str(value)).split()


def prodigy_tokens(tokens: Sequence[str]) -> list[dict[str, Any]]:
    """Prodigy's ``tokens`` of :func:`~tasks.annotation.spans.sentence`: text, character
    start/end, index and whether a space follows."""
    offsets = token_offsets(tokens)
    last = len(tokens) - 1
    return [
        {"text": t, "start": a, "end": b, "id": i, "ws": i < last}
        for i, (t, (a, b)) in enumerate(zip(tokens, offsets, strict=True))
    ]


def _predicted_spans(prediction: Any, tokens: Sequence[str]) -> list[dict[str, Any]]:
    """Prodigy ``spans`` (with inclusive token indices) of a tagger's BIO tags, or of spans
    ``{start, end, label}``, on the sentence of ``tokens``."""
    value = jsonable(prediction)
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else []
    value = list(value)
    if value and all(isinstance(v, str) for v in value):
        if len(value) != len(tokens):
            raise ValueError(f"{len(value)} predicted tags for a sentence of {len(tokens)} tokens")
        value = tags_to_spans(value, tokens)
    offsets = token_offsets(tokens)
    out = []
    for span in value:
        start, end = int(span["start"]), int(span["end"])
        inside = [i for i, (a, b) in enumerate(offsets) if a < end and start < b] or [None]
        out.append(
            {
                "start": start,
                "end": end,
                "label": str(span["label"]),
                "token_start": inside[0],
                "token_end": inside[-1],
            }
        )
    return out


def _row_text(row: dict[str, Any]) -> str:
    """A table row as an annotator reads it: one ``column: value`` line per payload column."""
    return "\n".join(
        f"{k}: {'' if _missing(v) else jsonable(v)}"
        for k, v in row.items()
        if k not in RESERVED_COLUMNS
    )


def prodigy_task(
    row: dict[str, Any], *, view: str, classes: Sequence[str] | None, text_field: str = "text"
) -> dict[str, Any]:
    """A batch row as a Prodigy task: the ``text`` shown, ``meta`` (id, score, round, rank),
    stable hashes, and for ``view`` ``choice`` the ``options``, for ``ner`` the ``tokens``,
    pre-annotated (``accept``, ``spans``) with the model's ``prediction`` when there is one."""
    item, prediction = str(row["id"]), row.get("prediction")
    task: dict[str, Any] = {}
    if view == "ner":
        tokens = _tokens(row.get(text_field))
        task |= {"text": sentence(tokens), "tokens": prodigy_tokens(tokens)}
        if not _missing(prediction):
            task["spans"] = _predicted_spans(prediction, tokens)
    else:
        text = row.get(text_field)
        task["text"] = (
            ("" if _missing(text) else str(text)) if text_field in row else _row_text(row)
        )
        if view == "choice":
            task["options"] = [{"id": c, "text": c} for c in classes or ()]
            if not _missing(prediction) and str(prediction) in (classes or ()):
                task["accept"] = [str(prediction)]
    task["meta"] = {
        "id": item,
        "score": jsonable(row.get("score")),
        "round": int(row["round"]),
        "rank": int(row["rank"]),
    }
    return task | {"_input_hash": input_hash(item), "_task_hash": task_hash(item, view)}


def _prodigy_outbox(path: Path) -> pd.DataFrame | None:
    """``id``, ``round`` and ``task_text`` of an outbox file of Prodigy tasks (None: a file in
    another format)."""
    if path.suffix != ".jsonl":
        return None
    text = _text(path)
    first = next(_json_lines(path, text), (0, {"id": None}))[1]
    if "id" in first or not isinstance(first.get("meta"), dict) or "id" not in first["meta"]:
        return None
    records = [r for _, r in _json_lines(path, text)]
    return pd.DataFrame(
        {
            "id": [str(r["meta"]["id"]) for r in records],
            "round": [int(r["meta"]["round"]) for r in records],
            "task_text": [r.get("text") for r in records],
        }
    )


# -- Prodigy answers in ------------------------------------------------------------------------


def _is_prodigy_answer(record: dict[str, Any], file_format: str) -> bool:
    """Whether an answer file's first record is Prodigy's: an ``answer`` with the task's hashes
    or ``meta`` (with format ``prodigy``: any record without an ``id``)."""
    if "answer" in record and any(k in record for k in ("_input_hash", "_task_hash", "meta")):
        return True
    return file_format == "prodigy" and "id" not in record


def _name(value: Any) -> bool:
    """Whether ``value`` is a usable name or id: non-blank text or a whole number."""
    if isinstance(value, str):
        return bool(value.strip())
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass
class ProdigyAnswers:
    """One inbox file of Prodigy answers as annotation rows; answers that are no label (ignore,
    a reject that names no class, a choice of nothing) are counted in ``skipped``."""

    path: Path
    sent: dict[str, int]
    classes: Sequence[str] | None = None
    #: the text of each item dispatched as a Prodigy task (spans must be offsets into it)
    texts: dict[str, str] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)
    _hashes: dict[int, list[str]] | None = field(default=None, init=False, repr=False)

    def fail(self, line: int, column: str | None, message: str) -> AnnotationFileError:
        return AnnotationFileError(self.path, line, column, message)

    def rows(self, text: str) -> list[dict[str, Any]]:
        """The annotation rows (ANNOTATION_COLUMNS) of the file's ``text``."""
        mtime = pd.Timestamp(self.path.stat().st_mtime, unit="s", tz="UTC")
        rows = (self.row(line, record, mtime) for line, record in _json_lines(self.path, text))
        return [row for row in rows if row is not None]

    def row(self, line: int, record: dict[str, Any], mtime: pd.Timestamp) -> dict[str, Any] | None:
        """One answer as an annotation row, or None when it is no label."""
        item = self.item(line, record)
        answer = record.get("answer")
        if "answer" not in record:
            raise self.fail(line, "answer", "missing: expected accept, reject or ignore")
        if answer not in PRODIGY_ANSWERS:
            raise self.fail(line, "answer", f"{answer!r} is not one of accept, reject, ignore")
        label = None if answer == "ignore" else self.label(line, record, item, answer)
        if label is None:
            self.skipped[answer if answer != "accept" else "no choice"] += 1
            return None
        return {
            "id": item,
            "label": label,
            "annotator": self.annotator(line, record),
            "round": self.sent[item],
            "time": self.time(line, record, mtime),
            "source": "human",
        }

    def item(self, line: int, record: dict[str, Any]) -> str:
        """The item answered: ``meta.id``, else the item whose ``_input_hash`` it carries."""
        meta = record.get("meta", {})
        if not isinstance(meta, dict):
            raise self.fail(line, "meta", f"expected an object, got {meta!r}")
        if meta.get("id") is not None:
            if not _name(meta["id"]):
                raise self.fail(line, "meta.id", f"expected an item id, got {meta['id']!r}")
            item = str(meta["id"]).strip()
            if item not in self.sent:
                raise self.fail(line, "meta.id", f"id {item!r} was never dispatched")
            return item
        value = record.get("_input_hash")
        if value is None:
            raise self.fail(line, "_input_hash", "missing hash: neither meta.id nor _input_hash")
        items = self.hashes().get(value, []) if _name(value) and isinstance(value, int) else []
        if not items:
            message = f"missing hash: {value!r} is the _input_hash of no dispatched item"
            raise self.fail(line, "_input_hash", f"{message} (and there is no meta.id)")
        if len(items) > 1:
            message = f"{value} is the hash of several items ({', '.join(items)}): keep meta.id"
            raise self.fail(line, "_input_hash", message)
        return items[0]

    def hashes(self) -> dict[int, list[str]]:
        """``_input_hash`` -> the dispatched ids with that hash (recomputed from the ids)."""
        if self._hashes is None:
            self._hashes = {}
            for item in self.sent:
                self._hashes.setdefault(input_hash(item), []).append(item)
        return self._hashes

    def label(self, line: int, record: dict[str, Any], item: str, answer: str) -> str | None:
        """The label of an accept or reject, by the task's shape: choice, binary or NER."""
        if "accept" in record or "options" in record:
            return None if answer == "reject" else self.choice(line, record)
        if "label" in record:
            return self.binary(line, record, answer)
        if "spans" in record:
            return None if answer == "reject" else self.spans(line, record, item)
        message = "no answer: expected accept (choice), label (binary) or spans (NER)"
        raise self.fail(line, None, message)

    def choice(self, line: int, record: dict[str, Any]) -> str | None:
        """The one class of ``accept`` (None: nothing chosen)."""
        accept = record.get("accept", [])
        if not isinstance(accept, list):
            raise self.fail(line, "accept", f"expected a list of option ids, got {accept!r}")
        chosen = list(dict.fromkeys(self.option(line, record, option) for option in accept))
        if len(chosen) > 1:
            message = f"{len(chosen)} options chosen ({', '.join(chosen)}): an item has one class"
            raise self.fail(line, "accept", message)
        return chosen[0] if chosen else None

    def option(self, line: int, record: dict[str, Any], option: Any) -> str:
        """The class of an accepted option id: the id itself, or its option's ``text``."""
        if not _name(option):
            raise self.fail(line, "accept", f"expected an option id, got {option!r}")
        if not self.classes or str(option) in self.classes:
            return str(option)
        options = record.get("options")
        texts = [
            str(o.get("text"))
            for o in (options if isinstance(options, list) else [])
            if isinstance(o, dict) and o.get("id") == option
        ]
        if texts and texts[0] in self.classes:
            return texts[0]
        message = f"option {option!r} is not one of {', '.join(self.classes)}"
        raise self.fail(line, "accept", message)

    def binary(self, line: int, record: dict[str, Any], answer: str) -> str | None:
        """A binary answer's class: the label accepted; the other class when it is rejected in
        a two-class project (with more classes a reject names none: None)."""
        label = record["label"]
        if not isinstance(label, str) or not label.strip():
            raise self.fail(line, "label", f"expected a class, got {label!r}")
        label = label.strip()
        if self.classes and label not in self.classes:
            raise self.fail(line, "label", f"{label!r} is not one of {', '.join(self.classes)}")
        if answer == "accept":
            return label
        if self.classes and len(self.classes) == 2:
            return next(c for c in self.classes if c != label)
        return None

    def spans(self, line: int, record: dict[str, Any], item: str) -> str:
        """An NER answer as the JSON list of spans ``{start, end, label}`` the label gate turns
        into one tag per token."""
        if self.classes:
            raise self.fail(line, "spans", "an NER answer in a classification project")
        text, spans = record.get("text"), record["spans"]
        if not isinstance(text, str):
            raise self.fail(line, "text", "missing: spans are character offsets into the text")
        if item in self.texts and text != self.texts[item]:
            message = f"not the text dispatched for {item!r}: spans would not fit its tokens"
            raise self.fail(line, "text", message)
        if not isinstance(spans, list):
            raise self.fail(line, "spans", f"expected a list of spans, got {spans!r}")
        out = [self.span(line, f"spans.{i}", span, len(text)) for i, span in enumerate(spans)]
        return json.dumps(sorted(out, key=lambda s: (s["start"], s["end"])))

    def span(self, line: int, column: str, span: Any, length: int) -> dict[str, Any]:
        """One span, checked to lie inside the ``length``-character text."""
        if not isinstance(span, dict):
            raise self.fail(line, column, f"expected a span {{start, end, label}}, got {span!r}")
        for key in ("start", "end"):
            if not isinstance(span.get(key), int) or isinstance(span.get(key), bool):
                raise self.fail(
                    line, f"{column}.{key}", f"expected an offset, got {span.get(key)!r}"
                )
        if not isinstance(span.get("label"), str) or not span["label"].strip():
            raise self.fail(
                line, f"{column}.label", f"expected an entity type, got {span.get('label')!r}"
            )
        start, end = span["start"], span["end"]
        if not 0 <= start < end <= length:
            key = "start" if not 0 <= start < length else "end"
            message = f"span {start}-{end} is outside the text ({length} characters)"
            raise self.fail(line, f"{column}.{key}", message)
        return {"start": start, "end": end, "label": span["label"].strip()}

    def annotator(self, line: int, record: dict[str, Any]) -> str:
        """Who answered: ``_annotator_id``, else ``_session_id``, else :data:`PRODIGY_ANNOTATOR`."""
        for key in ("_annotator_id", "_session_id"):
            value = record.get(key)
            if value is None or (isinstance(value, str) and not value.strip()):
                continue
            if not _name(value):
                raise self.fail(line, key, f"expected an annotator name, got {value!r}")
            return str(value).strip()
        return PRODIGY_ANNOTATOR

    def time(self, line: int, record: dict[str, Any], mtime: pd.Timestamp) -> pd.Timestamp:
        """When: ``_timestamp`` (unix seconds), else the file's modification time."""
        if record.get("_timestamp") is None:
            return mtime
        time = _unix_time(record["_timestamp"])
        if time is None:
            message = f"{record['_timestamp']!r} is not a time in unix seconds"
            raise self.fail(line, "_timestamp", message)
        return time


@dataclass
class FilesBackend:
    """Dispatch to and collect from plain files under ``directory``."""

    directory: Path
    file_format: str = "csv"
    classes: Sequence[str] | None = None
    name: str = "files"
    #: classification, ner or regression (None: classification when there are classes, ner
    #: when the text column holds token lists); decides the Prodigy task written
    task: str | None = None
    #: batch column holding the text shown (Prodigy tasks)
    text_field: str = "text"
    #: Prodigy answers of the last collect that are no label, by reason (ignore, reject, ...)
    skipped: Counter[str] = field(default_factory=Counter, init=False, repr=False)

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

    def _outbox(self) -> pd.DataFrame:
        """``id``, ``round`` and ``task_text`` (the text of a Prodigy task, else missing) of
        everything sent so far."""
        frames = []
        for path in sorted(self.outbox.glob("round-*.*")):
            tasks = _prodigy_outbox(path)
            frame = _read(path)[0] if tasks is None else tasks
            if len(frame):
                frames.append(frame[["id", "round"]].assign(task_text=frame.get("task_text")))
        if not frames:
            columns = {"id": str, "round": int, "task_text": str}
            return pd.DataFrame({c: pd.Series(dtype=t) for c, t in columns.items()})
        out = pd.concat(frames, ignore_index=True)
        return out.assign(round=out["round"].astype(int))

    def dispatched(self) -> pd.DataFrame:
        """``id`` and ``round`` of everything sent so far."""
        return self._outbox()[["id", "round"]]

    def _view(self, batch: pd.DataFrame) -> str:
        """How a Prodigy task asks: ``ner`` (spans on the sentence), ``choice`` (one of the
        classes) or ``text`` (no answer Prodigy gives: a regression)."""
        task = self.task
        if task is None and not self.classes and self.text_field in batch:
            first = next((v for v in batch[self.text_field] if not _missing(v)), None)
            task = "ner" if _token_list(first) is not None else None
        if task == "ner":
            return "ner"
        return "choice" if self.classes else "text"

    def _tasks(self, batch: pd.DataFrame) -> list[dict[str, Any]]:
        """The batch's rows as Prodigy tasks (all asking the same question)."""
        view = self._view(batch)
        return [
            prodigy_task(row, view=view, classes=self.classes, text_field=self.text_field)
            for row in batch.to_dict("records")
        ]

    def dispatch(self, batch: pd.DataFrame, round_: int) -> list[str]:
        check_batch(batch)
        sent = set(self.dispatched()["id"])
        new = batch[~batch["id"].astype(str).isin(sent)].assign(round=round_)
        if new.empty:
            return []
        part = len(list(self.outbox.glob(f"round-{round_:04d}-*.*"))) + 1
        if self.file_format == "prodigy":
            _write_records(self._tasks(new), self.outbox / f"round-{round_:04d}-{part}.jsonl")
        else:
            _write(new, self.outbox / f"round-{round_:04d}-{part}.{self.file_format}")
        return new["id"].astype(str).tolist()

    def _is_prodigy(self, path: Path, text: str) -> bool:
        """Whether an inbox file holds Prodigy answers (decided by its first record)."""
        if path.suffix != ".jsonl":
            return False
        first = next(_json_lines(path, text), None)
        if first is None:  # an empty export
            return self.file_format == "prodigy"
        return _is_prodigy_answer(first[1], self.file_format)

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
        outbox = self._outbox()
        sent = dict(zip(outbox["id"], outbox["round"], strict=True))
        tasks = outbox.dropna(subset=["task_text"])
        texts = dict(zip(tasks["id"], tasks["task_text"], strict=True))
        rows: list[dict[str, Any]] = []
        self.skipped = Counter()
        for path in sorted(self.inbox.glob("*")):
            if path.suffix not in (".csv", ".jsonl") or path.name.startswith("."):
                continue
            text = _text(path) if path.suffix == ".jsonl" else ""
            if self._is_prodigy(path, text):
                answers = ProdigyAnswers(path, sent, self.classes, texts, self.skipped)
                rows.extend(answers.rows(text))
            else:
                rows.extend(self._validate(path, sent))
        if self.skipped:
            log.info("Prodigy answers that are no label: %s", dict(self.skipped))
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
