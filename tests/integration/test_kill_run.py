"""The main job survives being killed: ``labelwise run`` on the embedded default (its temporary
Prefect server, MLflow on SQLite, the local DVC remote) is SIGKILLed with its whole process
group at five points of a 3-round run, as an OOM kill or a closed laptop would, and run again
after each. The killed-and-rerun project must end exactly as an uninterrupted run with the same
seed: the same label log, manifests, data versions and MLflow round runs, no item dispatched
twice, and every rerun takes the dead run's round slot over at once (``serve.when_busy: skip``
would otherwise end it ``Skipped``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml

from tasks.data import store, versioning
from tasks.loop import rounds
from tasks.settings import load_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: where each run is killed, in the order a 3-round run reaches them
KILL_POINTS = [
    "during:seed",  # before the first round: half of the demo project ingested
    "round-0001/during:select",  # the manifest written, the step not yet saved
    "round-0002/during:dispatch",  # the batch sent to the annotators, the step not saved
    "round-0002/during:train",  # the model registered, the round state not yet saved
    "round-0003/during:version",  # the data committed, not yet tagged
]
PARAMS = {
    "project": {"name": "it-kill", "seed": 11},
    "strategy": {"batch_size": 10},
    "monitor": {"enabled": False},
    "loop": {"max_rounds": 3, "demo_rows": 300, "stop_set_size": 30},
}
REACH_TIMEOUT = 420.0


def _env(root: Path, point: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "LABELWISE_"))}
    env["LABELWISE_FAILPOINT_DIR"] = str(root / "failpoints")
    if point:
        env["LABELWISE_FAILPOINTS"] = f"{point}=pause"
    return env


def _start(root: Path, point: str | None) -> subprocess.Popen:
    labelwise = Path(sys.executable).parent / "labelwise"
    return subprocess.Popen(
        [str(labelwise), "run"],
        cwd=root,
        env=_env(root, point),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: the kill takes its server along
    )


def _wait_reached(process: subprocess.Popen, root: Path, point: str) -> int:
    """Wait until the run pauses at ``point``; returns the pid of the paused process."""
    from tasks.failpoints import signal_path

    os.environ["LABELWISE_FAILPOINT_DIR"] = str(root / "failpoints")
    try:
        reached = signal_path(point, "reached")
    finally:
        del os.environ["LABELWISE_FAILPOINT_DIR"]
    deadline = time.monotonic() + REACH_TIMEOUT
    while (pid := _written_pid(reached)) is None:
        if process.poll() is not None:
            pytest.fail(f"the run ended before {point}:\n{process.stdout.read()}")
        if time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail(f"{point} not reached in {REACH_TIMEOUT:.0f} s")
        time.sleep(0.1)
    reached.unlink()
    return pid


def _written_pid(reached: Path) -> int | None:
    """The pid in the ``.reached`` file once it is whole (it is created, then written)."""
    try:
        text = reached.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return int(text) if text.endswith("\n") else None


def _kill_group(process: subprocess.Popen, *also: int) -> None:
    """SIGKILL the process group (and ``also``: a flow run's own process), wait until gone."""
    os.killpg(process.pid, signal.SIGKILL)
    for pid in also:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait(timeout=60)
    deadline = time.monotonic() + 30  # the group's other processes (its Prefect server) too
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    pytest.fail("processes of the killed run are still alive")


def _finish(process: subprocess.Popen) -> str:
    out, _ = process.communicate(timeout=900)
    assert process.returncode == 0, out
    return out


def _project(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS), encoding="utf-8")
    return root


def _settings(root: Path):
    settings = load_settings(root / "params.yaml")
    paths = {"work_dir": root / ".labelwise", "data_dir": root / "data"}
    return settings.model_copy(update={"project": settings.project.model_copy(update=paths)})


def _labels(settings) -> pd.DataFrame:
    log = store.read_labels(settings).drop(columns=["time"])
    return log.sort_values(["round", "id", "annotator"]).reset_index(drop=True)


def _manifests(settings) -> list[pd.DataFrame]:
    return [store.read_manifest(settings, n) for n in range(0, 4)]


