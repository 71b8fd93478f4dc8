"""``labelwise elicit`` through typer's CliRunner: the questions it prints and writes, the items
it never asks again, and bad input shown as one message naming file, row and column."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app

pytestmark = pytest.mark.unit

# popularity: x 3 ratings, z 2 (one of them the new user's own row below), y 1, w 1
CATALOG = "user,item,rating\na,x,5\na,y,3\nb,x,4\nb,z,1\nc,x,1\nc,w,2\nd,z,5\n"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test in its own directory: the files have short relative names (no wrapping)."""
    monkeypatch.chdir(tmp_path)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["elicit", *args])
    return result.exit_code, " ".join(result.output.split())


def files(user_rows: str = "") -> None:
    """The catalog and a user file in the test's own directory (short paths: no wrapping)."""
    Path("cat.csv").write_text(CATALOG)
    Path("me.csv").write_text("user,item,rating\n" + user_rows)


def test_a_brand_new_user_gets_the_most_popular_items_written() -> None:
    files()
    code, output = run(
        "--ratings", "cat.csv", "--user-ratings", "me.csv", "--k", "2",
        "--strategy", "popularity", "--out", "out/q.csv",
    )  # fmt: skip
    assert code == 0, output
    questions = pd.read_csv("out/q.csv", dtype={"item": str})
    assert list(questions.columns) == ["item", "rank", "score", "strategy"]
    assert questions["item"].tolist() == ["x", "z"]
    assert questions["rank"].tolist() == [1, 2]
    assert questions["score"].tolist() == [3.0, 2.0]
    assert set(questions["strategy"]) == {"popularity"}
    assert "by popularity" in output and "wrote 2 item(s)" in output


def test_rated_items_are_not_asked_again_and_the_list_may_run_short() -> None:
    files("n,x,4\n")
    code, output = run(
        "--ratings", "cat.csv", "--user-ratings", "me.csv", "--k", "9",
        "--strategy", "popularity", "--out", "q.parquet",
    )  # fmt: skip
    assert code == 0, output
    assert pd.read_parquet("q.parquet")["item"].tolist() == ["z", "w", "y"]
    assert "only 3 unrated item(s)" in output


def test_a_user_in_the_catalog_has_their_catalog_items_excluded() -> None:
    files("d,x,3\n")
    code, output = run(
        "--ratings", "cat.csv", "--user-ratings", "me.csv", "--user", "d", "--k", "5",
        "--strategy", "popularity", "--out", "q.jsonl",
    )  # fmt: skip
    assert code == 0, output
    # d rated z in the catalog and x here; d's row is left out of z's count
    questions = pd.read_json("q.jsonl", lines=True, dtype=False)
    assert questions["item"].tolist() == ["w", "y"]


@pytest.mark.parametrize("strategy", ["entropy", "pop_entropy", "variance", "factor_uncertainty"])
def test_every_strategy_runs_and_ranks_unrated_items(strategy: str) -> None:
    files("n,x,4\n")
    code, output = run(
        "--ratings", "cat.csv", "--user-ratings", "me.csv", "--k", "3",
        "--strategy", strategy, "--rank", "2", "--reg", "0.1", "--out", "q.csv",
    )  # fmt: skip
    assert code == 0, output
    questions = pd.read_csv("q.csv", dtype={"item": str})
    assert sorted(questions["item"]) == ["w", "y", "z"]
    assert questions["score"].is_monotonic_decreasing


def test_variance_picks_by_hand() -> None:
    files()
    code, output = run(
        "--ratings", "cat.csv", "--user-ratings", "me.csv", "--k", "1",
        "--strategy", "variance", "--out", "q.csv",
    )  # fmt: skip
    assert code == 0, output
    # z: {1, 5} variance 4; x: {5, 4, 1} variance 26/9
    assert pd.read_csv("q.csv")["item"].tolist() == ["z"]


@pytest.mark.parametrize(
    ("user_rows", "extra", "expected"),
    [
        ("n,x,9\n", [], "me.csv, row 1, column 'rating': 9 is outside the scale 1..5"),
        ("n,x,4\nn,q,2\n", [], "me.csv, row 2, column 'item': item 'q' is not in the catalog"),
        ("n,x,4\nn,x,2\n", [], "me.csv, row 2, columns 'user','item'"),
        ("n,x,four\n", [], "me.csv, row 1, column 'rating': 'four' is not a finite number"),
        ("n,,4\n", [], "me.csv, row 1, column 'item': empty item id"),
        ("n,x,4\n", ["--user", "m"], "me.csv, column 'user': no rows of user 'm'"),
        ("n,x,4\nm,y,2\n", [], "ratings of 2 users"),
        ("", ["--scale", "1,4"], "cat.csv, row 1, column 'rating': 5 is outside the scale 1..4"),
        ("", ["--scale", "x"], "--scale 'x': expected MIN,MAX"),
        ("", ["--strategy", "best"], "--strategy 'best': unknown"),
        ("", ["--out", "q.xlsx"], "q.xlsx: unknown format"),
        ("", ["--reg", "0"], "--reg 0: must be positive"),
    ],
)
def test_bad_input_is_one_message_naming_file_row_and_column(
    user_rows: str, extra: list[str], expected: str
) -> None:
    files(user_rows)
    code, output = run("--ratings", "cat.csv", "--user-ratings", "me.csv", *extra)
    assert code == 1
    assert expected in output and "hint:" in output
    assert "Traceback" not in output


def test_a_missing_catalog_column() -> None:
    Path("cat.csv").write_text("user,movie,rating\na,x,5\n")
    Path("me.csv").write_text("user,item,rating\n")
    code, output = run("--ratings", "cat.csv", "--user-ratings", "me.csv")
    assert code == 1 and "cat.csv, header, column 'item': missing column" in output
