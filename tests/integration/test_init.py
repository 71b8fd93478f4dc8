"""``labelwise init`` on the user's own data: a CSV of texts, a folder of images in class
subfolders, a table whose label column is partly filled. It states what it detected, writes
params.yaml, ingests the items, keeps their labels as seed labels and splits off a holdout;
bad input is refused with the reason and leaves nothing behind."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from flows.cli import app
from tasks.data import store
from tasks.data.profile import read_profile
from tasks.settings import load_settings

pytestmark = [pytest.mark.integration]


def _init(*args: str):
    return CliRunner().invoke(app, ["init", *args])


def _texts(path, n: int = 120, labeled: float = 0.5):
    rng = np.random.default_rng(0)
    words = ["refund", "invoice", "password", "login", "delivery", "broken", "thanks", "late"]
    texts = [" ".join(rng.choice(words, size=8)) + f" ticket {i}" for i in range(n)]
    labels = ["billing" if "refund" in t or "invoice" in t else "account" for t in texts]
    keep = rng.random(n) < labeled
    frame = pd.DataFrame(
        {
            "message": texts,
            "category": [lab if k else None for lab, k in zip(labels, keep, strict=True)],
        }
    )
    frame.to_csv(path, index=False)
    return frame


def test_a_csv_of_texts_becomes_a_text_project_with_its_labels_as_seeds(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    frame = _texts(tmp_path / "tickets.csv")
    result = _init("--data", "tickets.csv", "--label-column", "category")
    assert result.exit_code == 0, result.output
    assert "120 texts (column 'message')" in result.output
    assert "2 classes: account, billing" in result.output and "next: labelwise run" in result.output

    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    assert params["data"] == {
        "kind": "text",
        "label_column": "category",
        "text_column": "message",
        "classes": ["account", "billing"],
    }
    assert params["model"]["task"] == "classification"
    assert params["annotation"]["backend"] == "files"
    settings = load_settings(tmp_path / "params.yaml")
    assert read_profile(settings).kind == "text"
    n_labeled = int(frame["category"].notna().sum())
    holdout = store.read_holdout(settings)
    labels = store.read_labels(settings)
    assert len(holdout) == round(0.2 * n_labeled) and len(labels) == n_labeled - len(holdout)
    assert len(store.read_pool(settings)) == len(frame) - len(holdout)
    assert "category" not in store.read_pool(settings).columns  # labels never in the pool
    assert set(labels["annotator"]) == {"imported"}
    assert not set(labels["id"]) & set(holdout["id"])


def test_a_folder_of_images_in_class_subfolders_becomes_an_image_project(tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.chdir(tmp_path)
    for label in ("cat", "dog"):
        folder = tmp_path / "photos" / label
        folder.mkdir(parents=True)
        for i in range(8):
            value = 40 if label == "cat" else 200
            pixels = np.full((6, 6), value + i, dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")
    result = _init("--data", "photos")
    assert result.exit_code == 0, result.output
    assert "16 images (column 'image_path')" in result.output
    settings = load_settings(tmp_path / "params.yaml")
    assert settings.data.kind == "image" and settings.data.classes == ["cat", "dog"]
    assert settings.annotation.label_config == "image_classification"
    pool = store.read_pool(settings)
    assert pool["image_path"].map(lambda p: p.endswith(".png")).all()
    assert len(store.read_labels(settings)) + len(store.read_holdout(settings)) == 16


def test_a_table_with_a_partly_filled_label_column_keeps_only_the_filled_labels(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "age": rng.permutation(np.arange(18, 78)),  # every row a distinct item
            "plan": rng.choice(["basic", "pro", "team"], size=60),
            "churned": [
                str(v) if i % 3 == 0 else None for i, v in enumerate(rng.integers(0, 2, 60))
            ],
        }
    )
    frame.to_csv(tmp_path / "customers.csv", index=False)
    result = _init("--data", "customers.csv", "--label-column", "churned")
    assert result.exit_code == 0, result.output
    assert "60 table rows" in result.output and "labels: 20 of them" in result.output
    settings = load_settings(tmp_path / "params.yaml")
    assert settings.data.kind == "tabular" and settings.model.task == "classification"
    assert len(store.read_labels(settings)) == 16 and len(store.read_holdout(settings)) == 4
    assert set(store.read_pool(settings).columns) >= {"age", "plan"}


def test_numbers_as_labels_make_a_regression_project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"x": rng.normal(size=80), "price": rng.uniform(10, 500, size=80)})
    frame.to_csv(tmp_path / "houses.csv", index=False)
    result = _init("--data", "houses.csv", "--label-column", "price")
    assert result.exit_code == 0, result.output
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    assert params["model"]["task"] == "regression" and params["evaluate"]["metric"] == "rmse"
    assert params["annotation"]["label_config"] == "number"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--text-column", "n"], "holds numbers, not text"),
        (["--label-column", "category", "--classes", "billing"], "are not among --classes"),
        (["--label-column", "nope"], "no label column 'nope'"),
    ],
)
def test_bad_input_is_refused_and_leaves_nothing_behind(tmp_path, monkeypatch, args, says):
    monkeypatch.chdir(tmp_path)
    frame = _texts(tmp_path / "tickets.csv")
    frame.assign(n=np.arange(len(frame), dtype=float)).to_csv(tmp_path / "tickets.csv", index=False)
    result = _init("--data", "tickets.csv", *args)
    assert result.exit_code == 1 and says in result.output, result.output
    assert not (tmp_path / "params.yaml").exists() and not (tmp_path / "data").exists()


def test_a_label_the_gate_refuses_undoes_the_whole_init(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lines = [json.dumps({"text": json.dumps(["Ann", "met", "Bo"]), "tags": json.dumps(["O", "O"])})]
    lines += [
        json.dumps({"text": json.dumps([f"w{i}", "x"]), "tags": json.dumps(["O", "O"])})
        for i in range(5)
    ]
    (tmp_path / "sentences.jsonl").write_text("\n".join(lines) + "\n")
    result = _init("--data", "sentences.jsonl", "--label-column", "tags")
    assert result.exit_code == 1, result.output
    assert "2 tags for a sentence of 3 tokens" in result.output
    assert not (tmp_path / "params.yaml").exists() and not (tmp_path / "data").exists()
    kept = list(tmp_path.glob("init-labels-*.parquet"))
    assert len(kept) == 1 and len(pd.read_parquet(kept[0])) >= 1  # the reasons survive the undo


def test_identical_items_are_one_item_and_never_both_pool_and_holdout(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = [{"size": i % 5, "colour": "red", "label": "a" if i % 2 else "b"} for i in range(40)]
    pd.DataFrame(rows).to_csv(tmp_path / "items.csv", index=False)  # 5 distinct items
    result = _init("--data", "items.csv")
    assert result.exit_code == 0, result.output
    settings = load_settings(tmp_path / "params.yaml")
    ids = [*store.read_pool(settings)["id"], *store.read_holdout(settings)["id"]]
    assert len(ids) == len(set(ids)) == 5
