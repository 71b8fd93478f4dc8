"""Label Studio for every data type, against the real server: texts (sms_spam), images (PNG files
of scikit-learn's digits, made a project by ``labelwise init``'s steps), sentences to tag
(twitter_ner) and numbers (diabetes). Each project goes through one round of the plain steps
(select, dispatch, people answer every task through the API, collect, train), then a second
round's dispatch, once the first round's model is the champion.

What is checked: the labels are in the label log as the loop stores them (NER: the exact tag
lists), the round trained, and the tasks carried what annotators should see: the text, the
sentence, the image as a ``data:`` URI, the table row; no pre-annotation without a champion, the
champion's prediction as one after it (NER: spans that give its tags back).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tasks.annotation.spans import sentence, spans_to_tags, tags_to_spans
from tasks.data import store
from tasks.loop import demo as project
from tasks.loop import labeling, learning, lifecycle
from tasks.settings import Settings
from tests.integration import label_studio_client as ls

pytestmark = [pytest.mark.integration, pytest.mark.slow]

BATCH = 6
Answer = Callable[[dict], list[dict]]


@pytest.fixture
def server(label_studio, monkeypatch, tmp_path):
    monkeypatch.setenv("LABEL_STUDIO_URL", label_studio.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", label_studio.token)
    monkeypatch.chdir(tmp_path)
    return label_studio


def _sections(name: str, label_config: str, **annotation) -> dict[str, dict]:
    return {
        "project": {"name": f"it-types-{name}", "seed": 5},
        "strategy": {"batch_size": BATCH},
        "annotation": {
            "backend": "label_studio",
            "label_config": label_config,
            "project_title": f"labelwise types {name}",
            **annotation,
        },
    }


def _demo(make_settings, name: str, dataset: str, label_config: str, **more) -> Settings:
    """A demo project of ``dataset`` (200 rows, 20 of them labeled) served by Label Studio."""
    sections = _sections(name, label_config, **more.pop("annotation", {}))
    sections["loop"] = {
        "dataset": dataset,
        "demo_rows": 200,
        "initial_labels": 20,
        "stop_set_size": 0,
    }
    settings = make_settings(**sections, **more)
    assert project.seed_project(settings)
    return settings


def _truth(settings: Settings) -> dict[str, str]:
    frame = pd.read_parquet(labeling.truth_path(settings))
    return dict(zip(frame["id"], frame["label"], strict=True))


def _round_tasks(server, settings: Settings, round_: int) -> list[dict]:
    backend = labeling.make_backend(settings)
    return [t for t in ls.tasks(server, backend.project_id) if t["data"]["lw_round"] == round_]


def _first_round(server, settings: Settings, answer: Answer) -> tuple[pd.DataFrame, list[dict]]:
    """Round 1 with every task answered by ``answer(task)``: (the labels it added, its tasks)."""
    before = store.read_labels(settings)
    lifecycle.begin_round(settings, 1)
    labeling.select(settings, 1)
    labeling.dispatch(settings, 1)
    manifest = store.read_manifest(settings, 1)
    tasks = _round_tasks(server, settings, 1)
    assert sorted(t["data"]["lw_id"] for t in tasks) == sorted(manifest["id"])
    assert len(tasks) == BATCH
    assert not any(t["predictions"] for t in tasks)  # no champion yet: nothing to correct
    for task in tasks:
        ls.annotate(server, task["id"], answer(task))

    collected = labeling.collect(settings, 1)
    assert collected.done("collected") and collected.info["n_labeled"] == BATCH
    trained = learning.train(settings, 1)
    assert trained.done("trained") and trained.info["trained"] is True
    assert trained.info["promoted"] and trained.info["n_labels"] == len(before) + BATCH
    labels = store.read_labels(settings)
    new = labels[~labels["id"].isin(set(before["id"]))]
    assert sorted(new["id"]) == sorted(manifest["id"]) and set(new["source"]) == {"human"}
    pd.testing.assert_frame_equal(labels.iloc[: len(before)], before)  # nothing old changed
    return new, tasks


def _second_round(server, settings: Settings) -> tuple[list[dict], dict[str, object]]:
    """Round 2 dispatched with round 1's champion: (its tasks, the champion's predictions)."""
    from tasks.model.registry import load_champion
    from tasks.tracking.runs import setup_tracking

    lifecycle.begin_round(settings, 2)
    labeling.select(settings, 2)
    labeling.dispatch(settings, 2)
    tasks = _round_tasks(server, settings, 2)
    assert len(tasks) == BATCH
    model, version = load_champion(setup_tracking(settings))
    pool = store.read_pool(settings)
    items = pool[pool["id"].isin({t["data"]["lw_id"] for t in tasks})]
    predicted = dict(zip(items["id"], model.predict(None, items), strict=True))
    for task in tasks:
        [prediction] = task["predictions"]
        assert prediction["model_version"] == f"v{version}"
    return tasks, predicted


def _pool_values(settings: Settings, column: str) -> dict[str, object]:
    pool = store.read_pool(settings)
    return dict(zip(pool["id"], pool[column], strict=True))


def _result(task: dict) -> list[dict]:
    return task["predictions"][0]["result"]


# -- texts -----------------------------------------------------------------------------------------


def test_a_text_project_shows_the_text_and_learns_the_chosen_classes(server, make_settings):
    settings = _demo(
        make_settings,
        "text",
        "sms_spam",
        "text_classification",
        data={"classes": ["ham", "spam"]},
    )
    truth, texts = _truth(settings), _pool_values(settings, "text")

    new, tasks = _first_round(
        server, settings, lambda t: ls.choice(truth[t["data"]["lw_id"]], "text")
    )

    assert all(t["data"]["text"] == texts[t["data"]["lw_id"]] for t in tasks)
    assert (new["label"] == new["id"].map(truth)).all()
    later, predicted = _second_round(server, settings)
    for task in later:
        [choice] = _result(task)
        assert (choice["to_name"], choice["type"]) == ("text", "choices")
        assert choice["value"]["choices"] == [str(predicted[task["data"]["lw_id"]])]
        assert 0.5 <= task["data"]["lw_confidence"] <= 1.0


# -- images ----------------------------------------------------------------------------------------


def _digit_folder(root: Path, per_class: int = 20) -> Path:
    """Small PNG files of scikit-learn's digits 0, 1 and 2, in a subfolder per class."""
    import sklearn.datasets
    from PIL import Image

    digits = sklearn.datasets.load_digits()
    for label in (0, 1, 2):
        folder = root / str(label)
        folder.mkdir(parents=True)
        for n, i in enumerate(np.flatnonzero(digits.target == label)[:per_class]):
            grey = (digits.images[i] * (255 / 16)).astype(np.uint8)
            Image.fromarray(grey).resize((16, 16), Image.NEAREST).save(folder / f"{n}.png")
    return root


