"""Ratings files: the same rows from CSV, Parquet and JSONL, and every bad input refused with a
message naming the file, the 1-based data row and the column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.ratings.reader import (
    RatingsError,
    Scale,
    parse_scale,
    read_ratings,
    user_rows,
)

pytestmark = pytest.mark.data

CATALOG = pd.DataFrame(
    {
        "user": ["a", "a", "b", "b", "c"],
        "item": ["x", "y", "x", "z", "y"],
        "rating": [5, 3, 4, 1, 2],
    }
)


def write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True)
    return path


def bad(path: Path, **kwargs: object) -> str:
    with pytest.raises(RatingsError) as info:
        read_ratings(path, **kwargs)  # type: ignore[arg-type]
    return str(info.value)


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_each_format_reads_the_same_rows(tmp_path: Path, suffix: str) -> None:
    ratings = read_ratings(write(CATALOG, tmp_path / f"r{suffix}"))
    assert ratings.users.tolist() == ["a", "a", "b", "b", "c"]
    assert ratings.items.tolist() == ["x", "y", "x", "z", "y"]
    np.testing.assert_array_equal(ratings.values, [5, 3, 4, 1, 2])
    assert ratings.rows.tolist() == [1, 2, 3, 4, 5]
    assert ratings.scale == Scale(1, 5)


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_numeric_ids_are_the_same_text_in_every_format(tmp_path: Path, suffix: str) -> None:
    frame = pd.DataFrame({"user": [7, 8], "item": [10, 11], "rating": [1.5, 4.0]})
    ratings = read_ratings(write(frame, tmp_path / f"n{suffix}"))
    assert ratings.users.tolist() == ["7", "8"] and ratings.items.tolist() == ["10", "11"]


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
@pytest.mark.parametrize("column", ["user", "item", "rating"])
def test_a_missing_column_is_named(tmp_path: Path, suffix: str, column: str) -> None:
    path = write(CATALOG.drop(columns=column), tmp_path / f"m{suffix}")
    message = bad(path)
    assert f"{path}, header, column {column!r}: missing column" in message


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
@pytest.mark.parametrize("column", ["user", "item", "rating"])
def test_an_empty_or_nan_value_names_its_row(tmp_path: Path, suffix: str, column: str) -> None:
    frame = CATALOG.astype({column: object})
    frame.loc[3, column] = None  # data row 4
    path = write(frame, tmp_path / f"e{suffix}")
    assert f"{path}, row 4, column {column!r}: empty" in bad(path)


def test_blank_and_nan_text_are_empty(tmp_path: Path) -> None:
    path = tmp_path / "blank.csv"
    path.write_text("user,item,rating\na,x,5\n  ,y,3\n")
    assert f"{path}, row 2, column 'user': empty user id" in bad(path)
    path.write_text("user,item,rating\na,x,5\nb,y,NaN\n")
    assert f"{path}, row 2, column 'rating': empty rating" in bad(path)


@pytest.mark.parametrize("text", ["five", "inf", "3 stars"])
def test_a_non_numeric_rating_names_its_row(tmp_path: Path, text: str) -> None:
    path = tmp_path / "t.csv"
    path.write_text(f"user,item,rating\na,x,5\nb,x,4\nc,y,{text}\n")
    message = bad(path)
    assert f"{path}, row 3, column 'rating': '{text}' is not a finite number" in message


def test_a_rating_outside_the_scale(tmp_path: Path) -> None:
    path = write(CATALOG, tmp_path / "r.csv")
    message = bad(path, scale=Scale(1, 4))
    assert f"{path}, row 1, column 'rating': 5 is outside the scale 1..4" in message


def test_the_user_file_is_checked_against_the_catalogs_own_range(tmp_path: Path) -> None:
    catalog = read_ratings(write(CATALOG, tmp_path / "r.csv"))
    mine = write(
        pd.DataFrame({"user": ["n", "n"], "item": ["x", "y"], "rating": [2, 6]}), tmp_path / "u.csv"
    )
    message = bad(mine, scale=catalog.scale, catalog=catalog)
    assert f"{mine}, row 2, column 'rating': 6 is outside the scale 1..5" in message


def test_a_duplicate_pair_names_both_rows(tmp_path: Path) -> None:
    frame = pd.concat([CATALOG, CATALOG.iloc[[2]]], ignore_index=True)  # row 6 repeats row 3
    path = write(frame, tmp_path / "d.parquet")
    message = bad(path)
    assert f"{path}, row 6, columns 'user','item'" in message and "already in row 3" in message


def test_an_item_the_catalog_does_not_know(tmp_path: Path) -> None:
    catalog = read_ratings(write(CATALOG, tmp_path / "r.csv"))
    mine = write(
        pd.DataFrame({"user": ["n", "n"], "item": ["x", "w"], "rating": [2, 3]}),
        tmp_path / "u.jsonl",
    )
    message = bad(mine, catalog=catalog)
    assert f"{mine}, row 2, column 'item': item 'w' is not in the catalog {catalog.file}" in message


def test_empty_user_files_are_a_brand_new_user(tmp_path: Path) -> None:
    header = tmp_path / "h.csv"
    header.write_text("user,item,rating\n")
    nothing = tmp_path / "n.jsonl"
    nothing.write_text("")
    for path in (header, nothing):
        ratings = read_ratings(path, allow_empty=True)
        assert len(ratings) == 0
        assert user_rows(ratings, None) == (None, ratings)
    # a header alone is still checked for its columns
    header.write_text("user,item\n")
    assert f"{header}, header, column 'rating'" in bad(header, allow_empty=True)
    # the catalog must hold ratings
    header.write_text("user,item,rating\n")
    assert f"{header}: no rating rows" in bad(header)
    assert f"{nothing}: the file is empty" in bad(nothing)


def test_choosing_the_user(tmp_path: Path) -> None:
    ratings = read_ratings(write(CATALOG, tmp_path / "u.csv"))
    user, mine = user_rows(ratings, "b")
    assert user == "b" and mine.items.tolist() == ["x", "z"] and mine.rows.tolist() == [3, 4]
    with pytest.raises(RatingsError) as info:
        user_rows(ratings, "zz")
    assert f"{ratings.file}, column 'user': no rows of user 'zz'" in str(info.value)
    with pytest.raises(RatingsError) as info:
        user_rows(ratings, None)
    assert "ratings of 3 users" in str(info.value) and "--user" in str(info.value)
    one = ratings.of_user("c")
    assert user_rows(one, None)[0] == "c"


def test_unknown_files_and_scales(tmp_path: Path) -> None:
    assert "unknown format '.xlsx'" in bad(tmp_path / "r.xlsx")
    assert "no such file" in bad(tmp_path / "absent.csv")
    assert parse_scale("1,5") == Scale(1.0, 5.0) and parse_scale(None) is None
    for text in ("1;5", "5,1", "1,1", "1,2,3", "a,b"):
        with pytest.raises(RatingsError, match="--scale"):
            parse_scale(text)
