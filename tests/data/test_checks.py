"""The gates run GX on the rows that can fail: same report and failures as GX on every row."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tasks.data import store
from tasks.data.checks import _validate, run_checks
from tasks.data.gates import GateResult, _records
from tasks.data.ingest import ingest
from tasks.data.json_rows import plain
from tasks.data.validate import ValidationError, ingest_checks
from tests.data.conftest import FUZZ, examples, snapshot
from tests.data.test_content_ids import column as any_column

pytestmark = pytest.mark.data


def frame(n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    df = pd.DataFrame(
        {
            "id": [f"i{k}" for k in range(n)],
            "x1": rng.uniform(0, 100, n),
            "x2": rng.normal(size=n),
            "note": [f"n{k}" for k in range(n)],
            "label": rng.choice(["cat", "dog"], n),
        }
    )
    df.index = pd.RangeIndex(1, n + 1)
    return df


def gx_on_every_row(df: pd.DataFrame, checks: list) -> GateResult:
    """One GX suite over every row, its results taken in GX's order (the gates before)."""
    result = GateResult()
    for _, entry, failures, _ in _validate(df, "reference", checks):
        result.checks.append(entry)
        result.failures += failures
    return result


def test_a_clean_frame_passes_without_a_gx_run_and_reports_every_check(project):
    df = frame()
    checks = ingest_checks(df, project.data, holdout=True)
    fast = run_checks(df, "ingest", checks)
    assert not fast.failures and all(entry["success"] for entry in fast.checks)
    full = gx_on_every_row(df, ingest_checks(df, project.data, holdout=True))
    assert fast.checks == full.checks


def test_failures_on_the_suspect_rows_are_those_of_gx_on_every_row(project):
    df = frame()
    df.loc[3, "x1"] = np.nan
    df.loc[7, "x1"] = -5.0
    df.loc[9, "x1"] = np.inf
    df.loc[12, "note"] = None
    df.loc[[15, 31], "id"] = "twice"
    df.loc[20, "label"] = "bird"
    df.loc[25, "x2"] = np.nan
    fast = run_checks(df, "ingest", ingest_checks(df, project.data, holdout=True))
    full = gx_on_every_row(df, ingest_checks(df, project.data, holdout=True))
    assert fast.checks == full.checks  # same entries, in GX's order
    assert fast.failures == full.failures
    assert {f.row for f in fast.failures} == {3, 7, 9, 12, 15, 31, 20, 25}


def test_a_range_gx_cannot_check_still_runs_in_gx(project):
    project.data.value_ranges = {"note": [0, 1]}  # text: GX raises, the gate reports it
    df = frame(5)
    fast = run_checks(df, "ingest", ingest_checks(df, project.data))
    full = gx_on_every_row(df, ingest_checks(df, project.data))
    assert fast.checks == full.checks and fast.failures == full.failures
    assert [f.row for f in fast.failures] == [None]


def record(df: pd.DataFrame, row: int) -> str:
    """A quarantine record as the gates wrote it row by row: ``df.loc[row]`` as JSON."""
    values = df.loc[row]
    values = values.iloc[0] if isinstance(values, pd.DataFrame) else values
    return json.dumps({str(k): plain(v) for k, v in values.items()}, default=str)


def test_quarantine_records_are_each_rows_values():
    df = frame(6).assign(n=range(6), when=pd.Timestamp("2026-01-01", tz="UTC"))
    df.loc[2, "x2"] = np.nan
    rows = [2, None, 5, 2, 99]
    assert _records(df, rows) == [record(df, r) if r in df.index else None for r in rows]
    numeric = df[["x1", "n"]]  # one float block: ints are read back as floats, as df.loc gives
    assert _records(numeric, [4]) == [json.dumps({"x1": numeric.loc[4, "x1"], "n": 3.0})]


@hsettings(FUZZ, max_examples=examples(150))
@given(
    data=st.data(),
    n=st.integers(1, 6),
    names=st.lists(
        st.sampled_from(["id", "x1", "é", "7", "a b"]), min_size=1, max_size=4, unique=True
    ),
)
def test_quarantine_records_equal_the_row_by_row_records(data, n, names):
    df = pd.DataFrame({name: data.draw(any_column(n)) for name in names})
    # row labels as a gate's input has them, or repeated (the first row of a label is recorded)
    df.index = pd.Index(data.draw(st.lists(st.integers(1, n + 1), min_size=n, max_size=n)))
    rows = data.draw(st.lists(st.none() | st.integers(0, n + 2), max_size=8))
    assert _records(df, rows) == [record(df, r) if r in df.index else None for r in rows]


def test_a_50k_row_file_with_5_scattered_bad_rows_quarantines_exactly_those(seeded_project):
    n = 50_000
    rng = np.random.default_rng(7)
    df = pd.DataFrame(
        {
            "x1": rng.uniform(0, 100, n),
            "x2": rng.normal(size=n),
            "note": [f"item {k}" for k in range(n)],
        }
    )
    bad = {17: ("x1", np.nan), 9_001: ("x1", -1.0), 23_456: ("x2", np.inf), 41_000: ("note", None)}
    bad[49_999] = ("x1", 1e3)
    for row, (column, value) in bad.items():
        df.loc[row - 1, column] = value
    df.to_parquet("big.parquet", index=False)
    before = snapshot(seeded_project)
    with pytest.raises(ValidationError) as info:
        ingest(Path("big.parquet"), seeded_project)
    quarantined = pd.read_parquet(info.value.quarantine)
    assert sorted(quarantined["row"]) == sorted(bad)
    assert {
        (int(r), c) for r, c in zip(quarantined["row"], quarantined["column"], strict=True)
    } == {(row, column) for row, (column, _) in bad.items()}
    assert info.value.failures == 5 and (info.value.row, info.value.column) == (17, "x1")
    assert snapshot(seeded_project) == before
    summary = store.read_validation_summary(seeded_project, 1)["ingest"]
    assert summary["failed_rows"] == 5 and summary["rows"] == n
