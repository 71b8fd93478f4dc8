"""Labeling functions beside the human annotators, through the real loop flow (Prefect's test
harness, MLflow on SQLite, simulated annotators on SMS spam): weak labels are stored apart from
the human label log and the holdout, training uses them, the strategy asks where the functions
are silent or split, each round logs the functions' report, ``labelwise lf-report`` prints it,
and a broken function stops the round with its name while every label collected stays."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from flows.cli import app
from tasks.data import store
from tasks.loop import demo as project
from tasks.loop import rounds
from tasks.weak.rounds import read_weak_labels
from tests.conftest import project_settings

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.usefixtures("prefect_harness"),
]

ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = ROOT / "benchmarks" / "labeling_functions" / "sms_spam.py"
BATCH, SEEDS = 10, 30


def _sections(**weak) -> dict:
    return {
        "project": {"name": "it-weak", "seed": 3},
        "strategy": {"name": "weak_disagreement", "batch_size": BATCH},
        "weak": {"module": str(FUNCTIONS), **weak},
        "loop": {
            "dataset": "sms_spam",
            "max_rounds": 2,
            "demo_rows": 600,
            "initial_labels": SEEDS,
            "stop_set_size": 20,
        },
    }


@pytest.fixture(scope="module")
def weak_loop(tmp_path_factory, prefect_harness):
    from flows.loop import loop_flow

    root = tmp_path_factory.mktemp("weak")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        settings = project_settings(root, **_sections())
        project.seed_project(settings)
        loop_flow(settings)
    return root, settings


def test_weak_labels_are_stored_apart_and_trained_on(weak_loop):
    _, settings = weak_loop
    log = store.read_labels(settings)
    assert log.groupby("round").size().to_dict() == {0: SEEDS, 1: BATCH, 2: BATCH}
    assert "weak" not in set(log["annotator"].astype(str))  # never in the human label log
    weak = read_weak_labels(settings)
    assert len(weak) > 50 and set(weak["source"]) == {"weak"}
    assert set(weak["round"]) == {2} and set(weak["label_model"]) == {"dawid_skene"}
    assert not set(weak["id"]) & set(log["id"])  # only items no human labeled
    assert not set(weak["id"]) & set(store.read_holdout(settings)["id"])  # never the holdout
    assert weak["probability"].between(0.5, 1.0).all()
    for n in (1, 2):
        info = rounds.load_round(settings, n).info
        assert info["weak"]["n_trained_weak"] > 0
        assert info["n_trained"] == info["n_labels"] + info["weak"]["n_trained_weak"]
        names = [f["function"] for f in info["weak"]["functions"]]
        assert names[:2] == ["prize_words", "offer_words"] and len(names) == 8


def test_the_strategy_asks_where_the_functions_are_silent_or_split(weak_loop):
    from strategies.weak import vote_disagreement
    from tasks.weak.rounds import weak_votes

    _, settings = weak_loop
    pool = store.read_pool(settings)
    manifest = store.read_manifest(settings, 2)
    assert set(manifest["source"]) <= {"weak_disagreement", "random"}
    log = store.read_labels(settings)
    before = log[log["round"] < 2].drop_duplicates("id")[["id", "label"]]
    votes = weak_votes(settings, pool, before).votes
    score = pd.Series(vote_disagreement(votes.matrix, 2), index=votes.ids)
    picked = score[manifest.loc[manifest["source"] != "random", "id"]]
    eligible = score[
        ~score.index.isin(set(before["id"]) | set(store.read_manifest(settings, 1)["id"]))
    ]
    # half the score is the votes' disagreement: the picks are far more unsettled than the pool
    assert picked.mean() > eligible.mean() + 0.2


def test_each_round_logs_the_functions_report_to_mlflow(weak_loop):
    from tasks.tracking.runs import setup_tracking

    _, settings = weak_loop
    tracking = setup_tracking(settings)
    runs = mlflow.search_runs(
        [tracking.experiment_id], filter_string="tags.`labelwise.kind` = 'round'"
    )
    assert len(runs) == 2
    assert runs["metrics.weak.coverage"].between(0.2, 1.0).all()
    assert runs["metrics.weak.prize_words.coverage"].notna().all()
    assert runs["metrics.weak.n_labels"].gt(0).all()
    run_id = runs.sort_values("metrics.round" if "metrics.round" in runs else "start_time").iloc[
        -1
    ]["run_id"]
    names = [a.path for a in mlflow.MlflowClient().list_artifacts(run_id, "weak")]
    assert any(n.startswith("weak/lf_report_round_") for n in names)


def test_lf_report_prints_every_function_and_writes_json(weak_loop, monkeypatch):
    root, settings = weak_loop
    monkeypatch.chdir(root)
    params = root / "params.yaml"
    params.write_text(yaml.safe_dump(settings.model_dump(mode="json")))
    out = root / "report.json"
    result = CliRunner().invoke(app, ["lf-report", "--params", str(params), "--json", str(out)])
    assert result.exit_code == 0, result.output
    for name in ("prize_words", "chatty", "short_personal"):
        assert name in result.output
    report = json.loads(out.read_text())
    assert len(report["functions"]) == 8
    assert report["n_weak_labels"] > 0
    human = {f["function"]: f for f in report["functions"]}
    assert human["premium_number"]["n_human"] >= 0 and human["chatty"]["polarity"] == "ham"


def test_a_broken_function_stops_the_round_by_name_and_loses_no_label(tmp_path, monkeypatch):
    from flows.loop import loop_flow
    from tasks.weak.functions import LabelingFunctionError

    monkeypatch.chdir(tmp_path)
    broken = tmp_path / "lfs.py"
    broken.write_text(
        "import labelwise\n\n"
        "@labelwise.labeling_function(label='spam')\n"
        "def needs_subject(row):\n"
        "    return 'win' in row.subject\n"  # no column 'subject': raises on every item
    )
    sections = _sections()
    sections["weak"] = {"module": str(broken)}
    sections["strategy"] = {"name": "hybrid", "batch_size": BATCH}
    sections["loop"]["max_rounds"] = 1
    settings = project_settings(tmp_path, **sections)
    project.seed_project(settings)
    with pytest.raises(
        LabelingFunctionError, match=r"'needs_subject' raised on every item.*subject"
    ):
        loop_flow(settings)
    kept = store.read_labels(settings)
    assert kept.groupby("round").size().to_dict() == {0: SEEDS, 1: BATCH}  # collected, kept
    # the user fixes the function; the next run resumes the round at its training step
    broken.write_text(
        "import labelwise\n\n"
        "@labelwise.labeling_function(label='spam')\n"
        "def needs_subject(row):\n"
        "    return 'win' in row.text\n"
    )
    loop_flow(settings)
    state = rounds.load_round(settings, 1)
    assert state.status == "complete" and state.info["trained"] is True
    assert store.read_labels(settings).groupby("round").size().to_dict() == {0: SEEDS, 1: BATCH}