def test_an_image_project_sends_each_image_as_a_data_uri(server, make_settings, tmp_path):
    from tasks.data import onboard

    folder = _digit_folder(tmp_path / "digits")
    settings = make_settings(
        **_sections("image", "image_classification"), data={"classes": ["0", "1", "2"]}
    )
    # `labelwise init` of the folder, with half of each class's labels kept as known labels
    frame = onboard.read_items(folder, settings)
    truth_by_path = dict(zip(frame["image_path"], frame["label"], strict=True))
    frame.loc[frame.groupby("label").cumcount() % 2 == 1, "label"] = None
    plan = onboard.plan_project(frame, folder, settings)
    assert (plan.kind, plan.task) == ("image", "classification")
    items, holdout = onboard.split_holdout(frame, plan, settings.project.seed, None)
    counts = onboard.create_project(settings, items, holdout, plan)
    assert counts["seed_labels"] + counts["holdout"] == 30
    paths = _pool_values(settings, "image_path")
    truth = {i: truth_by_path[p] for i, p in paths.items()}

    new, tasks = _first_round(
        server, settings, lambda t: ls.choice(truth[t["data"]["lw_id"]], "image")
    )

    for task in tasks:
        head, _, body = task["data"]["image"].partition(",")
        assert head == "data:image/png;base64"
        assert base64.b64decode(body) == Path(paths[task["data"]["lw_id"]]).read_bytes()
    assert (new["label"] == new["id"].map(truth)).all()
    later, predicted = _second_round(server, settings)
    for task in later:
        assert task["data"]["image"].startswith("data:image/png;base64,")
        [choice] = _result(task)
        assert (choice["to_name"], choice["type"]) == ("image", "choices")
        assert choice["value"]["choices"] == [str(predicted[task["data"]["lw_id"]])]


