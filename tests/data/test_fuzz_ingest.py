"""Property-based fuzzing of ingest: hostile CSV, JSONL and Parquet files either fail the ingest
gate with a ``ValidationError`` naming the file (and the row and column where there is one) and a
quarantine entry, leaving the pool and labels byte for byte, or land exactly their new rows."""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import random
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import assume, event, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tasks.data import store
from tasks.data.ingest import ingest
from tasks.data.validate import ValidationError
from tests.data.conftest import FUZZ, copy_project, examples, good_rows, snapshot

pytestmark = pytest.mark.data

COLUMNS = ("x1", "x2", "note")


# texts pandas reads as a missing value in a CSV: not a note we can round-trip
NA_TEXTS = {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND"}
NA_TEXTS |= {"1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}
_counter = itertools.count()


@pytest.fixture
def workspace(tmp_path: Path, seeded_template: Path):
    """``new()`` -> (settings, folder): a fresh copy of the seeded project for each example."""

    def new():
        folder = tmp_path / f"example-{next(_counter)}"
        return copy_project(seeded_template, folder), folder

    return new


# --- values ---------------------------------------------------------------------------------------

hostile_text = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8"),
        st.sampled_from([*",\"\n\r\t\x00;\\'", "\u2028", "\ufeff", "é", "😀"]),
    ),
    min_size=1,
    max_size=30,
)
# a note: any text with a letter in it (all-digit notes would read back as numbers)
notes = st.one_of(
    st.builds(lambda t: f"n{t}", hostile_text),
    st.builds(lambda n: "n" + "x" * n, st.integers(1_000, 20_000)),  # very long
).filter(lambda t: t not in NA_TEXTS)
good_x1 = st.floats(0, 100, allow_nan=False)
good_x2 = st.one_of(
    st.floats(-1e300, 1e300, allow_nan=False, allow_infinity=False),
    st.integers(-(2**53), 2**53).map(float),
)
# (value, how a CSV writes it), bad for x1 / x2 / note, each of them rejected by the gate
BAD = {
    "x1": st.sampled_from(
        [None, math.nan, math.inf, -math.inf, -5.0, 1e6, "1e400", "abc", "1,5", " "]
    ),
    "x2": st.sampled_from([None, math.nan, math.inf, -math.inf, "1e400", "abc", "--1", "0x1g"]),
    "note": st.sampled_from([None, math.nan]),
}
BAD_JSONL = {**BAD, "note": st.sampled_from([None, 5, 2.5, [1, 2], {"a": 1}, 10**30])}
# a Parquet column has one type: bad values of the column's own type
BAD_PARQUET = {
    "x1": st.sampled_from([None, math.nan, math.inf, -math.inf, -5.0, 1e6]),
    "x2": st.sampled_from([None, math.nan, math.inf, -math.inf]),
    "note": st.just(None),
}
BAD_BY_FORMAT = {"csv": BAD, "jsonl": BAD_JSONL, "parquet": BAD_PARQUET}


def good_row() -> st.SearchStrategy[dict]:
    return st.fixed_dictionaries({"x1": good_x1, "x2": good_x2, "note": notes})


@st.composite
def table(draw, fmt: str, max_rows: int = 12, max_bad: int = 3):
    """(rows, bad row numbers): good rows (some repeated) with a few cells made bad."""
    rows = draw(st.lists(good_row(), min_size=1, max_size=max_rows))
    rows += [dict(rows[i]) for i in draw(st.lists(st.integers(0, len(rows) - 1), max_size=3))]
    bad_values = BAD_BY_FORMAT[fmt]
    bad = set()
    for _ in range(draw(st.integers(0, max_bad))):
        row = draw(st.integers(0, len(rows) - 1))
        column = draw(st.sampled_from(COLUMNS))
        rows[row] = {**rows[row], column: draw(bad_values[column])}
        bad.add(row + 1)
    return rows, bad


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return repr(value) if isinstance(value, float) else str(value)


def write(rows: list[dict], fmt: str, path: Path, columns=COLUMNS) -> Path:
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[_cell(r.get(c)) for c in columns] for r in rows])
        path.write_text(out.getvalue(), encoding="utf-8")
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps({c: r.get(c) for c in columns}) + "\n" for r in rows))
    else:
        pq.write_table(pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows]), path)
    return path


