"""Rank a batch from a file of the user's own model predictions (``labelwise select``).

The file (Parquet, CSV or JSONL) is read in chunks, each chunk validated and scored, and only a
running top-k of items is kept, so memory is O(chunk + batch). Rows of one item (its committee
members or its boxes) must be contiguous; a group cut by a chunk boundary is carried over.
Row numbers in errors are 1-based data rows (the CSV header and Parquet metadata not counted).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from strategies.external import (
    AGGREGATES,
    DIVERSITY,
    MEMBER_SCORES,
    ROW_SCORES,
    box_scores,
    diverse_picks,
    member_scores,
    row_scores,
)
from strategies.selection import RunningTopK

DEFAULT_CHUNK_ROWS = 65_536
SUM_TOLERANCE = 1e-3
BOX_COLUMNS = ("x", "y", "w", "h")
STRATEGIES = (*ROW_SCORES, *MEMBER_SCORES, "random", *DIVERSITY)
OUTPUT_COLUMNS = ["id", "rank", "score", "source"]


class PredictionsError(ValueError):
    """A predictions file that cannot be ranked: the message names the file, row and column."""


@dataclass(frozen=True)
class Shape:
    """What the columns say the file holds: one row per item, per member, or per box."""

    kind: str  # "item" | "member" | "box"
    prob_columns: tuple[str, ...]
    embedding_columns: tuple[str, ...]
    box_columns: tuple[str, ...]

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names, the ``p_`` columns without their prefix."""
        return tuple(c[2:] for c in self.prob_columns)

    @property
    def columns(self) -> list[str]:
        """Every column the ranking reads."""
        extra = {"item": [], "member": ["member"], "box": ["box_id"]}[self.kind]
        return ["id", *extra, *self.prob_columns, *self.embedding_columns, *self.box_columns]


@dataclass(frozen=True)
class Rows:
    """Validated rows of a chunk as arrays: ids, 1-based row numbers, probabilities (n, K) and
    embeddings (n, d; d may be 0)."""

    ids: np.ndarray
    rows: np.ndarray
    probas: np.ndarray
    emb: np.ndarray

    def __len__(self) -> int:
        return self.ids.shape[0]

    def slice(self, start: int, stop: int | None = None) -> Rows:
        """Rows ``start:stop``."""
        part = slice(start, stop)
        return Rows(self.ids[part], self.rows[part], self.probas[part], self.emb[part])

    def then(self, other: Rows) -> Rows:
        """These rows followed by ``other`` (a carried-over group and the next chunk)."""
        return Rows(
            np.concatenate([self.ids, other.ids]),
            np.concatenate([self.rows, other.rows]),
            np.concatenate([self.probas, other.probas]),
            np.concatenate([self.emb, other.emb]),
        )


@dataclass(frozen=True)
class SelectOptions:
    """How to rank: the strategy, batch size and the options of the box and diversity shapes."""

    batch_size: int
    strategy: str = "margin"
    aggregate: str = "max"
    rare_classes: tuple[str, ...] = ()
    prefilter: int = 10
    seed: int = 0
    chunk_rows: int = DEFAULT_CHUNK_ROWS


def detect_shape(columns: list[str], file: Path) -> Shape:
    """The file's shape from its column names (``id``, ``member``, ``box_id``, ``p_*``, ``emb_*``)."""
    if "id" not in columns:
        raise PredictionsError(f"{file}, row 1, column 'id': no id column (found {columns[:8]})")
    probs = tuple(c for c in columns if c.startswith("p_"))
    if not probs:
        raise PredictionsError(
            f"{file}, row 1, column 'p_<class>': no probability columns (found {columns[:8]})"
        )
    embs = tuple(sorted((c for c in columns if _is_embedding(c)), key=lambda c: int(c[4:])))
    if "member" in columns and "box_id" in columns:
        raise PredictionsError(
            f"{file}, row 1, column 'member': a file has either members or boxes, not both"
        )
    kind = "member" if "member" in columns else "box" if "box_id" in columns else "item"
    boxes = tuple(c for c in BOX_COLUMNS if c in columns) if kind == "box" else ()
    return Shape(kind, probs, embs, boxes)


def _is_embedding(column: str) -> bool:
    return column.startswith("emb_") and column[4:].isdigit()


def read_columns(path: Path) -> list[str]:
    """Column names of a predictions file without reading its rows (JSONL: its first line)."""
    kind = file_format(path)
    if kind == "parquet":
        import pyarrow.parquet as pq

        return list(pq.ParquetFile(path).schema_arrow.names)
    if kind == "csv":
        return list(pd.read_csv(path, nrows=0).columns)
    return list(pd.read_json(path, lines=True, nrows=1).columns)


