"""A fresh project (params + empty data dir) per test, in its own temporary directory."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tasks.settings import Settings


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


@pytest.fixture
def seeded_project(project: Settings) -> Settings:
    """A project whose pool holds ``good_rows()`` and a few labels (round 1)."""
    from tasks.data import store
    from tasks.data.ingest import ingest
    from tasks.data.labels import collect_labels

    good_rows().to_csv("seed.csv", index=False)
    ingest("seed.csv", project)
    ids = store.read_pool(project)["id"].tolist()
    collect_labels(
        pd.DataFrame({"id": ids[:2], "label": ["cat", "dog"], "annotator": "ann"}),
        project,
        round_=1,
    )
    return project
