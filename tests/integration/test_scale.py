"""The Dask flow returns exactly the in-memory selection, on a LocalCluster it starts itself and
on an existing cluster given by address (``scale.dask_address``)."""

from __future__ import annotations

import os

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

import strategies
from tasks.settings import ScaleSettings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

N_ROWS = 20_000


@pytest.fixture(scope="module")
def problem(tmp_path_factory):
    rng = np.random.default_rng(1)
    centres = rng.normal(scale=1.5, size=(4, 10))
    labels = rng.integers(4, size=N_ROWS)
    X = rng.normal(size=(N_ROWS, 10)) + centres[labels]
    model = LogisticRegression(max_iter=500).fit(X[:300], labels[:300])
    path = tmp_path_factory.mktemp("pool") / "pool.npy"
    np.save(path, X)
    return X, labels, model, path


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as local:
        yield local


def _expected(strategy, problem, **kwargs):
    X, y, model, _ = problem
    return strategy.query(model, X, 30, X_labeled=X[:300], y_labeled=y[:300], **kwargs)


@pytest.mark.parametrize(
    ("name", "params"),
    [("margin", {}), ("entropy", {}), ("qbc_vote_entropy", {"n_members": 3})],
)
def test_existing_cluster_selects_exactly_what_the_in_memory_query_selects(
    prefect_harness, cluster, problem, name, params
):
    from flows.scale import select_at_scale

    X, y, model, path = problem
    strategy = strategies.get(name, **params)
    expected = _expected(strategy, problem, random_state=5, exclude=np.arange(300))
    scale = ScaleSettings(executor="dask", dask_address=cluster.scheduler_address, chunk_size=3000)
    result = select_at_scale(
        scale,
        strategy,
        model,
        path,
        30,
        X_labeled=X[:300],
        y_labeled=y[:300],
        random_state=5,
        exclude=np.arange(300),
    )
    np.testing.assert_array_equal(result.indices, expected.indices)
    np.testing.assert_array_equal(result.scores, expected.scores)
    assert result.n_chunks == 7
    assert len(result.workers) == 2  # both worker processes scored chunks
    assert sum(w["rows"] for w in result.workers.values()) == N_ROWS


def test_local_cluster_from_settings_runs_the_hybrid_prefilter_distributed(
    prefect_harness, problem
):
    from flows.scale import select_at_scale

    X, y, model, path = problem
    strategy = strategies.get("hybrid")
    expected = _expected(strategy, problem, random_state=2)
    scale = ScaleSettings(executor="dask", n_workers=2, chunk_size=5000)
    result = select_at_scale(
        scale, strategy, model, path, 30, X_labeled=X[:300], y_labeled=y[:300], random_state=2
    )
    np.testing.assert_array_equal(result.indices, expected.indices)
    assert str(os.getpid()) not in {key.split(":")[1] for key in result.workers}


def test_task_runner_follows_the_scale_settings():
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    from flows.scale import task_runner

    assert isinstance(task_runner(ScaleSettings(executor="local")), ThreadPoolTaskRunner)
    remote = task_runner(ScaleSettings(executor="dask", dask_address="tcp://10.0.0.1:8786"))
    assert isinstance(remote, DaskTaskRunner) and remote.address == "tcp://10.0.0.1:8786"
    local = task_runner(ScaleSettings(executor="dask", n_workers=3))
    assert local.cluster_kwargs["n_workers"] == 3 and local.cluster_kwargs["processes"]