# --- the property ---------------------------------------------------------------------------------


def ingest_outcome(path: Path, project) -> ValidationError | int:
    """Ingest ``path``; check the invariants of either outcome; the error or the rows added."""
    before = snapshot(project)
    pool_before = store.read_pool(project)
    try:
        result = ingest(path, project)
    except ValidationError as error:  # any other exception fails the test with its traceback
        text = str(error)
        assert error.file == str(path) and text.startswith(str(path)), text
        if error.row is not None:
            assert f"row {error.row}" in text
        if error.column is not None:
            assert f"column {error.column!r}" in text
        assert error.quarantine is not None and error.quarantine.exists()
        quarantined = pd.read_parquet(error.quarantine)
        assert (quarantined["file"] == str(path)).all()
        assert quarantined["reason"].str.len().min() > 0
        first = quarantined.iloc[0]
        assert (None if pd.isna(first["row"]) else first["row"]) == error.row
        assert first["column"] == error.column
        assert snapshot(project) == before, "a rejected ingest changed the pool or the labels"
        return error
    after = store.read_pool(project)
    assert snapshot(project)["labels.parquet"] == before["labels.parquet"]
    assert len(after) == len(pool_before) + result.added
    pd.testing.assert_frame_equal(
        after.iloc[: len(pool_before)][list(pool_before.columns)],
        pool_before,
        check_dtype=False,
    )
    return result.added


def quarantined_rows(error: ValidationError) -> set[int]:
    rows = pd.read_parquet(error.quarantine)["row"].dropna()
    return {int(r) for r in rows}


def _expected_new(rows: list[dict], project) -> int:
    """Distinct good rows not in the pool already (the ids ingest gives, computed independently)."""
    seen = {tuple(r) for r in good_rows()[list(COLUMNS)].itertuples(index=False)}
    return len({(r["x1"], r["x2"], r["note"]) for r in rows} - seen)


# --- tests ----------------------------------------------------------------------------------------


@hsettings(FUZZ, max_examples=examples(25))
@given(fmt=st.sampled_from(["csv", "jsonl", "parquet"]), data=st.data())
def test_hostile_rows_quarantine_exactly_the_bad_rows(workspace, fmt, data):
    rows, bad = data.draw(table(fmt))
    project, folder = workspace()
    outcome = ingest_outcome(write(rows, fmt, folder / f"in.{fmt}"), project)
    event("rejected" if isinstance(outcome, ValidationError) else "accepted")
    if bad:
        assert isinstance(outcome, ValidationError), f"bad rows {sorted(bad)} were accepted"
        # a bad row repeated exactly is one item: its copies are dropped, not quarantined
        assert quarantined_rows(outcome) <= bad and quarantined_rows(outcome)
    else:
        assert outcome == _expected_new(rows, project), outcome


@hsettings(FUZZ, max_examples=examples(30))
@given(
    fmt=st.sampled_from(["csv", "jsonl", "parquet"]),
    payload=st.one_of(
        st.binary(max_size=400),
        st.binary(max_size=40).map(lambda b: b"x1,x2,note\n" + b),
        st.binary(max_size=40).map(lambda b: b'{"x1": 1, "x2": 2, "note": "' + b),
        st.sampled_from([b"", b"\n\n", b" ", b"x1,x2,note\n", b"x1,x2,note", b"{}\n", b"[]\n"]),
    ),
)
def test_random_bytes_are_rejected_or_land_cleanly(workspace, fmt, payload):
    project, folder = workspace()
    path = folder / f"junk.{fmt}"
    path.write_bytes(payload)
    outcome = ingest_outcome(path, project)
    event("rejected" if isinstance(outcome, ValidationError) else "accepted")


@hsettings(FUZZ, max_examples=examples(20))
@given(
    fmt=st.sampled_from(["csv", "jsonl"]),
    rows=st.lists(good_row(), min_size=1, max_size=4),
    encoding=st.sampled_from(["latin-1", "utf-16", "utf-16-le", "cp1252", "utf-32"]),
)
def test_wrong_encodings_are_rejected_naming_the_file(workspace, fmt, rows, encoding):
    project, folder = workspace()
    path = write(rows, fmt, folder / f"enc.{fmt}")
    text = path.read_text(encoding="utf-8")
    raw = text.encode(encoding, errors="replace")
    assume(raw != text.encode("utf-8"))
    path.write_bytes(raw)
    outcome = ingest_outcome(path, project)
    if isinstance(outcome, int):  # only text that is valid UTF-8 by chance may pass
        raw.decode("utf-8")