def file_format(path: Path) -> str:
    """``parquet``, ``csv`` or ``jsonl`` by the file's suffix."""
    from tasks.data.readers import chunked_format

    kind = chunked_format(path)
    if kind is None:
        raise PredictionsError(
            f"{path}: unknown format {path.suffix.lower()!r} (use .parquet, .csv or .jsonl)"
        )
    return kind


def read_chunks(path: Path, columns: list[str], chunk_rows: int) -> Iterator[pd.DataFrame]:
    """The file's rows in chunks of at most ``chunk_rows``, with only ``columns``: Parquet by
    record batches, CSV and JSONL by pandas' chunked readers (never the whole file at once)."""
    kind = file_format(path)
    if kind == "parquet":
        import pyarrow.parquet as pq

        # pre_buffer=False: with it on, pyarrow keeps every row group's bytes read so far
        # (the whole file by the end), which breaks the O(chunk + batch) memory bound
        reader = pq.ParquetFile(path, pre_buffer=False)
        for batch in reader.iter_batches(batch_size=chunk_rows, columns=columns):
            yield batch.to_pandas()
    elif kind == "csv":
        sep = "\t" if path.suffix.lower() == ".tsv" else ","
        yield from pd.read_csv(
            path, sep=sep, usecols=columns, chunksize=chunk_rows, dtype={"id": str}
        )
    else:
        for chunk in pd.read_json(path, lines=True, chunksize=chunk_rows):
            yield chunk.reindex(columns=columns)


def validate_chunk(df: pd.DataFrame, shape: Shape, file: Path, first_row: int) -> Rows:
    """Check a chunk and return its rows as arrays: an id on every row, numeric values without
    NaN, probabilities in [0, 1] summing to 1 within ``SUM_TOLERANCE``."""
    for col in [c for c in shape.columns if c in ("id", "member", "box_id")]:
        missing = df[col].isna().to_numpy()
        if missing.any():
            what = "a box row without an image id" if col == "id" and shape.kind == "box" else ""
            _fail(
                file, first_row, missing, col, f"missing value{' (' + what + ')' if what else ''}"
            )
    probas = _numeric(df, shape.prob_columns, file, first_row)
    bad = (probas < 0) | (probas > 1)
    if bad.any():
        row, j = np.argwhere(bad)[0]
        raise PredictionsError(
            f"{file}, row {first_row + row}, column {shape.prob_columns[j]!r}: probability "
            f"{probas[row, j]:g} is outside [0, 1]"
        )
    sums = probas.sum(axis=1)
    off = np.abs(sums - 1.0) > SUM_TOLERANCE
    if off.any():
        row = int(np.flatnonzero(off)[0])
        raise PredictionsError(
            f"{file}, row {first_row + row}, column {shape.prob_columns[0]!r}.."
            f"{shape.prob_columns[-1]!r}: probabilities sum to {sums[row]:.6g}, "
            f"not 1 (tolerance {SUM_TOLERANCE:g})"
        )
    emb = _numeric(df, shape.embedding_columns, file, first_row)
    boxes = _numeric(df, shape.box_columns, file, first_row)
    sizes = [j for j, c in enumerate(shape.box_columns) if c in ("w", "h")]
    if sizes and (boxes[:, sizes] < 0).any():
        row, j = np.argwhere(boxes[:, sizes] < 0)[0]
        raise PredictionsError(
            f"{file}, row {first_row + row}, column {shape.box_columns[sizes[j]]!r}: "
            f"negative box size {boxes[row, sizes[j]]:g}"
        )
    rows = np.arange(first_row, first_row + len(df))
    return Rows(df["id"].to_numpy(), rows, probas, emb)


def _numeric(df: pd.DataFrame, columns: tuple[str, ...], file: Path, first_row: int) -> np.ndarray:
    """``columns`` as a float matrix; a value that is not a number, or NaN, is an error."""
    if not columns:
        return np.empty((len(df), 0))
    for col in columns:
        if not pd.api.types.is_numeric_dtype(df[col]) and not pd.api.types.is_bool_dtype(df[col]):
            coerced = pd.to_numeric(df[col], errors="coerce")
            bad = (coerced.isna() & df[col].notna()).to_numpy()
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise PredictionsError(
                    f"{file}, row {first_row + row}, column {col!r}: "
                    f"{df[col].iloc[row]!r} is not a number"
                )
    values = df[list(columns)].to_numpy(dtype=np.float64, na_value=np.nan)
    nan = np.isnan(values)
    if nan.any():
        row, j = np.argwhere(nan)[0]
        raise PredictionsError(f"{file}, row {first_row + row}, column {columns[j]!r}: NaN value")
    return values


