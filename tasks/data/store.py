"""Where the project's data lives under ``settings.project.data_dir``, and safe reads/appends.

Every write goes to a temporary file in the same directory and is moved into place with
``os.replace``, so a crash leaves either the old file or the new one, never half of one. Appends
hold an exclusive lock on ``<data_dir>/.lock`` so two writers cannot lose each other's rows.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

LABEL_SOURCES = ("human", "gold", "simulated")
POOL_META = ("id", "ingest_batch", "first_seen")
LABEL_COLUMNS = ("id", "label", "annotator", "round", "time", "source")
MANIFEST_COLUMNS = (
    "round",
    "rank",
    "id",
    "score",
    "source",
    "strategy",
    "strategy_params",
    "model_version",
)
LABELS_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("label", pa.string()),
        ("annotator", pa.string()),
        ("round", pa.int64()),
        ("time", pa.timestamp("us", tz="UTC")),
        ("source", pa.string()),
    ]
)
MANIFEST_SCHEMA = pa.schema(
    [
        ("round", pa.int64()),
        ("rank", pa.int64()),
        ("id", pa.string()),
        ("score", pa.float64()),
        ("source", pa.string()),
        ("strategy", pa.string()),
        ("strategy_params", pa.string()),
        ("model_version", pa.string()),
    ]
)


class StoreError(RuntimeError):
    """An append would break an invariant of the stored data (e.g. drop existing labels)."""


@dataclass(frozen=True)
class DataPaths:
    """The files of one project's data directory."""

    root: Path

    @property
    def pool(self) -> Path:
        return self.root / "pool.parquet"

    @property
    def labels(self) -> Path:
        return self.root / "labels.parquet"

    @property
    def holdout(self) -> Path:
        return self.root / "holdout.parquet"

    @property
    def manifests(self) -> Path:
        return self.root / "manifests"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def validation(self) -> Path:
        return self.root / "validation"

    def manifest(self, round_: int) -> Path:
        return self.manifests / f"round-{round_:04d}.parquet"

    def validation_summary(self, round_: int) -> Path:
        return self.validation / f"round-{round_}.json"


def data_paths(where: Any) -> DataPaths:
    """``DataPaths`` for a ``Settings`` object, a ``DataPaths`` or a directory path."""
    if isinstance(where, DataPaths):
        return where
    if hasattr(where, "project"):
        return DataPaths(Path(where.project.data_dir))
    return DataPaths(Path(where))


