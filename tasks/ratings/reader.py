"""Read ``user, item, rating`` files (CSV, Parquet, JSONL) into arrays, with errors that name the
file, the 1-based data row (the CSV header not counted) and the column.

User and item ids are read as text (``7`` in a CSV and ``7`` in a JSONL file are the same id);
ratings are numbers on a scale: ``--scale MIN,MAX``, by default the catalog file's own min..max.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = ("user", "item", "rating")


class RatingsError(ValueError):
    """A ratings file (or option) that cannot be used: the message names the file, row and
    column."""


@dataclass(frozen=True)
class Scale:
    """The rating scale, both ends included."""

    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.low:g}..{self.high:g}"


@dataclass(frozen=True)
class Ratings:
    """The rows of one ratings file: ids as text, ratings as floats, 1-based data row numbers."""

    file: Path
    users: np.ndarray
    items: np.ndarray
    values: np.ndarray
    rows: np.ndarray

    def __len__(self) -> int:
        return int(self.values.shape[0])

    def of_user(self, user: str) -> Ratings:
        """The rows of one user."""
        keep = self.users == user
        return Ratings(
            self.file, self.users[keep], self.items[keep], self.values[keep], self.rows[keep]
        )

    def without_user(self, user: str) -> Ratings:
        """All rows but those of ``user``."""
        keep = self.users != user
        return Ratings(
            self.file, self.users[keep], self.items[keep], self.values[keep], self.rows[keep]
        )

    @property
    def scale(self) -> Scale:
        """The file's own min..max."""
        return Scale(float(self.values.min()), float(self.values.max()))


def parse_scale(text: str | None) -> Scale | None:
    """``"1,5"`` -> ``Scale(1, 5)``; None stays None (the catalog's own range)."""
    if text is None or not text.strip():
        return None
    parts = [p.strip() for p in text.split(",")]
    try:
        low, high = (float(p) for p in parts)
    except ValueError:
        raise RatingsError(f"--scale {text!r}: expected MIN,MAX, e.g. 1,5") from None
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise RatingsError(f"--scale {text!r}: MIN must be below MAX, both finite")
    return Scale(low, high)


def read_ratings(
    path: Path | str,
    *,
    scale: Scale | None = None,
    catalog: Ratings | None = None,
    allow_empty: bool = False,
) -> Ratings:
    """Read and check one ratings file.

    Checks, in order: the columns ``user``, ``item``, ``rating``; no empty user, item or rating;
    numeric, finite ratings within ``scale`` (when given); no (user, item) pair twice; every item
    known to ``catalog`` (when given). ``allow_empty``: a file with no rows (a header only, or
    nothing at all) is a user with no ratings yet, not an error.
    """
    path = Path(path)
    frame = _read_frame(path)
    if frame is None or (len(frame) == 0 and not len(frame.columns)):  # no bytes, or blank lines
        if allow_empty:
            return _empty(path)
        raise RatingsError(f"{path}: the file is empty; expected the columns user,item,rating")
    for column in COLUMNS:
        if column not in frame.columns:
            found = ", ".join(map(str, list(frame.columns)[:8])) or "none"
            raise RatingsError(
                f"{path}, header, column {column!r}: missing column (found: {found}); "
                "a ratings file has the columns user,item,rating"
            )
    if len(frame) == 0:
        if allow_empty:
            return _empty(path)
        raise RatingsError(f"{path}: no rating rows (a header only); the catalog needs ratings")
    rows = np.arange(1, len(frame) + 1)
    users = _ids(frame["user"], path, "user")
    items = _ids(frame["item"], path, "item")
    values = _ratings(frame["rating"], path)
    if scale is not None:
        outside = (values < scale.low) | (values > scale.high)
        if outside.any():
            i = int(np.flatnonzero(outside)[0])
            raise RatingsError(
                f"{path}, row {rows[i]}, column 'rating': {values[i]:g} is outside the scale "
                f"{scale} (set it with --scale MIN,MAX)"
            )
    pairs = pd.DataFrame({"user": users, "item": items})
    duplicate = pairs.duplicated(keep="first").to_numpy()
    if duplicate.any():
        i = int(np.flatnonzero(duplicate)[0])
        first = int(np.flatnonzero((users == users[i]) & (items == items[i]))[0])
        raise RatingsError(
            f"{path}, row {rows[i]}, columns 'user','item': user {users[i]!r} rated item "
            f"{items[i]!r} already in row {rows[first]} (one rating per pair)"
        )
    if catalog is not None:
        unknown = ~np.isin(items, catalog.items)
        if unknown.any():
            i = int(np.flatnonzero(unknown)[0])
            raise RatingsError(
                f"{path}, row {rows[i]}, column 'item': item {items[i]!r} is not in the catalog "
                f"{catalog.file} (no one rated it there)"
            )
    return Ratings(path, users, items, values, rows)