def _labels_at_tags(settings) -> dict[str, pd.DataFrame]:
    """The label log committed at each data version (read from the DVC cache by its md5)."""
    root = Path(settings.project.data_dir)
    out = {}
    for tag in versioning.tags(settings):
        meta = yaml.safe_load(versioning.git(root, "show", f"{tag}:labels.parquet.dvc").stdout)
        md5 = meta["outs"][0]["md5"]
        frame = pd.read_parquet(root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:])
        out[tag] = frame.drop(columns=["time"]).sort_values(["round", "id"]).reset_index(drop=True)
    return out


def _round_runs(settings) -> pd.DataFrame:
    from tasks.tracking.runs import setup_tracking

    tracking = setup_tracking(settings)
    runs = mlflow.search_runs(
        [tracking.experiment_id], filter_string="tags.`labelwise.kind` = 'round'"
    )
    keep = [
        c
        for c in runs.columns
        if c.startswith(("metrics.", "params.", "tags.labelwise.r"))
        and not c.endswith("_seconds")  # wall times (the model search's) differ run to run
    ]
    return runs[["status", *keep]].sort_values("tags.labelwise.round").reset_index(drop=True)


def _model_versions(settings) -> list[tuple[str, str]]:
    from tasks.tracking.runs import setup_tracking

    tracking = setup_tracking(settings)
    versions = mlflow.MlflowClient().search_model_versions(f"name = '{tracking.registered_model}'")
    return sorted((v.version, v.tags.get("round")) for v in versions)


def _sent(settings) -> pd.Series:
    return pd.read_parquet(Path(settings.project.work_dir) / "annotation" / "simulated.parquet")[
        "id"
    ]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    root = _project(tmp_path_factory.mktemp("uninterrupted"))
    (root / "run.out").write_text(_finish(_start(root, None)), encoding="utf-8")
    return root


def test_the_run_summary_file_holds_the_numbers_the_table_prints(uninterrupted):
    """run_summary.json (what scripts read, e.g. benchmarks/run_gain.py) says what the table
    says: the stopping rule, the labels, the champion's and the random baseline's scores."""
    summary = json.loads((uninterrupted / ".labelwise" / "run_summary.json").read_text())
    out = " ".join((uninterrupted / "run.out").read_text(encoding="utf-8").split())
    assert summary["status"] == "stopped" and summary["rule"] == "max_rounds"
    assert summary["n_labels"] == 20 + 3 * 10  # the seed labels, then 3 rounds of 10
    assert summary["last_round"]["round"] == 3
    assert summary["last_round"]["n_labels"] == summary["n_labels"]
    base = summary["random_baseline"]
    assert base["budget"] == summary["n_labels"] and base["metric"] == summary["metric"]
    assert f"champion {summary['metric']} (holdout) │ {summary['champion_score']:.4f}" in out
    assert f"at {base['budget']} labels │ {base['score']:.4f} (mean of {base['repeats']}" in out


def test_a_run_killed_at_five_points_ends_as_an_uninterrupted_run(uninterrupted, tmp_path):
    root = _project(tmp_path / "killed")
    logs = root / ".labelwise" / "logs"
    for point in KILL_POINTS:
        process = _start(root, point)
        _wait_reached(process, root, point)
        _kill_group(process)
    out = _finish(_start(root, None))
    assert "3 round(s) done" in out, out

    # every rerun after a kill inside a round took the dead run's slot over, by its process
    takeovers = [
        line
        for log in sorted(logs.glob("run-*.log"))
        for line in log.read_text(encoding="utf-8").splitlines()
        if "taking over the round slot" in line
    ]
    assert len(takeovers) == len(KILL_POINTS) - 1, takeovers
    assert all("is gone" in line for line in takeovers)

    want, got = _settings(uninterrupted), _settings(root)
    pd.testing.assert_frame_equal(_labels(got), _labels(want))
    for ours, theirs in zip(_manifests(got), _manifests(want), strict=True):
        pd.testing.assert_frame_equal(ours, theirs)
    assert versioning.tags(got) == versioning.tags(want) == ["round-1", "round-2", "round-3"]
    at_want = _labels_at_tags(want)
    for tag, frame in _labels_at_tags(got).items():
        pd.testing.assert_frame_equal(frame, at_want[tag])
    runs_got, runs_want = _round_runs(got), _round_runs(want)
    assert len(runs_got) == 3 and set(runs_got["status"]) == {"FINISHED"}
    pd.testing.assert_frame_equal(runs_got, runs_want)
    assert _model_versions(got) == _model_versions(want)  # no version registered twice
    sent = _sent(got)
    assert not sent.duplicated().any() and set(sent) == set(_sent(want))
    assert rounds.unfinished_round(got) is None