@contextlib.contextmanager
def locked(where: Any) -> Iterator[DataPaths]:
    """Hold an exclusive lock on the data directory (read-modify-write sections)."""
    paths = data_paths(where)
    paths.root.mkdir(parents=True, exist_ok=True)
    with open(paths.root / ".lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield paths
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _atomic_write(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_parquet_atomic(
    df: pd.DataFrame, path: Path | str, schema: pa.Schema | None = None
) -> None:
    """Write ``df`` to ``path`` as Parquet via a temporary file and ``os.replace``."""
    table = pa.Table.from_pandas(df, schema=schema, preserve_index=False)
    _atomic_write(Path(path), lambda tmp: pq.write_table(table, tmp))


def write_json_atomic(data: Any, path: Path | str) -> None:
    """Write ``data`` as indented JSON via a temporary file and ``os.replace``."""
    text = json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"
    _atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def _read(path: Path, schema: pa.Schema | None) -> pd.DataFrame:
    if path.exists():
        return pq.read_table(path).to_pandas()
    if schema is not None:
        return schema.empty_table().to_pandas()
    return pd.DataFrame()


def read_pool(where: Any) -> pd.DataFrame:
    """The pool: ``id``, ``ingest_batch``, ``first_seen`` and the ingested columns."""
    df = _read(data_paths(where).pool, None)
    if df.empty and not len(df.columns):
        return pd.DataFrame(
            {
                "id": pd.Series(dtype="object"),
                "ingest_batch": pd.Series(dtype="int64"),
                "first_seen": pd.Series(dtype="datetime64[us, UTC]"),
            }
        )
    return df


def read_labels(where: Any) -> pd.DataFrame:
    """Every label ever collected (append-only): id, label, annotator, round, time, source.
    Read an annotator's answers through :func:`current_answers` (a later answer supersedes)."""
    return _read(data_paths(where).labels, LABELS_SCHEMA)


def read_holdout(where: Any) -> pd.DataFrame:
    """The holdout set (labeled, never queried): pool-like rows plus ``label``."""
    return _read_holdout(where)


def _read_holdout(where: Any) -> pd.DataFrame:
    path = data_paths(where).holdout
    if path.exists():
        return pq.read_table(path).to_pandas()
    return pd.DataFrame({"id": pd.Series(dtype="object"), "label": pd.Series(dtype="object")})


def _current(log: pd.DataFrame) -> pd.DataFrame:
    """:func:`current_answers` in answer-time order, indexed by position in the log."""
    ordered = log.reset_index(drop=True).sort_values("time", kind="stable")
    return ordered.drop_duplicates(["id", "annotator"], keep="last")


def current_answers(log: pd.DataFrame) -> pd.DataFrame:
    """Each annotator's current answer per item: their latest by answer ``time`` (the time the
    backend reports, e.g. Label Studio's ``updated_at``), ties broken by log order.

    The one rule for a second answer: the log keeps every answer, and an annotator's later
    answer on an item (in the same round or a later one) supersedes their earlier one in every
    use of the log (training labels, aggregation votes, agreement review, annotator statistics,
    the round's quorum). Rows in answer-time order."""
    return _current(log).reset_index(drop=True)


def latest_labels(labels: pd.DataFrame) -> pd.DataFrame:
    """One row per id: the latest of its annotators' :func:`current_answers` (ties broken by
    log order), in log order."""
    if labels.empty:
        return labels
    return _current(labels).drop_duplicates("id", keep="last").sort_index().reset_index(drop=True)


def normalize_labels(new: pd.DataFrame) -> pd.DataFrame:
    """``new`` with exactly the label columns and types (labels are stored as strings)."""
    missing = [c for c in LABEL_COLUMNS if c not in new.columns]
    if missing:
        raise StoreError(f"labels are missing column(s): {', '.join(missing)}")
    out = new.loc[:, list(LABEL_COLUMNS)].copy()
    for column in ("id", "label", "annotator", "source"):
        out[column] = out[column].map(lambda v: v if v is None or pd.isna(v) else str(v))
    out["round"] = out["round"].astype("int64")
    # element by element (the first value's format need not fit the rest), to the log's precision
    out["time"] = pd.to_datetime(out["time"], utc=True, format="mixed").dt.floor("us")
    return out.reset_index(drop=True)


def append_labels(where: Any, new: pd.DataFrame) -> pd.DataFrame:
    """Append ``new`` label rows to ``labels.parquet`` and return the full log.

    Existing rows are never dropped or changed: the written file is checked to start with the old
    rows before it replaces the old one. Validate first (``validate.validate_labels``).
    """
    with locked(where) as paths:
        old = read_labels(paths)
        rows = normalize_labels(new)
        combined = pd.concat([old, rows], ignore_index=True) if len(old) else rows
        table = pa.Table.from_pandas(combined, schema=LABELS_SCHEMA, preserve_index=False)
        if table.num_rows != len(old) + len(rows) or not table.slice(0, len(old)).equals(
            pa.Table.from_pandas(old, schema=LABELS_SCHEMA, preserve_index=False)
        ):
            raise StoreError("appending labels would change existing label rows; nothing written")
        _atomic_write(paths.labels, lambda tmp: pq.write_table(table, tmp))
        return table.to_pandas()


def append_pool(where: Any, new: pd.DataFrame) -> pd.DataFrame:
    """Append ingested rows (with ``id``, ``ingest_batch``, ``first_seen``) to the pool."""
    with locked(where) as paths:
        old = read_pool(paths)
        clash = set(old["id"]) & set(new["id"])
        if clash:
            raise StoreError(f"{len(clash)} id(s) already in the pool, e.g. {sorted(clash)[0]!r}")
        combined = pd.concat([old, new], ignore_index=True) if len(old) else new
        try:
            write_parquet_atomic(combined.reset_index(drop=True), paths.pool)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise StoreError(
                f"{paths.pool}: new rows do not fit the pool's columns: {exc}"
            ) from exc
        return combined


def write_holdout(where: Any, df: pd.DataFrame) -> None:
    """Append rows to the holdout set (ids must be new)."""
    with locked(where) as paths:
        old = _read_holdout(paths)
        combined = pd.concat([old, df], ignore_index=True) if len(old) else df
        write_parquet_atomic(combined.reset_index(drop=True), paths.holdout)


def next_ingest_batch(where: Any) -> int:
    """1 + the largest ``ingest_batch`` in the pool and holdout (1 for an empty project)."""
    batches = [0]
    for df in (read_pool(where), _read_holdout(where)):
        if "ingest_batch" in df.columns and len(df):
            batches.append(int(df["ingest_batch"].max()))
    return max(batches) + 1


def latest_round(where: Any) -> int:
    """The largest round with a manifest or a label (0 before the first round)."""
    paths = data_paths(where)
    rounds = [0]
    if paths.manifests.exists():
        for path in paths.manifests.glob("round-*.parquet"):
            rounds.append(int(path.stem.split("-")[1]))
    labels = read_labels(paths)
    if len(labels):
        rounds.append(int(labels["round"].max()))
    return max(rounds)


def write_manifest(
    where: Any,
    round_: int,
    ids: Any,
    scores: Any,
    *,
    strategy: str,
    strategy_params: dict[str, Any] | None = None,
    model_version: str | None = None,
    source: str = "strategy",
) -> Path:
    """Write ``manifests/round-NNNN.parquet``: the selected ids in rank order with their scores.

    ``source`` says why a row was selected (e.g. "strategy", "random", "rare_class_quota"); pass a
    sequence to give one reason per row. A pick without a per-row score (batch diversity, cold
    start, random) is stored with a null score, never NaN or infinity: the rank orders the batch.
    """
    ids = [str(i) for i in ids]
    scores = [_finite_or_none(s) for s in scores]
    if len(ids) != len(scores):
        raise StoreError(f"manifest: {len(ids)} ids but {len(scores)} scores")
    if len(set(ids)) != len(ids):
        raise StoreError("manifest: the selected ids are not unique")
    sources = [source] * len(ids) if isinstance(source, str) else [str(s) for s in source]
    df = pd.DataFrame(
        {
            "round": round_,
            "rank": range(1, len(ids) + 1),
            "id": ids,
            "score": scores,
            "source": sources,
            "strategy": strategy,
            "strategy_params": json.dumps(strategy_params or {}, sort_keys=True, default=str),
            "model_version": model_version,
        },
        columns=list(MANIFEST_COLUMNS),
    )
    path = data_paths(where).manifest(round_)
    write_parquet_atomic(df, path, schema=MANIFEST_SCHEMA)
    return path


def _finite_or_none(value: Any) -> float | None:
    value = None if value is None else float(value)
    return value if value is not None and math.isfinite(value) else None


def read_manifest(where: Any, round_: int) -> pd.DataFrame:
    """The manifest of ``round_`` (``strategy_params`` left as its JSON string)."""
    return pq.read_table(data_paths(where).manifest(round_)).to_pandas()


def write_validation_summary(where: Any, round_: int, gate: str, summary: dict[str, Any]) -> Path:
    """Record one gate's summary in ``validation/round-N.json`` (a rerun keeps the last)."""
    with locked(where) as paths:
        path = paths.validation_summary(round_)
        data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        data[gate] = summary
        write_json_atomic(data, path)
        return path


def read_validation_summary(where: Any, round_: int) -> dict[str, Any]:
    """All gate summaries recorded for ``round_`` ({} if none)."""
    path = data_paths(where).validation_summary(round_)
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