@hsettings(FUZZ, max_examples=examples(20))
@given(
    fmt=st.sampled_from(["csv", "jsonl", "parquet"]),
    rows=st.lists(good_row(), min_size=1, max_size=4),
    columns=st.one_of(
        st.permutations(["x1", "x2", "note", "extra"]).map(lambda c: c[: 3 + (c[-1] == "x1")]),
        st.lists(
            st.sampled_from(["x1", "x2", "note", "extra", "id", "ingest_batch", "", " "]),
            max_size=6,
        ),
    ),
)
def test_missing_extra_and_repeated_columns(workspace, fmt, rows, columns):
    project, folder = workspace()
    if fmt == "jsonl":
        columns = [c for c in columns if c.strip()] or ["x1"]  # a JSON object has unique keys
        columns = list(dict.fromkeys(columns))
    if fmt == "parquet":
        path = folder / "cols.parquet"
        arrays = [pa.array([str(r.get(c, "v")) for r in rows]) for c in columns]
        pq.write_table(pa.Table.from_arrays(arrays, names=list(columns)), path)
    else:
        rows = [{**r, "extra": "e", "id": "i", "ingest_batch": 3, "": 1, " ": 2} for r in rows]
        path = write(rows, fmt, folder / f"cols.{fmt}", columns=columns)
    outcome = ingest_outcome(path, project)
    event("rejected" if isinstance(outcome, ValidationError) else "accepted")
    required_once = all(columns.count(c) == 1 for c in COLUMNS)
    clean = required_once and len(set(columns)) == len(columns)
    clean = clean and not {"id", "ingest_batch", "", " "} & set(columns)
    assert isinstance(outcome, ValidationError) or clean, columns


@hsettings(FUZZ, max_examples=examples(15))
@given(data=st.data(), cut=st.floats(0.0, 0.999), flips=st.integers(0, 3))
def test_damaged_parquet_is_rejected_or_reads_whole(workspace, data, cut, flips):
    project, folder = workspace()
    rows = data.draw(st.lists(good_row(), min_size=1, max_size=5))
    path = write(rows, "parquet", folder / "d.parquet")
    raw = bytearray(path.read_bytes())
    if flips:
        for position in data.draw(st.lists(st.integers(0, len(raw) - 1), min_size=flips)):
            raw[position] ^= 0xFF
    else:
        raw = raw[: int(len(raw) * cut)]
    path.write_bytes(bytes(raw))
    outcome = ingest_outcome(path, project)
    event("rejected" if isinstance(outcome, ValidationError) else "accepted")


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
@hsettings(FUZZ, max_examples=examples(1))
@given(data=st.data())
def test_at_scale_exactly_the_bad_rows_are_quarantined_and_the_rest_lands(workspace, data, fmt):
    n = 3000
    project, folder = workspace()
    rng = random.Random(data.draw(st.integers(0, 2**32)))
    rows = [
        {
            "x1": rng.uniform(0, 100),
            "x2": rng.uniform(-1e6, 1e6),
            "note": f"item {i} {'é' * (i % 7)}",
        }
        for i in range(n)
    ]
    bad = set(rng.sample(range(1, n + 1), 7))
    for row in sorted(bad):
        column = rng.choice(COLUMNS)
        rows[row - 1][column] = data.draw(BAD_BY_FORMAT[fmt][column])
    path = write(rows, fmt, folder / f"big.{fmt}")
    error = ingest_outcome(path, project)
    assert isinstance(error, ValidationError)
    assert quarantined_rows(error) == bad
    assert error.failures == len(bad)
    # the good rows, without the quarantined ones, then land in full
    good = [r for i, r in enumerate(rows, start=1) if i not in bad]
    assert ingest_outcome(write(good, fmt, folder / f"fixed.{fmt}"), project) == n - len(bad)
    assert len(store.read_pool(project)) == len(good_rows()) + n - len(bad)