def _serve(root: Path, api: str, point: str | None) -> subprocess.Popen:
    labelwise = Path(sys.executable).parent / "labelwise"
    name = f"serve-{point or 'clean'}.out".replace("/", "_")
    env = _env(root, point) | {"PREFECT_API_URL": api}
    return subprocess.Popen(
        [str(labelwise), "serve"],
        cwd=root,
        env=env,
        stdout=open(root / name, "w"),
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _trigger(url: str, name: str, timeout: float = 300.0) -> str:
    """Start a run of deployment ``name`` once the server knows it; returns the run's id."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL, temporary_settings

    deadline = time.monotonic() + timeout
    with temporary_settings({PREFECT_API_URL: url}), get_client(sync_client=True) as client:
        while True:
            try:
                deployment = client.read_deployment_by_name(name)
                break
            except ObjectNotFound:
                if time.monotonic() > deadline:
                    pytest.fail(f"deployment {name} not served within {timeout:.0f} s")
                time.sleep(1)
        return str(client.create_flow_run_from_deployment(deployment.id).id)


def _final_state(url: str, run_id: str, timeout: float = 600.0):
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    deadline = time.monotonic() + timeout
    with temporary_settings({PREFECT_API_URL: url}), get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            state = client.read_flow_run(UUID(run_id)).state
            if state is not None and state.is_final():
                return state
            time.sleep(1)
    pytest.fail(f"flow run {run_id} did not finish within {timeout:.0f} s")


@pytest.fixture
def prefect_server(tmp_path):
    """A Prefect server of the test's own (it outlives the killed worker, as a real one would)."""
    from flows.runtime.services import start_prefect, stop, wait_healthy
    from tasks.annotation.server import free_port

    server = start_prefect(tmp_path / "prefect-server", free_port())
    try:
        wait_healthy([server], 180)
        yield f"{server.url}/api"
    finally:
        stop(server)


def test_a_served_run_killed_with_its_worker_is_taken_over_by_the_next_trigger(
    uninterrupted, tmp_path, prefect_server
):
    root = _project(tmp_path / "served")
    params = {**PARAMS, "serve": {"cron": None, "heartbeat_seconds": None, "rounds_per_run": 1}}
    (root / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    point, deployment = "round-0001/during:dispatch", "labelwise-loop/it-kill"
    served = _serve(root, prefect_server, point)
    try:
        _trigger(prefect_server, deployment)
        run_pid = _wait_reached(served, root, point)
    finally:
        _kill_group(served, *([run_pid] if "run_pid" in locals() else []))

    served = _serve(root, prefect_server, None)  # a new worker; the dead run holds the slot
    try:
        state = _final_state(prefect_server, _trigger(prefect_server, deployment))
    finally:
        served.send_signal(signal.SIGINT)
        served.wait(timeout=120)
    assert state.is_completed() and state.name == "Completed", state  # not Skipped
    settings, want = _settings(root), _settings(uninterrupted)
    assert rounds.load_round(settings, 1).status == "complete"
    expected = _labels(want).query("round <= 1").reset_index(drop=True)
    pd.testing.assert_frame_equal(_labels(settings), expected)
    pd.testing.assert_frame_equal(store.read_manifest(settings, 1), _manifests(want)[1])
    sent = _sent(settings)
    assert not sent.duplicated().any() and len(sent) == len(expected)