# -- sentences to tag ------------------------------------------------------------------------------


def _spans_result(tags: list[str], tokens: list[str]) -> list[dict]:
    """What an annotator marks: the spans of ``tags`` on the sentence shown."""
    text = sentence(tokens)
    return [
        {
            "from_name": "label",
            "to_name": "text",
            "type": "labels",
            "value": {
                "start": s["start"],
                "end": s["end"],
                "text": text[s["start"] : s["end"]],
                "labels": [s["label"]],
            },
        }
        for s in tags_to_spans(tags, tokens)
    ]


def test_an_ner_project_shows_the_sentence_and_learns_the_exact_tags_of_the_spans(
    server, make_settings
):
    from tasks.data.datasets import load_dataset
    from tasks.model.metrics import entity_spans

    types = sorted(
        {t[2:] for tags in load_dataset("twitter_ner").frame["tags"] for t in tags if t != "O"}
    )
    settings = _demo(
        make_settings,
        "ner",
        "twitter_ner",
        "ner",
        annotation={"ner_labels": types},
    )
    truth = _truth(settings)
    tokens = {i: json.loads(v) for i, v in _pool_values(settings, "text").items()}

    def answer(task: dict) -> list[dict]:
        item = task["data"]["lw_id"]
        return _spans_result(json.loads(truth[item]), tokens[item])

    new, tasks = _first_round(server, settings, answer)

    assert all(t["data"]["text"] == sentence(tokens[t["data"]["lw_id"]]) for t in tasks)
    assert any(_spans_result(json.loads(truth[i]), tokens[i]) for i in new["id"])  # spans sent
    assert dict(zip(new["id"], new["label"], strict=True)) == {i: truth[i] for i in new["id"]}
    later, predicted = _second_round(server, settings)
    for task in later:
        item = task["data"]["lw_id"]
        assert task["data"]["text"] == sentence(tokens[item])
        spans = []
        for region in _result(task):
            value = region["value"]
            assert (region["to_name"], region["type"]) == ("text", "labels")
            assert value["text"] == task["data"]["text"][value["start"] : value["end"]]
            spans.append(
                {"start": value["start"], "end": value["end"], "label": value["labels"][0]}
            )
        # read back as an answer is read, the spans mark the champion's entities (a stray I-
        # tag starts one, as the entity metrics count it)
        tags = spans_to_tags(spans, tokens[item])
        assert entity_spans(tags) == entity_spans(json.loads(predicted[item]))
    assert any(_result(task) for task in later)  # the champion found entities to pre-annotate


# -- numbers ---------------------------------------------------------------------------------------


def test_a_regression_project_collects_the_numbers_entered(server, make_settings):
    settings = _demo(make_settings, "number", "diabetes", "number")
    truth, pool = _truth(settings), store.read_pool(settings)
    rows = pool.set_index("id")

    def answer(task: dict) -> list[dict]:
        number = float(truth[task["data"]["lw_id"]])
        return [
            {"from_name": "label", "to_name": "row", "type": "number", "value": {"number": number}}
        ]

    new, tasks = _first_round(server, settings, answer)

    config = ls.api(server, "GET", f"/api/projects/{labeling.make_backend(settings).project_id}")
    assert '<Number name="label" toName="row"' in config["label_config"]
    for task in tasks:
        row = rows.loc[task["data"]["lw_id"]]
        assert task["data"]["row"]["bmi"] == pytest.approx(float(row["bmi"]))
    assert (new["label"] == new["id"].map(truth)).all()  # the text of the number entered
    later, predicted = _second_round(server, settings)
    for task in later:
        [region] = _result(task)
        assert (region["to_name"], region["type"]) == ("row", "number")
        assert region["value"]["number"] == pytest.approx(float(predicted[task["data"]["lw_id"]]))