def _fail(file: Path, first_row: int, mask: np.ndarray, col: str, why: str) -> None:
    row = int(np.flatnonzero(mask)[0])
    raise PredictionsError(f"{file}, row {first_row + row}, column {col!r}: {why}")


def check_in_pool(chunk: Rows, pool: tuple[Path, set[str]], file: Path) -> None:
    """Every id of ``chunk`` is one of the pool's (ids compared as text)."""
    pool_file, ids = pool
    outside = ~pd.Index(pd.Series(chunk.ids).astype(str)).isin(ids)
    if outside.any():
        k = int(np.flatnonzero(outside)[0])
        raise PredictionsError(
            f"{file}, row {int(chunk.rows[k])}, column 'id': id {str(chunk.ids[k])!r} is not in "
            f"the pool ({pool_file}, {len(ids)} ids)"
        )


def load_exclude(path: Path) -> set[str]:
    """Ids from a file (labeled ids to skip, or the pool's): a text file (one id per line) or a
    CSV/Parquet with an ``id`` column. Ids are compared as strings, so ``7`` in a text file
    matches an integer id 7."""
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq", ".csv"):
        df = pd.read_parquet(path) if suffix != ".csv" else pd.read_csv(path, dtype={"id": str})
        if "id" not in df.columns:
            raise PredictionsError(f"{path}, row 1, column 'id': the exclude file has no id column")
        return set(df["id"].dropna().astype(str))
    lines = path.read_text().splitlines()
    return {line.strip() for line in lines if line.strip()}


def check_options(shape: Shape, options: SelectOptions, file: Path) -> None:
    """The strategy and options must fit the file's shape (e.g. BALD needs members)."""
    s = options.strategy
    if s not in STRATEGIES:
        raise PredictionsError(f"unknown strategy {s!r}: one of {', '.join(STRATEGIES)}")
    if s in MEMBER_SCORES and shape.kind != "member":
        raise PredictionsError(
            f"{file}, row 1, column 'member': {s} needs one row per item and committee member "
            "(or MC-dropout pass), with a member column"
        )
    if s in DIVERSITY and not shape.embedding_columns:
        raise PredictionsError(
            f"{file}, row 1, column 'emb_0': {s} needs embedding columns emb_0..emb_k"
        )
    if options.aggregate not in AGGREGATES:
        raise PredictionsError(f"--aggregate must be one of {', '.join(AGGREGATES)}")
    if options.rare_classes and shape.kind != "box":
        raise PredictionsError(f"{file}, row 1, column 'box_id': rare classes count boxes")
    unknown = [c for c in options.rare_classes if c not in shape.classes]
    if unknown:
        raise PredictionsError(
            f"{file}, row 1, column 'p_{unknown[0]}': rare class {unknown[0]!r} has no "
            f"probability column (classes: {', '.join(shape.classes)})"
        )
    if options.batch_size < 1 or options.prefilter < 1 or options.chunk_rows < 1:
        raise PredictionsError("batch size, prefilter and chunk rows must be >= 1")


def group_starts(ids: np.ndarray) -> np.ndarray:
    """Start index of each run of equal consecutive ids."""
    if ids.shape[0] == 0:
        return np.empty(0, dtype=np.int64)
    return np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])


def select_batch(
    path: Path,
    options: SelectOptions,
    exclude: set[str] | None = None,
    pool: tuple[Path, set[str]] | None = None,
) -> pd.DataFrame:
    """The ranked batch (``id, rank, score, source``) from a predictions file, in one pass;
    ``pool`` (its file, its ids): every id of the predictions must be one of them."""
    path = Path(path)
    if not path.exists():
        raise PredictionsError(f"{path}: no such file")
    shape = detect_shape(read_columns(path), path)
    check_options(shape, options, path)
    ranker = Ranker(path, shape, options, exclude or set())
    carry: Rows | None = None
    next_row = 1
    for df in read_chunks(path, shape.columns, options.chunk_rows):
        chunk = validate_chunk(df, shape, path, next_row)
        if pool is not None:
            check_in_pool(chunk, pool, path)
        next_row += len(chunk)
        if shape.kind == "item":
            ranker.push(chunk)
            continue
        if carry is not None:
            chunk = carry.then(chunk)
        last = int(group_starts(chunk.ids)[-1]) if len(chunk) else 0
        ranker.push(chunk.slice(0, last))
        carry = chunk.slice(last)
    if carry is not None and len(carry):
        ranker.push(carry)
    if next_row == 1:
        raise PredictionsError(f"{path}, row 1, column 'id': the file has no rows")
    return ranker.batch()


