"""The round and loop flows end to end: Prefect's test harness, a real MLflow SQLite
store, a real DVC data repo, 300 rows of scikit-learn's digits and simulated annotators.

Faults are injected by wrapping a plain function the step calls (the label append of collect,
the promotion at the end of train), so the crash happens after data was written, the hard case.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest

from tasks.annotation.simulated import SimulatedBackend
from tasks.data import store, versioning
from tasks.loop import demo as project
from tasks.loop import labeling, lifecycle, rounds
from tasks.settings import Settings
from tests.conftest import project_settings

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.usefixtures("prefect_harness"),
]

ROUNDS, BATCH, SEED_LABELS = 3, 10, 20


def _sections(**loop: object) -> dict[str, dict]:
    """The digits demo: 300 rows, 20 of them labeled, 3 rounds of 10 margin picks, versioned."""
    return {
        "project": {"name": "it-flows", "seed": 3},
        "strategy": {"name": "margin", "batch_size": BATCH},
        "versioning": {"enabled": True},
        "loop": {
            "max_rounds": ROUNDS,
            "demo_rows": 300,
            "holdout_fraction": 0.25,
            "initial_labels": SEED_LABELS,
            "stop_set_size": 50,
            **loop,
        },
    }


def _labels(settings: Settings) -> pd.DataFrame:
    frame = store.read_labels(settings)[["id", "label", "round", "annotator", "source"]]
    return frame.sort_values(["round", "id"]).reset_index(drop=True)


def _backend_log(settings: Settings) -> pd.DataFrame:
    return pd.read_parquet(Path(settings.project.work_dir) / "annotation" / "simulated.parquet")


def _round_runs(settings: Settings) -> pd.DataFrame:
    from tasks.tracking.runs import setup_tracking

    tracking = setup_tracking(settings)
    return mlflow.search_runs(
        [tracking.experiment_id], filter_string="tags.`labelwise.kind` = 'round'"
    )


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, prefect_harness):
    """Three rounds in one loop run, nothing injected."""
    from flows.loop import loop_flow

    root = tmp_path_factory.mktemp("uninterrupted")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        settings = project_settings(root, **_sections())
        project.seed_project(settings)
        result = loop_flow(settings)
    return settings, result


def test_each_round_adds_a_batch_of_labels_an_mlflow_run_and_a_dvc_version(uninterrupted):
    settings, result = uninterrupted
    assert result.status == "stopped" and result.rule == "max_rounds"
    per_round = _labels(settings).groupby("round").size().to_dict()
    assert per_round == {0: SEED_LABELS, **{r: BATCH for r in range(1, ROUNDS + 1)}}
    assert [r.n_labels for r in result.rounds] == [
        SEED_LABELS + BATCH * r for r in range(1, ROUNDS + 1)
    ]
    runs = _round_runs(settings)
    assert len(runs) == ROUNDS
    assert set(runs["tags.mlflow.parentRunId"]) == {result.mlflow_run_id}
    assert set(runs["status"]) == {"FINISHED"}
    assert versioning.tags(settings) == [f"round-{r}" for r in range(1, ROUNDS + 1)]


def test_rerunning_a_stopped_loop_runs_no_more_rounds(uninterrupted, monkeypatch):
    from flows.loop import loop_flow

    settings, _ = uninterrupted
    monkeypatch.chdir(Path(settings.project.work_dir).parent)
    before = _labels(settings)
    again = loop_flow(settings)
    assert again.status == "stopped" and again.rounds == []
    pd.testing.assert_frame_equal(_labels(settings), before)


def test_crash_in_collect_then_in_train_then_rerun_equals_an_uninterrupted_run(
    uninterrupted, tmp_path, monkeypatch, make_settings
):
    from flows.loop import loop_flow
    from tasks.data import labels as label_gate
    from tasks.model import registry

    reference, _ = uninterrupted
    monkeypatch.chdir(tmp_path)
    settings = make_settings(**_sections())
    project.seed_project(settings)

    handed_over: list[str] = []  # every id any dispatch call hands to the annotators
    real_dispatch = SimulatedBackend.dispatch

    def recording_dispatch(self, batch, round_):
        handed_over.extend(batch["id"])
        return real_dispatch(self, batch, round_)

    monkeypatch.setattr(SimulatedBackend, "dispatch", recording_dispatch)
    real_collect = label_gate.collect_labels

    def collect_then_crash(labels, s, *, round_, file="labels"):
        out = real_collect(labels, s, round_=round_, file=file)
        if round_ == 2:
            raise RuntimeError("injected: crash in collect after the append")
        return out

    monkeypatch.setattr(label_gate, "collect_labels", collect_then_crash)
    with pytest.raises(RuntimeError, match="crash in collect"):
        loop_flow(settings)
    monkeypatch.setattr(label_gate, "collect_labels", real_collect)
    assert rounds.load_round(settings, 2).done("dispatched")
    assert not rounds.load_round(settings, 2).done("collected")

    real_promote = registry.promote_if_better

    def promote_then_crash(*args, **kwargs):
        decision = real_promote(*args, **kwargs)
        if kwargs.get("step") == 2:
            raise RuntimeError("injected: crash in train after registering and promoting")
        return decision

    monkeypatch.setattr(registry, "promote_if_better", promote_then_crash)
    with pytest.raises(RuntimeError, match="crash in train"):
        loop_flow(settings)
    monkeypatch.setattr(registry, "promote_if_better", real_promote)
    assert rounds.load_round(settings, 2).done("collected")
    assert not rounds.load_round(settings, 2).done("trained")

    result = loop_flow(settings)
    assert result.status == "stopped" and [r.round for r in result.rounds] == [2, 3]
    pd.testing.assert_frame_equal(_labels(settings), _labels(reference))
    sent = _backend_log(settings)["id"]
    assert not sent.duplicated().any()
    assert len(handed_over) == len(set(handed_over)) == ROUNDS * BATCH
    assert set(sent) == set(_backend_log(reference)["id"])
    pd.testing.assert_frame_equal(
        lifecycle.dispatch_log(settings)[["round", "rank", "id"]],
        lifecycle.dispatch_log(reference)[["round", "rank", "id"]],
    )
    assert lifecycle.summary(settings) == lifecycle.summary(reference)  # champion and its score
    versions = mlflow.MlflowClient().search_model_versions("name = 'it-flows-model'")
    assert sorted(int(v.version) for v in versions) == [1, 2, 3]  # round 2 registered once
    assert len(_round_runs(settings)) == ROUNDS


class SlowAnnotators(SimulatedBackend):
    """Simulated annotators who have answered only the items in ``released`` so far."""

    released: set[str]

    def collect(self, round_=None):
        done = super().collect(round_)
        return done[done["id"].isin(self.released)].reset_index(drop=True)


def test_a_round_without_its_quorum_waits_and_the_next_run_continues_it(
    tmp_path, monkeypatch, make_settings
):
    from flows.loop import loop_flow

    monkeypatch.chdir(tmp_path)
    settings = make_settings(**_sections(quorum=0.6, max_rounds=1))
    project.seed_project(settings)
    backend = labeling.make_backend(settings)
    slow = SlowAnnotators(backend.truth, backend.classes, backend.state_file, seed=backend.seed)
    slow.released = set(store.read_labels(settings)["id"])
    monkeypatch.setattr(labeling, "make_backend", lambda s: slow)

    state = loop_flow(settings, return_state=True)
    assert state.is_completed() and state.name == "Waiting"
    assert "waiting for labels" in state.message
    assert state.result().status == "waiting"
    waiting = rounds.load_round(settings, 1)
    assert waiting.status == "waiting" and not waiting.done("collected")
    batch = list(store.read_manifest(settings, 1)["id"])
    assert len(batch) == BATCH

    slow.released |= set(batch[:5])  # 50% < quorum: still waiting, the 5 labels are kept
    assert loop_flow(settings).status == "waiting"
    assert (store.read_labels(settings)["round"] == 1).sum() == 5

    slow.released |= set(batch[5:6])  # 60%: the round goes on
    result = loop_flow(settings)
    assert result.status == "stopped" and result.rounds[0].status == "complete"
    assert result.rounds[0].n_labels == SEED_LABELS + 6
    assert not _backend_log(settings)["id"].duplicated().any()
    assert rounds.load_round(settings, 1).info["n_dispatched"] == BATCH