def user_rows(ratings: Ratings, user: str | None) -> tuple[str | None, Ratings]:
    """The one user of a user-ratings file: ``user`` when given (it must have rows, unless the
    file has none: a brand-new user), else the file's only user."""
    present = list(dict.fromkeys(ratings.users.tolist()))
    shown = ", ".join(repr(u) for u in present[:5]) + (" ..." if len(present) > 5 else "")
    if user is not None:
        if len(ratings) and user not in present:
            raise RatingsError(
                f"{ratings.file}, column 'user': no rows of user {user!r} (users in the file: "
                f"{shown})"
            )
        return user, ratings.of_user(user)
    if len(present) > 1:
        raise RatingsError(
            f"{ratings.file}, column 'user': ratings of {len(present)} users ({shown}); "
            "choose one with --user"
        )
    return (present[0] if present else None), ratings


def file_format(path: Path) -> str:
    """``parquet``, ``csv`` or ``jsonl`` by the file's suffix."""
    from tasks.data.readers import chunked_format

    kind = chunked_format(path)
    if kind is None:
        raise RatingsError(
            f"{path}: unknown format {path.suffix.lower()!r} (use .csv, .parquet or .jsonl)"
        )
    return kind


def _read_frame(path: Path) -> pd.DataFrame | None:
    """The file as text-typed columns (ratings parsed later, so a bad cell can be named); None
    for a file with no bytes."""
    kind = file_format(path)
    if not path.exists():
        raise RatingsError(f"{path}: no such file")
    if path.stat().st_size == 0:
        return None
    try:
        if kind == "parquet":
            return pd.read_parquet(path)
        if kind == "csv":
            sep = "\t" if path.suffix.lower() == ".tsv" else ","
            return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=True)
        return pd.read_json(path, lines=True, dtype=False)
    except (ValueError, OSError, pd.errors.ParserError) as exc:  # ArrowInvalid is a ValueError
        raise RatingsError(f"{path}: not a readable {kind} file ({exc})") from None


def _empty(path: Path) -> Ratings:
    text = np.empty(0, dtype=object)
    return Ratings(path, text, text.copy(), np.empty(0), np.empty(0, dtype=np.int64))


def _ids(column: pd.Series, path: Path, name: str) -> np.ndarray:
    """Ids as text: integral floats (a Parquet int column with a gap) without ``.0``; an empty,
    blank or NaN cell is an error naming its row."""
    values = column.to_numpy(dtype=object)
    out = np.empty(values.shape[0], dtype=object)
    for i, value in enumerate(values):  # ids are text: one pass, no vectorised form for str()
        if value is None or (isinstance(value, float) and math.isnan(value)):
            text = ""
        elif isinstance(value, float) and value.is_integer():
            text = str(int(value))
        else:
            text = str(value).strip()
        if not text or text.lower() == "nan":
            raise RatingsError(f"{path}, row {i + 1}, column {name!r}: empty {name} id")
        out[i] = text
    return out


def _ratings(column: pd.Series, path: Path) -> np.ndarray:
    """Ratings as floats; an empty or NaN cell, or text that is not a finite number, is an
    error naming its row."""
    raw = column.to_numpy(dtype=object)
    missing = pd.isna(column).to_numpy() | np.array(
        [isinstance(v, str) and (not v.strip() or v.strip().lower() == "nan") for v in raw], bool
    )
    if missing.any():
        i = int(np.flatnonzero(missing)[0])
        raise RatingsError(f"{path}, row {i + 1}, column 'rating': empty rating")
    if column.dtype == bool or any(isinstance(v, bool) for v in raw):
        i = next(i for i, v in enumerate(raw) if isinstance(v, bool))
        raise RatingsError(f"{path}, row {i + 1}, column 'rating': {raw[i]!r} is not a number")
    numbers = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(numbers)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise RatingsError(
            f"{path}, row {i + 1}, column 'rating': {raw[i]!r} is not a finite number"
        )
    return numbers
