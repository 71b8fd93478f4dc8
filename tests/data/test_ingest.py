"""Ingest of every supported format: stable ids, de-duplication, batches, atomic label appends."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tasks.data import store
from tasks.data.content_ids import row_hashes
from tasks.data.ingest import ingest
from tasks.data.labels import collect_labels
from tests.data.conftest import good_rows, snapshot

pytestmark = pytest.mark.data


def _write(df: pd.DataFrame, fmt: str, name: str = "input") -> Path:
    path = Path(f"{name}.{fmt}")
    if fmt == "csv":
        df.to_csv(path, index=False)
    elif fmt == "parquet":
        df.to_parquet(path, index=False)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in df.to_dict("records")))
    return path


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_tabular_formats_give_the_same_content_ids(project, fmt):
    result = ingest(_write(good_rows(), fmt), project)
    pool = store.read_pool(project)
    assert result.added == 6 and result.batch == 1
    assert pool["id"].is_unique and pool["id"].str.fullmatch(r"[0-9a-f]{32}").all()
    assert (pool["ingest_batch"] == 1).all()
    assert str(pool["first_seen"].dt.tz) == "UTC"
    assert pool["x1"].tolist() == good_rows()["x1"].tolist()
    # the same content read from another format maps to the same ids
    other = "csv" if fmt != "csv" else "parquet"
    again = ingest(_write(good_rows(), other, "again"), project)
    assert again.added == 0 and again.already_present == 6
    assert store.read_pool(project)["id"].tolist() == pool["id"].tolist()


def test_duplicates_within_the_file_and_against_the_pool_are_dropped(project):
    ingest(_write(good_rows(4), "csv"), project)
    batch = pd.concat([good_rows(6), good_rows(6).iloc[[5]]], ignore_index=True)
    result = ingest(_write(batch, "csv", "second"), project)
    pool = store.read_pool(project)
    assert (result.added, result.duplicates_in_file, result.already_present) == (2, 1, 4)
    assert len(pool) == 6 and pool["id"].is_unique
    assert pool["ingest_batch"].tolist() == [1, 1, 1, 1, 2, 2]


def test_id_column_gives_the_ids(project):
    project.data.id_column = "item_id"
    df = good_rows(3).assign(item_id=[101, 102, 103])
    ingest(_write(df, "csv"), project)
    pool = store.read_pool(project)
    assert pool["id"].tolist() == ["101", "102", "103"]
    assert "item_id" not in pool.columns


def test_folder_of_text_files(project):
    project.data.feature_columns = []
    folder = Path("texts")
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("the cat sat", encoding="utf-8")
    (folder / "sub" / "b.txt").write_text("der Hund läuft", encoding="utf-8")
    (folder / "copy.txt").write_text("the cat sat", encoding="utf-8")
    (folder / ".hidden.txt").write_text("ignored", encoding="utf-8")
    result = ingest(folder, project)
    pool = store.read_pool(project)
    assert result.added == 2 and result.duplicates_in_file == 1
    assert sorted(pool["text"]) == ["der Hund läuft", "the cat sat"]
    assert set(pool.columns) >= {"id", "text", "source_path", "ingest_batch", "first_seen"}


def test_folder_of_images(project):
    from PIL import Image

    project.data.feature_columns = []
    folder = Path("images")
    folder.mkdir()
    for i, colour in enumerate([(255, 0, 0), (0, 255, 0)]):
        Image.new("RGB", (4, 4), colour).save(folder / f"img{i}.png")
    ingest(folder, project)
    pool = store.read_pool(project)
    assert len(pool) == 2
    assert all(Path(p).is_absolute() and Path(p).exists() for p in pool["image_path"])


def test_holdout_ingest_keeps_labels_and_stays_disjoint_from_the_pool(project):
    ingest(_write(good_rows(4), "csv"), project)
    holdout = good_rows(3, start=10).assign(label=["cat", "dog", "cat"])
    ingest(_write(holdout, "csv", "holdout"), project, holdout=True)
    stored = store.read_holdout(project)
    assert stored["label"].tolist() == ["cat", "dog", "cat"]
    assert not set(stored["id"]) & set(store.read_pool(project)["id"])


@hsettings(max_examples=30, deadline=None)
@given(
    st.lists(st.tuples(st.integers(-1000, 1000), st.text(max_size=8)), min_size=1, max_size=12),
    st.randoms(use_true_random=False),
)
def test_content_ids_ignore_row_and_column_order(rows, rnd):
    df = pd.DataFrame(rows, columns=["a", "b"])
    ids = row_hashes(df, ["a", "b"])
    order = list(range(len(df)))
    rnd.shuffle(order)
    shuffled = df.iloc[order][["b", "a"]]
    assert row_hashes(shuffled, ["b", "a"]).tolist() == ids.iloc[order].tolist()
    # equal rows, equal ids; different rows, different ids
    # (a Python set: pandas' drop_duplicates takes '' and '\x00' for the same string)
    assert ids.nunique() == len(set(rows))


def test_appending_labels_keeps_every_existing_row(seeded_project):
    before = store.read_labels(seeded_project)
    ids = store.read_pool(seeded_project)["id"].tolist()
    # a second label for an already-labeled id is a new row, not an overwrite
    new = pd.DataFrame({"id": [ids[0], ids[2]], "label": ["dog", "cat"], "annotator": "bob"})
    after = collect_labels(new, seeded_project, round_=2)
    assert len(after) == len(before) + 2
    pd.testing.assert_frame_equal(after.iloc[: len(before)], before)
    assert store.latest_labels(after).set_index("id").loc[ids[0], "label"] == "dog"


def test_a_crash_while_writing_labels_leaves_the_old_file(seeded_project, monkeypatch):
    before = snapshot(seeded_project)
    ids = store.read_pool(seeded_project)["id"].tolist()

    def crash(table, where, **kwargs):
        Path(where).write_bytes(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", crash)
    with pytest.raises(OSError, match="disk full"):
        store.append_labels(
            seeded_project,
            pd.DataFrame(
                {
                    "id": [ids[3]],
                    "label": ["cat"],
                    "annotator": "ann",
                    "round": 2,
                    "time": pd.Timestamp.now(tz="UTC"),
                    "source": "human",
                }
            ),
        )
    assert snapshot(seeded_project) == before
    assert not list(Path("data").glob(".*.tmp"))


def test_manifest_round_trip(project):
    path = store.write_manifest(
        project,
        3,
        ["b", "a"],
        np.array([0.9, 0.1]),
        strategy="margin",
        strategy_params={"k": 2},
        model_version="7",
    )
    assert path.name == "round-0003.parquet"
    df = store.read_manifest(project, 3)
    assert list(df.columns) == list(store.MANIFEST_COLUMNS)
    assert df["rank"].tolist() == [1, 2] and df["id"].tolist() == ["b", "a"]
    assert json.loads(df["strategy_params"][0]) == {"k": 2}
    assert store.latest_round(project) == 3
