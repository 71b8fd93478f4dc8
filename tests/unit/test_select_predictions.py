"""``labelwise select`` on the user's own predictions: hand-computed rankings for each shape (p_
columns, committee members, boxes, embeddings), chunked reading equal to one chunk, --exclude,
every bad input naming file, row and column, and the command through typer's CliRunner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app
from strategies.external import box_scores, diverse_picks, member_scores
from tasks.external.predictions import (
    PredictionsError,
    SelectOptions,
    load_exclude,
    select_batch,
)

pytestmark = pytest.mark.unit


def write(df: pd.DataFrame, path: Path) -> Path:
    """``df`` as Parquet, CSV or JSONL by the suffix."""
    if path.suffix == ".parquet":
        df.to_parquet(path, index=False)
    elif path.suffix == ".csv":
        df.to_csv(path, index=False)
    else:
        df.to_json(path, orient="records", lines=True)
    return path


def ids(batch: pd.DataFrame) -> list:
    return [str(i) for i in batch["id"]]


ITEMS = pd.DataFrame(
    {
        "id": [10, 11, 12, 13, 14],
        "p_a": [0.90, 0.50, 0.60, 0.20, 0.45],
        "p_b": [0.05, 0.30, 0.40, 0.70, 0.45],
        "p_c": [0.05, 0.20, 0.00, 0.10, 0.10],
    }
)
# margins 1 - (top1 - top2): 10 -> 0.15, 11 -> 0.8, 12 -> 0.8, 13 -> 0.5, 14 -> 1.0


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_margin_ranking_on_p_columns(tmp_path: Path, suffix: str) -> None:
    path = write(ITEMS, tmp_path / f"preds{suffix}")
    batch = select_batch(path, SelectOptions(batch_size=3))
    assert list(batch.columns) == ["id", "rank", "score", "source"]
    assert ids(batch) == ["14", "11", "12"]  # the 0.8 tie goes to the earlier row
    assert batch["rank"].tolist() == [1, 2, 3]
    np.testing.assert_allclose(batch["score"], [1.0, 0.8, 0.8])
    assert set(batch["source"]) == {"margin"}


def test_least_confidence_and_entropy(tmp_path: Path) -> None:
    path = write(ITEMS, tmp_path / "p.parquet")
    lc = select_batch(path, SelectOptions(batch_size=2, strategy="least_confidence"))
    assert ids(lc) == ["14", "11"]  # 1 - max: 0.55, 0.5
    np.testing.assert_allclose(lc["score"], [0.55, 0.5])
    ent = select_batch(path, SelectOptions(batch_size=1, strategy="entropy"))
    assert ids(ent) == ["11"]  # (0.5, 0.3, 0.2) is the most spread out


def committee() -> pd.DataFrame:
    # item 1: members agree on an uncertain (0.5, 0.5): BALD 0; item 2: confident, disagreeing
    # members (0.9, 0.1) / (0.1, 0.9): BALD = log 2 - H(0.9, 0.1); item 3: agree, confident
    return pd.DataFrame(
        {
            "id": [1, 1, 2, 2, 3, 3],
            "member": [0, 1, 0, 1, 0, 1],
            "p_a": [0.5, 0.5, 0.9, 0.1, 0.95, 0.95],
            "p_b": [0.5, 0.5, 0.1, 0.9, 0.05, 0.05],
        }
    )


def test_member_bald_ranking(tmp_path: Path) -> None:
    path = write(committee(), tmp_path / "m.parquet")
    batch = select_batch(path, SelectOptions(batch_size=3, strategy="bald"))
    h = -(0.9 * np.log(0.9) + 0.1 * np.log(0.1))
    assert ids(batch) == ["2", "1", "3"]
    np.testing.assert_allclose(batch["score"], [np.log(2) - h, 0.0, 0.0], atol=1e-12)
    votes = select_batch(path, SelectOptions(batch_size=1, strategy="vote_entropy"))
    assert ids(votes) == ["2"]
    np.testing.assert_allclose(votes["score"], [np.log(2)])
    # a per-row strategy ranks the members' mean: item 1 and 2 both average (0.5, 0.5)
    mean = select_batch(path, SelectOptions(batch_size=2, strategy="margin"))
    assert ids(mean) == ["1", "2"]


def test_member_scores_mixed_committee_sizes() -> None:
    probas = np.array([[0.9, 0.1], [0.1, 0.9], [0.5, 0.5], [0.5, 0.5], [0.5, 0.5]])
    scores = member_scores(probas, np.array([0, 2]), "bald")
    h = -(0.9 * np.log(0.9) + 0.1 * np.log(0.1))
    np.testing.assert_allclose(scores, [np.log(2) - h, 0.0], atol=1e-12)


def boxes() -> pd.DataFrame:
    # per-box least confidence: img 1 boxes 0.4, 0.1; img 2 boxes 0.3, 0.3, 0.3; img 3 box 0.45
    return pd.DataFrame(
        {
            "id": ["i1", "i1", "i2", "i2", "i2", "i3"],
            "box_id": [0, 1, 0, 1, 2, 0],
            "p_car": [0.6, 0.9, 0.7, 0.7, 0.0, 0.55],
            "p_bike": [0.4, 0.1, 0.3, 0.0, 0.3, 0.45],
            "p_person": [0.0, 0.0, 0.0, 0.3, 0.7, 0.0],
            "x": [0, 1, 2, 3, 4, 5],
            "y": [0, 1, 2, 3, 4, 5],
            "w": [1, 1, 1, 1, 1, 1],
            "h": [1, 1, 1, 1, 1, 1],
        }
    )


@pytest.mark.parametrize(
    ("aggregate", "order", "scores"),
    [
        ("max", ["i3", "i1", "i2"], [0.45, 0.4, 0.3]),
        ("mean", ["i3", "i2", "i1"], [0.45, 0.3, 0.25]),
        ("sum", ["i2", "i1", "i3"], [0.9, 0.5, 0.45]),
    ],
)
def test_box_aggregates(tmp_path: Path, aggregate: str, order: list, scores: list) -> None:
    path = write(boxes(), tmp_path / "b.parquet")
    opts = SelectOptions(batch_size=3, strategy="least_confidence", aggregate=aggregate)
    batch = select_batch(path, opts)
    assert ids(batch) == order
    np.testing.assert_allclose(batch["score"], scores)


def test_box_rare_classes_add_a_count(tmp_path: Path) -> None:
    path = write(boxes(), tmp_path / "b.csv")
    opts = SelectOptions(batch_size=3, strategy="least_confidence", rare_classes=("person",))
    batch = select_batch(path, opts)
    # i2's third box is a person (argmax): max 0.3 + 1 rare box
    assert ids(batch) == ["i2", "i3", "i1"]
    np.testing.assert_allclose(batch["score"], [1.3, 0.45, 0.4])


def test_box_scores_pure() -> None:
    probas = np.array([[0.6, 0.4], [0.9, 0.1], [0.2, 0.8]])
    rare = np.array([False, True])
    np.testing.assert_allclose(
        box_scores(probas, np.array([0, 2]), "least_confidence", "sum", rare), [0.5, 1.2]
    )


def near_duplicates() -> pd.DataFrame:
    # items 0-3 are near-duplicates and the most uncertain; 4 and 5 are far apart, less uncertain
    emb = np.array([[0, 0], [0.01, 0], [0, 0.01], [0.01, 0.01], [10, 0], [0, 10]], dtype=float)
    p_a = np.array([0.5, 0.51, 0.52, 0.53, 0.7, 0.75])
    return pd.DataFrame(
        {"id": range(6), "p_a": p_a, "p_b": 1 - p_a, "emb_0": emb[:, 0], "emb_1": emb[:, 1]}
    )


@pytest.mark.parametrize("strategy", ["coreset", "cluster_margin"])
def test_diversity_picks_distinct_points(tmp_path: Path, strategy: str) -> None:
    path = write(near_duplicates(), tmp_path / "e.parquet")
    plain = select_batch(path, SelectOptions(batch_size=3))
    assert ids(plain) == ["0", "1", "2"]  # margin alone takes three near-duplicates
    batch = select_batch(path, SelectOptions(batch_size=3, strategy=strategy))
    assert ids(batch)[0] == "0"  # the most uncertain first
    assert set(ids(batch)) == {"0", "4", "5"}
    assert set(batch["source"]) == {strategy}


def test_diverse_picks_pure() -> None:
    X = np.array([[0.0, 0.0], [0.0, 0.1], [5.0, 5.0]])
    picks = diverse_picks(X, np.array([0.9, 0.8, 0.1]), 2, "coreset", np.random.default_rng(0))
    assert picks.tolist() == [0, 2]


@pytest.mark.parametrize(
    ("frame", "strategy"),
    [
        (ITEMS, "margin"),
        (committee(), "bald"),
        (boxes(), "entropy"),
        (near_duplicates(), "coreset"),
    ],
)
def test_chunked_reading_matches_one_chunk(
    tmp_path: Path, frame: pd.DataFrame, strategy: str
) -> None:
    for suffix in (".parquet", ".csv", ".jsonl"):
        path = write(frame, tmp_path / f"f{suffix}")
        whole = select_batch(path, SelectOptions(batch_size=3, strategy=strategy))
        for rows in (1, 2, 3):
            chunked = select_batch(path, SelectOptions(3, strategy, chunk_rows=rows))
            pd.testing.assert_frame_equal(chunked, whole)


def test_random_is_seeded_and_excludes(tmp_path: Path) -> None:
    path = write(ITEMS, tmp_path / "p.parquet")
    a = select_batch(path, SelectOptions(batch_size=3, strategy="random", seed=1))
    b = select_batch(path, SelectOptions(batch_size=3, strategy="random", seed=1))
    pd.testing.assert_frame_equal(a, b)
    assert set(a["source"]) == {"random"}
    c = select_batch(path, SelectOptions(batch_size=5, strategy="random"), {"10", "11"})
    assert sorted(ids(c)) == ["12", "13", "14"]


@pytest.mark.parametrize("kind", ["txt", "csv", "parquet"])
def test_exclude_file_skips_labeled_ids(tmp_path: Path, kind: str) -> None:
    path = write(ITEMS, tmp_path / "p.csv")
    ex = tmp_path / f"labeled.{kind}"
    if kind == "txt":
        ex.write_text("14\n\n11\n")
    else:
        write(pd.DataFrame({"id": [14, 11]}), ex)
    skip = load_exclude(ex)
    assert skip == {"14", "11"}
    batch = select_batch(path, SelectOptions(batch_size=2, chunk_rows=2), skip)
    assert ids(batch) == ["12", "13"]


def bad(path: Path, options: SelectOptions | None = None) -> str:
    with pytest.raises(PredictionsError) as info:
        select_batch(path, options or SelectOptions(batch_size=2, chunk_rows=2))
    return str(info.value)


def test_probabilities_not_summing_to_one(tmp_path: Path) -> None:
    df = ITEMS.copy()
    df.loc[3, "p_c"] = 0.3
    message = bad(write(df, tmp_path / "p.csv"))
    assert str(tmp_path / "p.csv") in message
    assert "row 4" in message and "'p_a'" in message and "sum to 1.2" in message


def test_negative_probability(tmp_path: Path) -> None:
    df = ITEMS.copy()
    df.loc[2, ["p_b", "p_c"]] = [0.5, -0.1]
    message = bad(write(df, tmp_path / "p.parquet"))
    assert (
        f"{tmp_path / 'p.parquet'}, row 3, column 'p_c'" in message and "outside [0, 1]" in message
    )


def test_nan_probability(tmp_path: Path) -> None:
    df = ITEMS.copy()
    df.loc[4, "p_b"] = np.nan
    message = bad(write(df, tmp_path / "p.jsonl"))
    assert f"{tmp_path / 'p.jsonl'}, row 5, column 'p_b': NaN" in message


def test_not_a_number(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("id,p_a,p_b\n1,0.5,0.5\n2,abc,0.5\n")
    assert f"{path}, row 2, column 'p_a': 'abc' is not a number" in bad(path)


def test_missing_id(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("id,p_a,p_b\n1,0.5,0.5\n2,0.4,0.6\n,0.3,0.7\n")
    assert f"{path}, row 3, column 'id': missing value" in bad(path)


def test_no_id_column(tmp_path: Path) -> None:
    message = bad(write(ITEMS.drop(columns="id"), tmp_path / "p.parquet"))
    assert str(tmp_path / "p.parquet") in message and "row 1, column 'id'" in message


def test_box_row_without_image(tmp_path: Path) -> None:
    df = boxes().astype({"id": object})
    df.loc[4, "id"] = None
    message = bad(write(df, tmp_path / "b.parquet"))
    assert f"{tmp_path / 'b.parquet'}, row 5, column 'id'" in message
    assert "box row without an image id" in message


def test_nan_embedding_and_negative_box(tmp_path: Path) -> None:
    df = near_duplicates()
    df.loc[1, "emb_1"] = np.nan
    assert "row 2, column 'emb_1': NaN" in bad(write(df, tmp_path / "e.parquet"))
    b = boxes()
    b.loc[0, "w"] = -1
    assert "row 1, column 'w': negative box size" in bad(write(b, tmp_path / "b.parquet"))


def test_duplicate_id_on_one_row_per_item(tmp_path: Path) -> None:
    df = ITEMS.copy()
    df.loc[4, "id"] = 11
    message = bad(write(df, tmp_path / "p.parquet"), SelectOptions(batch_size=5, chunk_rows=2))
    assert f"{tmp_path / 'p.parquet'}, row 5, column 'id': id 11 appears on more" in message


@pytest.mark.parametrize("chunk_rows", [1, 2, 100])
def test_members_not_grouped_by_id(tmp_path: Path, chunk_rows: int) -> None:
    df = committee().iloc[[0, 2, 1, 3, 4, 5]]  # item 1, item 2, item 1 again
    path = write(df, tmp_path / "m.parquet")
    message = bad(path, SelectOptions(batch_size=3, strategy="bald", chunk_rows=chunk_rows))
    assert f"{path}, row 3, column 'id'" in message and "grouped by id" in message


def test_strategy_must_fit_shape(tmp_path: Path) -> None:
    path = write(ITEMS, tmp_path / "p.parquet")
    assert "column 'member'" in bad(path, SelectOptions(batch_size=2, strategy="bald"))
    assert "column 'emb_0'" in bad(path, SelectOptions(batch_size=2, strategy="coreset"))
    boxes_path = write(boxes(), tmp_path / "b.parquet")
    message = bad(boxes_path, SelectOptions(batch_size=2, rare_classes=("truck",)))
    assert "column 'p_truck'" in message


def test_cli_writes_the_batch(tmp_path: Path) -> None:
    path = write(boxes(), tmp_path / "b.parquet")
    (tmp_path / "labeled.txt").write_text("i3\n")
    out = tmp_path / "out" / "batch.csv"
    args = ["select", "--predictions", str(path), "--batch-size", "2", "--strategy"]
    args += ["least_confidence", "--aggregate", "sum", "--exclude", str(tmp_path / "labeled.txt")]
    result = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    batch = pd.read_csv(out)
    assert list(batch.columns) == ["id", "rank", "score", "source"]
    assert batch["id"].tolist() == ["i2", "i1"]
    pq_out = tmp_path / "batch.parquet"
    result = CliRunner().invoke(app, [*args, "--out", str(pq_out)])
    assert result.exit_code == 0 and pd.read_parquet(pq_out)["rank"].tolist() == [1, 2]


def test_cli_bad_input_exits_with_the_message(tmp_path: Path) -> None:
    df = ITEMS.copy()
    df.loc[1, "p_a"] = np.nan
    path = write(df, tmp_path / "p.parquet")
    out = tmp_path / "o.csv"
    result = CliRunner().invoke(
        app, ["select", "--predictions", str(path), "--batch-size", "2", "--out", str(out)]
    )
    assert result.exit_code == 1
    assert "row 2" in result.output and "p_a" in result.output
    assert not out.exists()


def test_pool_ids_catch_a_prediction_for_an_item_not_in_the_pool(tmp_path: Path) -> None:
    path = write(ITEMS, tmp_path / "p.csv")
    pool_file = tmp_path / "pool.txt"
    pool_file.write_text("10\n11\n12\n13\n14\n")
    pool = (pool_file, load_exclude(pool_file))
    ranked = select_batch(path, SelectOptions(batch_size=2, chunk_rows=2), pool=pool)
    assert ids(ranked) == ["14", "11"]  # every id known: the same batch as without --pool
    pool_file.write_text("10\n11\n12\n14\n")
    with pytest.raises(PredictionsError) as info:
        select_batch(
            path,
            SelectOptions(batch_size=2, chunk_rows=2),
            pool=(pool_file, {"10", "11", "12", "14"}),
        )
    message = str(info.value)
    assert "row 4, column 'id': id '13' is not in the pool" in message and "4 ids" in message

    out = tmp_path / "b.csv"
    args = ["select", "--predictions", str(path), "--batch-size", "2", "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--pool", str(pool_file)])
    assert result.exit_code == 1 and "id '13' is not in the pool" in result.output
    missing = CliRunner().invoke(app, [*args, "--pool", str(tmp_path / "nope.txt")])
    assert missing.exit_code == 1 and "no such file" in " ".join(missing.output.split())
