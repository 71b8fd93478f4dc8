"""A fresh project (params + empty data dir) per test, in its own temporary directory."""

from __future__ import annotations

import os
from pathlib import Path

import hypothesis
import pandas as pd
import pytest

from tasks.settings import Settings


def make_settings(root: str | Path = ".") -> Settings:
    """The test project's settings, its data under ``root/data``."""
    return Settings.model_validate(
        {
            "project": {
                "work_dir": str(Path(root) / ".labelwise"),
                "data_dir": str(Path(root) / "data"),
            },
            "data": {
                "feature_columns": ["x1", "x2"],
                "value_ranges": {"x1": [0, 100]},
                "classes": ["cat", "dog"],
                "min_per_class": 2,
            },
        }
    )


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.chdir(tmp_path)
    return Settings.model_validate(
        {
            "project": {"work_dir": ".labelwise", "data_dir": "data"},
            "data": {
                "feature_columns": ["x1", "x2"],
                "value_ranges": {"x1": [0, 100]},
                "classes": ["cat", "dog"],
                "min_per_class": 2,
            },
        }
    )


def good_rows(n: int = 6, start: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "x1": [float(i) for i in range(start, start + n)],
            "x2": [i * 0.5 for i in range(start, start + n)],
            "note": [f"item {i}" for i in range(start, start + n)],
        }
    )


def snapshot(project: Settings) -> dict[str, bytes | None]:
    """Bytes of the pool, labels and holdout files (None if absent)."""
    root = Path(project.project.data_dir)
    return {
        name: (root / name).read_bytes() if (root / name).exists() else None
        for name in ("pool.parquet", "labels.parquet", "holdout.parquet")
    }


def seed(project: Settings, folder: str | Path = ".") -> Settings:
    """Fill ``project``: ``good_rows()`` in the pool, two labels in round 1."""
    from tasks.data import store
    from tasks.data.ingest import ingest
    from tasks.data.labels import collect_labels

    good_rows().to_csv(Path(folder) / "seed.csv", index=False)
    ingest(Path(folder) / "seed.csv", project)
    ids = store.read_pool(project)["id"].tolist()
    collect_labels(
        pd.DataFrame({"id": ids[:2], "label": ["cat", "dog"], "annotator": "ann"}),
        project,
        round_=1,
    )
    return project


@pytest.fixture
def seeded_project(project: Settings) -> Settings:
    """A project whose pool holds ``good_rows()`` and a few labels (round 1)."""
    return seed(project)


@pytest.fixture(scope="module")
def seeded_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded project built once per module; ``copy_project`` gives each example its own copy."""
    root = tmp_path_factory.mktemp("template")
    seed(make_settings(root), root)
    return root


def copy_project(template: Path, dest: Path) -> Settings:
    """A fresh copy of the seeded project in ``template`` under ``dest`` (which must not exist)."""
    import shutil

    shutil.copytree(template / "data", dest / "data")
    return make_settings(dest)


@pytest.fixture
def seeded_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seeded_template: Path) -> Settings:
    """Like ``seeded_project`` (the working directory is the test's), copied from the template."""
    monkeypatch.chdir(tmp_path)
    return copy_project(seeded_template, tmp_path)


# LABELWISE_FUZZ_SCALE=10 runs ten times the examples of the fuzz tests (a longer bug hunt; CI
# runs 1); derandomized and without an example database, so CI sees the same cases every run
FUZZ_SCALE = float(os.environ.get("LABELWISE_FUZZ_SCALE", "1"))
FUZZ = hypothesis.settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        hypothesis.HealthCheck.too_slow,
        hypothesis.HealthCheck.function_scoped_fixture,
    ],
)


def examples(n: int) -> int:
    """``n`` fuzz examples, times ``LABELWISE_FUZZ_SCALE``."""
    return max(1, round(n * FUZZ_SCALE))
