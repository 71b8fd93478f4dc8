"""The round's select step on Dask (``scale.executor: dask``, a LocalCluster of 2 worker
processes) picks exactly the batch the default in-process path picks, in the same order."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.data import store
from tasks.loop import demo as project
from tasks.settings import Settings
from tests.conftest import project_settings

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.usefixtures("prefect_harness"),
]


def _settings(root: Path, executor: str) -> Settings:
    return project_settings(
        root,
        project={"name": f"it-scale-{executor}", "seed": 11},
        # past its cold start (20 labels, 2 per class): a cold-start query is scored in process
        strategy={"name": "hybrid", "batch_size": 8, "params": {"cold_start": 2}},
        loop={"demo_rows": 300, "initial_labels": 20, "stop_set_size": 20},
        scale={"executor": executor, "n_workers": 2, "chunk_size": 60},
    )


def test_a_round_on_dask_selects_exactly_what_the_local_executor_selects(
    tmp_path_factory, monkeypatch
):
    import flows.scale
    from flows.round import round_flow

    scaled = []  # what each call of the scale-out cost, on which worker processes
    real = flows.scale.select_at_scale

    def recording(*args, **kwargs):
        scaled.append(real(*args, **kwargs))
        return scaled[-1]

    monkeypatch.setattr(flows.scale, "select_at_scale", recording)
    manifests = {}
    for executor in ("local", "dask"):
        root = tmp_path_factory.mktemp(executor)
        monkeypatch.chdir(root)
        settings = _settings(root, executor)
        project.seed_project(settings)
        result = round_flow(settings, 1)
        assert result.status == "complete"
        manifests[executor] = store.read_manifest(settings, 1)
        assert not list((root / ".labelwise" / "scale").glob("*.npy"))  # the pool file is gone
    (distributed,) = scaled  # only the dask round scaled out, and it did not fall back
    assert distributed.n_chunks == 4 and str(os.getpid()) not in {
        key.split(":")[1] for key in distributed.workers
    }
    local, dask = manifests["local"], manifests["dask"]
    assert len(local) == 8
    pd.testing.assert_series_equal(local["id"], dask["id"])
    np.testing.assert_allclose(local["score"], dask["score"], equal_nan=True)