class Ranker:
    """Scores complete items chunk by chunk and keeps the best ``batch`` (or, for diversity,
    ``prefilter x batch``) with their ids, first rows and embeddings."""

    def __init__(self, file: Path, shape: Shape, options: SelectOptions, exclude: set[str]):
        self.file, self.shape, self.options, self.exclude = file, shape, options, exclude
        diverse = options.strategy in DIVERSITY
        k = options.batch_size * (options.prefilter if diverse else 1)
        self.top = RunningTopK(k, keep_rows=True)
        self.rng = np.random.default_rng(options.seed)
        self.n_items = 0
        self.rare = np.isin(np.asarray(shape.classes), options.rare_classes)

    def push(self, chunk: Rows) -> None:
        """Offer a chunk of complete items (every row of each of its items)."""
        if len(chunk) == 0:
            return
        item = self.shape.kind == "item"
        starts = np.arange(len(chunk)) if item else group_starts(chunk.ids)
        item_ids = chunk.ids if item else chunk.ids[starts]
        first_rows = chunk.rows if item else chunk.rows[starts]
        self._check_grouped(item_ids, first_rows)
        scores = self.scores(chunk.probas, starts)
        items = pd.DataFrame({"id": item_ids, "_row": first_rows})
        if self.options.strategy in DIVERSITY:
            emb = chunk.emb[starts]
            items = pd.concat(
                [items, pd.DataFrame(emb, columns=self.shape.embedding_columns)], axis=1
            )
        eligible = None
        if self.exclude:
            keep = ~pd.Index(items["id"]).astype(str).isin(self.exclude)
            eligible = np.flatnonzero(keep)
        self.top.push(scores, self.n_items, items, eligible)
        self.n_items += len(starts)
        self._check_top_unique()

    def scores(self, probas: np.ndarray, starts: np.ndarray) -> np.ndarray:
        """One score per item (higher is more informative) under the chosen strategy."""
        s = self.options.strategy
        if s == "random":
            return self.rng.random(starts.shape[0])
        if s in DIVERSITY:  # the prefilter's informativeness: BALD for members, else margin
            s = "bald" if self.shape.kind == "member" else "margin"
        if self.shape.kind == "member":
            return member_scores(probas, starts, s)
        if self.shape.kind == "box":
            rare = self.rare if self.options.rare_classes else None
            return box_scores(probas, starts, s, self.options.aggregate, rare)
        return row_scores(probas, s)

    def _check_grouped(self, item_ids: np.ndarray, rows: np.ndarray) -> None:
        dup = pd.Series(item_ids).duplicated().to_numpy()
        if dup.any():
            self._not_grouped(item_ids[dup][0], int(rows[dup][0]))

    def _check_top_unique(self) -> None:
        rows = self.top.rows
        if rows is None:
            return
        dup = rows["id"].duplicated(keep=False).to_numpy()
        if dup.any():
            later = rows[dup].sort_values("_row").iloc[-1]
            self._not_grouped(later["id"], int(later["_row"]))

    def _not_grouped(self, item_id: Any, row: int) -> None:
        if self.shape.kind == "item":
            why = (
                "appears on more than one row (one row per item; add a member or box_id "
                "column for several rows per item)"
            )
        else:
            why = "appears again after rows of other ids: the file must be grouped by id"
        shown = item_id.item() if isinstance(item_id, np.generic) else item_id
        raise PredictionsError(f"{self.file}, row {row}, column 'id': id {shown!r} {why}")

    def batch(self) -> pd.DataFrame:
        """The ranked batch: by score, or for diversity in k-center / round-robin pick order."""
        top, options = self.top, self.options
        if top.rows is None or top.indices.shape[0] == 0:
            return pd.DataFrame({c: [] for c in OUTPUT_COLUMNS})
        picks = np.arange(min(options.batch_size, top.indices.shape[0]))
        if options.strategy in DIVERSITY:
            emb = top.rows[list(self.shape.embedding_columns)].to_numpy(dtype=np.float64)
            picks = diverse_picks(emb, top.scores, options.batch_size, options.strategy, self.rng)
        return pd.DataFrame(
            {
                "id": top.rows["id"].to_numpy()[picks],
                "rank": np.arange(1, picks.shape[0] + 1),
                "score": top.scores[picks],
                "source": options.strategy,
            }
        )


def write_batch(batch: pd.DataFrame, out: Path) -> None:
    """Write the batch as Parquet (``.parquet``) or CSV (any other suffix)."""
    from tasks.data.export import write_table

    write_table(batch, out)
