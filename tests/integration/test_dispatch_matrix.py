"""Every strategy family dispatches a batch to every annotation backend and gets it back.

One round's select -> dispatch -> (people answer) -> collect, as plain steps, for each strategy
family (uncertainty, committee, density, hybrid in and out of its cold start, core-set,
representative, the random-fraction guard, and a cold project with no labels at all) and each
backend: the simulated annotators, the files backend (an answer file written as a team would)
and a real Label Studio server (answers submitted through its API). Picks without a per-row
score must reach every backend (NaN has no JSON form) and come back labeled.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.data import store
from tasks.loop import demo as project
from tasks.loop import labeling
from tasks.settings import Settings
from tests.conftest import project_settings
from tests.integration import label_studio_client as ls

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DIGITS = [str(i) for i in range(10)]
BATCH = 8
STRATEGIES = {
    "uncertainty": {"name": "margin"},
    "committee": {"name": "qbc_vote_entropy"},
    "density": {"name": "density_weighted"},
    "hybrid-cold-start": {"name": "hybrid"},  # 20 labels, 10 classes: below 10 per class
    "hybrid": {"name": "hybrid", "params": {"cold_start": 0}},
    "coreset": {"name": "coreset"},
    "representative": {"name": "representative"},
    "random-fraction-guard": {"name": "margin", "random_fraction": 0.5},
    "cold-project": {"name": "margin"},  # no labels at all: cold-start picks
}
UNSCORED = {"hybrid-cold-start", "representative", "cold-project"}


def _sections(initial: int) -> dict[str, dict]:
    """The digits demo, 250 rows, ``initial`` of them labeled."""
    return {
        "project": {"name": "it-matrix", "seed": 4},
        "data": {"classes": DIGITS},
        "loop": {"demo_rows": 250, "initial_labels": initial, "stop_set_size": 0},
    }


@pytest.fixture(scope="module")
def templates(tmp_path_factory) -> dict[str, Path]:
    """Two seeded projects to copy: 20 seed labels, and none (a cold project)."""
    out = {}
    for name, initial in (("seeded", 20), ("cold", 0)):
        root = tmp_path_factory.mktemp(f"template-{name}")
        project.seed_project(project_settings(root, **_sections(initial)))
        out[name] = root
    return out


def _project(make_settings, templates, tmp_path: Path, case: str, backend: str) -> Settings:
    template = templates["cold" if case == "cold-project" else "seeded"]
    root = tmp_path / "project"
    shutil.copytree(template, root, symlinks=True)
    sections = _sections(0 if case == "cold-project" else 20)
    sections["strategy"] = {"batch_size": BATCH, **STRATEGIES[case]}
    annotation: dict = {"backend": backend}
    if backend == "label_studio":
        annotation |= {
            "label_config": "tabular_classification",
            "project_title": f"labelwise matrix {case}",
        }
    if backend == "files":
        annotation["files_dir"] = str(root / "team")
    sections["annotation"] = annotation
    return make_settings(root, **sections)


def _truth(settings: Settings) -> dict[str, str]:
    frame = pd.read_parquet(labeling.truth_path(settings))
    return dict(zip(frame["id"], frame["label"], strict=True))


def _answer(settings: Settings, backend: str, manifest: pd.DataFrame, label_studio) -> None:
    """What the annotators do once the batch reached them."""
    truth = _truth(settings)
    if backend == "files":
        outbox = sorted((Path(settings.annotation.files_dir) / "outbox").glob("round-0001*"))
        sent = pd.concat([pd.read_csv(p, dtype=str) for p in outbox])
        assert sorted(sent["id"]) == sorted(manifest["id"])
        inbox = Path(settings.annotation.files_dir) / "inbox"
        inbox.mkdir(parents=True, exist_ok=True)
        answers = pd.DataFrame(
            {"id": sent["id"], "label": sent["id"].map(truth), "annotator": "ann@team"}
        )
        answers.to_csv(inbox / "answers.csv", index=False)
    elif backend == "label_studio":
        backend_ = labeling.make_backend(settings)
        tasks = ls.tasks(label_studio, backend_.project_id)
        assert sorted(t["data"]["lw_id"] for t in tasks) == sorted(manifest["id"])
        ranks = dict(zip(manifest["id"], manifest["rank"], strict=True))
        for task in tasks:
            data = task["data"]
            assert data["lw_rank"] == ranks[data["lw_id"]]
            if data["lw_score"] is not None:
                assert np.isfinite(data["lw_score"])
            ls.annotate(label_studio, task["id"], ls.choice(truth[data["lw_id"]], "row"))


@pytest.mark.parametrize("backend", ["simulated", "files", "label_studio"])
@pytest.mark.parametrize("case", list(STRATEGIES))
def test_every_strategy_family_dispatches_a_batch_and_collects_it(
    case, backend, templates, tmp_path, request, monkeypatch, make_settings
):
    label_studio = None
    if backend == "label_studio":
        label_studio = request.getfixturevalue("label_studio")
        monkeypatch.setenv("LABEL_STUDIO_URL", label_studio.url)
        monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio.token)
    monkeypatch.chdir(tmp_path)
    settings = _project(make_settings, templates, tmp_path, case, backend)
    before = store.read_labels(settings)

    labeling.select(settings, 1)
    manifest = store.read_manifest(settings, 1)
    assert len(manifest) == BATCH and not manifest["id"].duplicated().any()
    assert not manifest["id"].isin(set(before["id"])).any()
    scores = manifest["score"].to_numpy(dtype=float)
    assert not np.isinf(scores).any()
    if case in UNSCORED:
        assert np.isnan(scores).all()  # stored as null: these picks have no per-row score
    if case == "cold-project":
        assert set(manifest["source"]) == {"cold_start"}
    if case == "random-fraction-guard":
        assert set(manifest["source"]) == {"margin", "random"}

    labeling.dispatch(settings, 1)
    _answer(settings, backend, manifest, label_studio)
    state = labeling.collect(settings, 1)

    assert state.done("collected") and state.info["n_labeled"] == BATCH
    labels = store.read_labels(settings)
    new = labels[~labels["id"].isin(set(before["id"]))]
    assert sorted(new["id"]) == sorted(manifest["id"])
    truth = _truth(settings)
    assert (new["label"] == new["id"].map(truth)).all()
    pd.testing.assert_frame_equal(labels.iloc[: len(before)], before)  # nothing old changed
