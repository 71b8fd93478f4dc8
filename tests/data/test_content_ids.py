"""Content ids computed a column at a time are the per-row sha256 ids projects already hold."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tasks.data import json_rows
from tasks.data.content_ids import content_id, row_hashes, row_payload
from tests.data.conftest import FUZZ, examples, good_rows

pytestmark = pytest.mark.data


def one_by_one(df: pd.DataFrame, columns: list[str]) -> list[str]:
    """The per-row definition: each row's sorted (column, value) pairs as JSON, hashed."""
    cols = sorted(columns)
    rows = df[cols].astype(object).to_numpy().tolist()
    return [content_id(row_payload(list(zip(cols, row, strict=True)))) for row in rows]


def sha(payload: str) -> str:
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def test_an_id_is_the_sha256_of_the_rows_sorted_pairs_as_json():
    df = pd.DataFrame(
        {
            "t": ['é "q"\n', None],
            "n": [3, 4],
            "f": [3.0, math.nan],
            "b": [True, False],
            "g": [1e-05, -math.inf],
        }
    )
    assert row_hashes(df, list(df.columns)).tolist() == [
        sha('[["b", true], ["f", 3.0], ["g", 1e-05], ["n", 3], ["t", "é \\"q\\"\\n"]]'),
        sha('[["b", false], ["f", NaN], ["g", -Infinity], ["n", 4], ["t", null]]'),
    ]


def test_the_ids_of_existing_projects_are_kept():
    # computed by the row-by-row implementation the pools of existing projects were built with
    assert row_hashes(good_rows(3), ["x1", "x2", "note"]).tolist() == [
        "67281484132f42fbf6816334d6a17d63",
        "49c5ca50de4b1684c4a5e097c7edcfed",
        "5cccd94fee41d71df1dd3733b232b683",
    ]


def test_floats_in_every_range_are_written_as_python_writes_them():
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [
            rng.standard_normal(4000) * 10.0 ** rng.integers(-320, 300, 4000),
            rng.integers(0, 2**64, 4000, dtype=np.uint64).view(np.float64),  # any bit pattern
            [0.0, -0.0, 1e-4, 9.999999999999999e-05, 1e16, 2.0**53 + 2, 5e-324, 1.5, 2**63, 1e300],
        ]
    )
    with np.errstate(over="ignore", invalid="ignore"):  # beyond float32: infinities, NaN
        df = pd.DataFrame({"x": x, "x32": x.astype(np.float32)})
    for column in df.columns:
        assert row_hashes(df, [column]).tolist() == one_by_one(df, [column])


def test_rows_past_one_chunk_keep_their_ids(monkeypatch):
    df = good_rows(50)
    expected = one_by_one(df, list(df.columns))
    monkeypatch.setattr(json_rows, "CHUNK_ROWS", 7)
    ids = row_hashes(df.set_axis(range(100, 150)), list(df.columns))
    assert ids.tolist() == expected and ids.index.tolist() == list(range(100, 150))


def test_no_columns_and_no_rows():
    df = good_rows(2)
    assert row_hashes(df, []).tolist() == [sha("[]")] * 2
    assert row_hashes(df.iloc[:0], ["x1"]).tolist() == []


cells = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.lists(st.integers(-3, 3), max_size=2),
    st.dictionaries(st.text(max_size=2), st.floats(allow_nan=False), max_size=2),
)
floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, -0.0, 1e-5])


def column(n: int) -> st.SearchStrategy[pd.Series]:
    """``n`` values of one of the dtypes an input file can give."""

    def of(values: st.SearchStrategy, dtype: str | None = None) -> st.SearchStrategy[pd.Series]:
        return st.lists(values, min_size=n, max_size=n).map(lambda v: pd.Series(v, dtype=dtype))

    return st.one_of(
        of(floats, "float64"),
        of(st.floats(width=32), "float32"),
        of(st.integers(-(2**63), 2**63 - 1)),
        of(st.booleans()),
        of(st.text(), "object"),
        of(cells, "object"),
        of(st.datetimes(), None),
    )


@hsettings(FUZZ, max_examples=examples(200))
@given(
    data=st.data(),
    n=st.integers(1, 9),
    names=st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=4, unique=True),
)
def test_vectorised_ids_equal_the_row_by_row_ids(data, n, names):
    df = pd.DataFrame({name: data.draw(column(n)) for name in names})
    assert row_hashes(df, names).tolist() == one_by_one(df, names)
