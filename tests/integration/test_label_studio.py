"""The Label Studio backend against a real server that this test session installs and starts.

The server lives in its own venv (cached in ``~/.cache/labelwise/label-studio-venv`` or
``$LABELWISE_LS_VENV``, installed on first use, ~1-3 min) with one data dir for the session
(first start: migrations, 30-110 s). Skipped, loudly, only if Label Studio cannot be installed.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.annotation import store_annotations
from tasks.annotation.label_studio import VIEW_TITLE, LabelStudioBackend
from tasks.settings import Settings
from tests.integration.label_studio_client import api

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CLASSES = ["neg", "pos"]


_projects = iter(range(1, 1000))


@pytest.fixture
def backend(label_studio) -> LabelStudioBackend:
    return LabelStudioBackend(
        url=label_studio.url,
        token=label_studio.token,
        classes=CLASSES,
        project_title=f"labelwise test {next(_projects)}",
        retry_seconds=120.0,
    )


def choose(label: str) -> list[dict]:
    return [
        {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [label]}}
    ]


def annotate_next(server, backend, label: str) -> dict:
    """What a person does: open the next task the project serves, pick a label, submit."""
    task = api(server, "GET", f"/api/projects/{backend.project_id}/next")
    api(server, "POST", f"/api/tasks/{task['id']}/annotations", json={"result": choose(label)})
    return task


def make_batch(n: int, round_: int = 1) -> pd.DataFrame:
    """Rank 1 = most informative; its model confidence is deliberately NOT the lowest, so serving
    by raw confidence would pick the wrong task."""
    ids = [f"item-{round_}-{i}" for i in range(n)]
    return pd.DataFrame(
        {
            "id": ids,
            "round": round_,
            "rank": np.arange(1, n + 1),
            "score": np.linspace(0.9, 0.1, n),
            "prediction": ["pos" if i % 2 else "neg" for i in range(n)],
            "prediction_score": np.roll(np.linspace(0.5, 0.95, n), 1),
            "text": [f"review number {i}" for i in range(n)],
        }
    ).sample(frac=1.0, random_state=0)  # the order rows arrive in must not matter


def settings_for(tmp_path: Path, ids) -> Settings:
    from tasks.data import store

    settings = Settings.model_validate(
        {
            "project": {"work_dir": str(tmp_path / "work"), "data_dir": str(tmp_path / "data")},
            "data": {"classes": CLASSES},
        }
    )
    store.append_pool(
        settings,
        pd.DataFrame(
            {
                "id": list(ids),
                "ingest_batch": 1,
                "first_seen": pd.Timestamp("2026-01-01", tz="UTC"),
                "text": "x",
            }
        ),
    )
    return settings


def test_dispatch_annotate_collect_puts_labels_in_the_store(label_studio, backend, tmp_path):
    from tasks.data.store import read_labels

    batch = make_batch(4)
    settings = settings_for(tmp_path, batch["id"])
    assert sorted(backend.dispatch(batch, 1)) == sorted(batch["id"])
    project = api(label_studio, "GET", f"/api/projects/{backend.project_id}")
    assert project["model_version"] == "round-1"
    assert project["sampling"] == "Uncertainty sampling"
    tasks = backend.tasks()
    assert all(t["predictions"][0]["model_version"] == "round-1" for t in tasks)

    first = annotate_next(label_studio, backend, "pos")
    second = annotate_next(label_studio, backend, "neg")
    other = api(
        label_studio, "POST", "/api/users", json={"email": "ann2@example.org", "username": "ann2"}
    )
    api(
        label_studio,
        "POST",
        f"/api/tasks/{first['id']}/annotations",
        json={"result": choose("neg"), "completed_by": other["id"]},
    )

    collected = backend.collect(1)
    assert len(collected) == 3
    got = set(zip(collected["id"], collected["label"], collected["annotator"], strict=True))
    assert got == {
        (first["data"]["lw_id"], "pos", label_studio.username),
        (second["data"]["lw_id"], "neg", label_studio.username),
        (first["data"]["lw_id"], "neg", "ann2@example.org"),
    }
    assert backend.progress(1).annotated == 2 and backend.progress(1).dispatched == 4

    assert len(store_annotations(collected, settings, round_=1)) == 3
    assert len(store_annotations(backend.collect(1), settings, round_=1)) == 0  # no duplicates
    stored = read_labels(settings)
    assert len(stored) == 3 and set(stored["source"]) == {"human"}
    assert set(stored["id"]) == {first["data"]["lw_id"], second["data"]["lw_id"]}


def test_redispatch_is_a_no_op(backend):
    batch = make_batch(3)
    assert len(backend.dispatch(batch, 1)) == 3
    assert backend.dispatch(batch, 1) == []
    assert len(backend.tasks()) == 3
    bigger = pd.concat([batch, make_batch(1, round_=2).assign(round=1, rank=4)])
    assert backend.dispatch(bigger, 1) == ["item-2-0"]
    assert len(backend.tasks()) == 4


def test_next_task_served_is_the_most_informative(label_studio, backend):
    batch = make_batch(5)
    backend.dispatch(batch, 1)
    by_rank = batch.sort_values("rank")["id"].tolist()
    served = [annotate_next(label_studio, backend, "pos")["data"]["lw_id"] for _ in range(3)]
    assert served == by_rank[:3]
    # a new round: the project follows the new model version, and its top item comes first
    round2 = make_batch(4, round_=2)
    backend.dispatch(round2, 2, model_version="model-v2")
    assert (
        api(label_studio, "GET", f"/api/projects/{backend.project_id}")["model_version"]
        == "model-v2"
    )
    assert backend.next_task()["data"]["lw_id"] == round2.sort_values("rank")["id"].iloc[0]
    # the Data Manager view orders by informativeness (the strategy's score, highest first)
    views = api(label_studio, "GET", "/api/dm/views", params={"project": backend.project_id})
    view = next(v for v in views if v["data"]["title"] == VIEW_TITLE)
    listed = api(
        label_studio,
        "GET",
        "/api/tasks",
        params={"project": backend.project_id, "view": view["id"]},
    )["tasks"]
    scores = [t["data"]["lw_score"] for t in listed]
    assert scores == sorted(scores, reverse=True)


def test_ner_and_tabular_projects_round_trip_spans_and_rows(label_studio):
    common = {"url": label_studio.url, "token": label_studio.token, "retry_seconds": 60.0}
    ner = LabelStudioBackend(
        **common, classes=["PER", "ORG"], kind="ner", project_title="labelwise ner"
    )
    text = "Ada Lovelace met Babbage at Analytical Engines Ltd"
    batch = pd.DataFrame(
        {
            "id": ["doc-1"],
            "round": 1,
            "rank": [1],
            "score": [0.7],
            "prediction": [json.dumps([{"start": 0, "end": 12, "label": "PER"}])],
            "text": [text],
        }
    )
    ner.dispatch(batch, 1)
    task = ner.tasks()[0]
    assert task["predictions"][0]["result"][0]["value"]["text"] == "Ada Lovelace"
    spans = [(0, 12, "PER"), (28, 50, "ORG")]
    result = [
        {
            "from_name": "label",
            "to_name": "text",
            "type": "labels",
            "value": {"start": s, "end": e, "text": text[s:e], "labels": [lab]},
        }
        for s, e, lab in reversed(spans)
    ]
    api(label_studio, "POST", f"/api/tasks/{task['id']}/annotations", json={"result": result})
    label = ner.collect(1)["label"].item()
    assert json.loads(label) == [{"start": s, "end": e, "label": lab} for s, e, lab in spans]

    tabular = LabelStudioBackend(
        **common, classes=CLASSES, kind="tabular_classification", project_title="labelwise tab"
    )
    rows = pd.DataFrame(
        {
            "id": ["r1"],
            "round": 1,
            "rank": [1],
            "score": [0.3],
            "age": [np.int64(41)],
            "bmi": [27.5],
        }
    )
    tabular.dispatch(rows, 1)
    assert tabular.tasks()[0]["data"]["row"] == {"age": 41, "bmi": 27.5}
    config = api(label_studio, "GET", f"/api/projects/{tabular.project_id}")["label_config"]
    assert '<Table name="row" value="$row"/>' in config


def test_request_more_raises_the_task_overlap(label_studio, backend):
    backend.dispatch(make_batch(2), 1)
    before = {t["data"]["lw_id"]: t["overlap"] for t in backend.tasks()}
    backend.request_more(["item-1-0"])
    after = {t["data"]["lw_id"]: t["overlap"] for t in backend.tasks()}
    assert after == {**before, "item-1-0": before["item-1-0"] + 1}


def test_webhook_wakes_the_poller_but_polling_alone_finds_everything(label_studio, backend):
    from tasks.annotation.base import WebhookListener, wait_for

    backend.dispatch(make_batch(2), 1)
    with WebhookListener() as listener:
        backend.register_webhook(listener.url)
        assert backend.register_webhook(listener.url) == backend.register_webhook(listener.url)
        annotate_next(label_studio, backend, "pos")
        assert listener.event.wait(15), "Label Studio did not call the webhook"
        listener.event.clear()
        done = threading.Timer(1.0, lambda: annotate_next(label_studio, backend, "neg"))
        done.start()
        start = time.monotonic()
        progress = wait_for(backend, 1, timeout=120, poll_seconds=60, wake=listener.event)
        done.join()
        assert progress.fraction == 1.0 and time.monotonic() - start < 30
    # the listener is gone: annotations made now are still found by polling
    backend.request_more(["item-1-0"])
    assert len(backend.collect(1)) == 2


def _task_run_states(flow_run_id, task_name: str) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
        [run] = [r for r in runs if r.name.startswith(task_name)]
        return client.read_task_run_states(run.id)


# it stops and restarts the session's server
def test_label_studio_down_a_round_retries_with_backoff_then_fails_clearly_and_resumes(
    label_studio, tmp_path, monkeypatch, prefect_harness
):
    from flows.round import round_flow
    from tasks.data import store
    from tasks.loop import demo as project
    from tasks.loop import rounds

    monkeypatch.chdir(tmp_path)
    digits = [str(i) for i in range(10)]
    common = {
        "project": {
            "name": "it-ls-down",
            "work_dir": str(tmp_path / ".labelwise"),
            "data_dir": str(tmp_path / "data"),
            "seed": 3,
        },
        "data": {"classes": digits},
        "strategy": {"name": "margin", "batch_size": 5},
        "monitor": {"enabled": False},
        "versioning": {"enabled": False},
        "loop": {"demo_rows": 200, "initial_labels": 20, "stop_set_size": 0},
    }
    project.seed_project(Settings.model_validate(common))  # round 0 by the simulated oracle
    settings = Settings.model_validate(
        common
        | {
            "annotation": {
                "backend": "label_studio",
                "label_config": "tabular_classification",
                "project_title": "labelwise it-ls-down",
                "request_retry_seconds": 2,
                "retries": 2,
                "retry_delay_seconds": 1,
            }
        }
    )
    monkeypatch.setenv("LABEL_STUDIO_URL", label_studio.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio.token)
    labels_before = store.read_labels(settings)

    label_studio.stop()
    try:
        state = round_flow(settings, 1, return_state=True)
    finally:
        label_studio.start(timeout=300)
    assert state.is_failed() and state.name == "AnnotationBackendDown", state
    assert "dispatch failed 3 times" in state.message and label_studio.url in state.message
    assert label_studio.token not in state.message
    # each try is a state of the dispatch task in the UI: two AwaitingRetry, 1 s then 2 s
    waits = [s for s in _task_run_states(state.state_details.flow_run_id, "dispatch")]
    awaiting = [s for s in waits if s.name == "AwaitingRetry"]
    delays = [(s.state_details.scheduled_time - s.timestamp).total_seconds() for s in awaiting]
    assert [round(d) for d in delays] == [1, 2]
    assert waits[-1].is_failed()
    stopped = rounds.load_round(settings, 1)
    assert stopped.done("selected") and not stopped.done("dispatched")
    pd.testing.assert_frame_equal(store.read_labels(settings), labels_before)

    selected = sorted(store.read_manifest(settings, 1)["id"])
    result = round_flow(settings, 1)  # Label Studio is back: the round goes on from dispatch
    assert result.status == "waiting"  # the batch is with the annotators
    assert sorted(store.read_manifest(settings, 1)["id"]) == selected  # not selected again
    backend = LabelStudioBackend(
        url=label_studio.url,
        token=label_studio.token,
        classes=digits,
        project_title="labelwise it-ls-down",
    )
    tasks = api(label_studio, "GET", f"/api/tasks?project={backend.project_id}&page_size=100")
    items = tasks["tasks"] if isinstance(tasks, dict) else tasks
    assert sorted(t["data"]["lw_id"] for t in items) == selected


# last: it stops and restarts the session's server
def test_server_stopped_mid_collect_then_restarted_loses_nothing(label_studio, backend):
    batch = make_batch(4)
    backend.dispatch(batch, 1)
    before = {annotate_next(label_studio, backend, "neg")["data"]["lw_id"] for _ in range(2)}

    label_studio.stop()  # SIGTERM
    assert not label_studio.healthy()
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(rows=backend.collect(1)))
    worker.start()  # collect keeps retrying with backoff while the server is down
    time.sleep(2)
    assert worker.is_alive()
    restart = time.monotonic()
    label_studio.start(timeout=300)
    print(f"\nLabel Studio restart: {time.monotonic() - restart:.0f} s")
    worker.join(timeout=180)
    assert set(result["rows"]["id"]) == before

    after = {annotate_next(label_studio, backend, "pos")["data"]["lw_id"] for _ in range(2)}
    collected = backend.collect(1)
    assert len(collected) == 4 and set(collected["id"]) == before | after == set(batch["id"])
