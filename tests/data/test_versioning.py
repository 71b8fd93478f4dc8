"""DVC versions of the data: a round per git tag, restored byte for byte, and ``dvc repro``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from tasks.data import store, versioning
from tasks.data.ingest import ingest
from tasks.data.labels import collect_labels
from tests.data.conftest import good_rows

pytestmark = [
    pytest.mark.data,
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:_NoneStep.value:DeprecationWarning"),  # inside DVC 3.67
]

ROOT = Path(__file__).resolve().parents[2]
FILES = ("pool.parquet", "labels.parquet", "holdout.parquet")


@pytest.fixture(autouse=True)
def no_git_config(tmp_path_factory, monkeypatch):
    """Like CI: no global git identity, so the code must bring its own."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / "gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in (
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "GIT_COMMITTER_NAME",
        "GIT_COMMITTER_EMAIL",
    ):
        monkeypatch.delenv(name, raising=False)


def _state(project) -> dict[str, bytes | None]:
    root = Path(project.project.data_dir)
    files = {n: (root / n).read_bytes() if (root / n).exists() else None for n in FILES}
    for folder in ("manifests", "validation"):
        for path in sorted((root / folder).glob("*")):
            files[f"{folder}/{path.name}"] = path.read_bytes()
    return files


def _play_round(project, round_: int) -> None:
    pool = store.read_pool(project)
    labeled = set(store.read_labels(project)["id"])
    todo = [i for i in pool["id"] if i not in labeled][:2]
    collect_labels(
        pd.DataFrame({"id": todo, "label": ["cat", "dog"], "annotator": f"ann{round_}"}),
        project,
        round_=round_,
    )
    nxt = [i for i in pool["id"] if i not in labeled | set(todo)][:2]
    store.write_manifest(project, round_, nxt, [0.9, 0.8], strategy="margin", model_version="m1")


@pytest.fixture
def three_rounds(project):
    good_rows(10).to_csv("pool.csv", index=False)
    ingest("pool.csv", project)
    states = {}
    for round_ in (1, 2, 3):
        if round_ == 2:  # the holdout appears only from round 2 on
            holdout = good_rows(2, start=50).assign(label=["cat", "dog"])
            holdout.to_csv("holdout.csv", index=False)
            ingest("holdout.csv", project, holdout=True)
        _play_round(project, round_)
        assert versioning.commit_round(project, round_) == f"round-{round_}"
        states[round_] = _state(project)
    return project, states


def test_checkout_restores_round_1_byte_for_byte_after_round_3(three_rounds):
    project, states = three_rounds
    assert versioning.tags(project) == ["round-1", "round-2", "round-3"]
    assert states[1]["labels.parquet"] != states[3]["labels.parquet"]
    versioning.checkout(project, 1)
    assert _state(project) == states[1]  # labels, pool, manifests, summaries; no holdout yet
    assert not Path("data/holdout.parquet").exists()
    assert len(store.read_labels(project)) == 2
    versioning.checkout(project, 3)
    assert _state(project) == states[3]


def test_checkout_pulls_from_the_remote_when_the_cache_is_gone(three_rounds):
    project, states = three_rounds
    remote = Path(".labelwise/dvc-remote")
    assert remote.is_dir() and any(remote.rglob("*"))
    shutil.rmtree("data/.dvc/cache")
    versioning.checkout(project, 2)
    assert _state(project) == states[2]


def test_checkout_refuses_to_discard_uncommitted_labels(three_rounds):
    project, states = three_rounds
    _play_round(project, 4)
    labels = Path("data/labels.parquet").read_bytes()
    with pytest.raises(versioning.VersioningError, match=r"labels\.parquet.*changed"):
        versioning.checkout(project, 1)
    assert Path("data/labels.parquet").read_bytes() == labels
    versioning.checkout(project, 1, force=True)
    assert _state(project) == states[1]


def test_a_round_tag_is_never_silently_moved(three_rounds):
    project, _ = three_rounds
    with pytest.raises(versioning.VersioningError, match="round-3 already exists"):
        versioning.commit_round(project, 3)
    with pytest.raises(versioning.VersioningError, match="no data version round-9"):
        versioning.checkout(project, 9)


def test_cli_checkout(three_rounds):
    from flows.cli import app

    _, states = three_rounds
    Path("params.yaml").write_text("project:\n  data_dir: data\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["checkout", "1"])
    assert result.exit_code == 0, result.output
    assert "restored to round-1" in result.output
    assert Path("data/labels.parquet").read_bytes() == states[1]["labels.parquet"]
    missing = CliRunner().invoke(app, ["checkout", "7"])
    assert missing.exit_code == 1 and "no data version round-7" in missing.output


def test_dvc_repro_runs_on_a_fresh_copy(tmp_path):
    work = tmp_path / "clone"
    work.mkdir()
    for name in ("tasks", "strategies", "flows"):
        shutil.copytree(ROOT / name, work / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("params.yaml", "dvc.yaml"):
        shutil.copy(ROOT / name, work / name)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(work),
    }

    def run(*args: str) -> str:
        proc = subprocess.run(args, cwd=work, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    run("git", "init", "-q")
    run("dvc", "init", "-q")
    run("dvc", "repro")
    metrics = pd.read_json(work / "artifacts/pipeline/metrics.json", typ="series")
    assert 0.3 < metrics["accuracy"] <= 1.0  # digits, 2 labels per class, logistic regression
    assert (work / "data/pool.parquet").exists() and (work / "dvc.lock").exists()
    again = run("dvc", "repro")
    assert "Stage 'train' didn't change, skipping" in again
