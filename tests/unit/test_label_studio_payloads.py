"""Label Studio's task JSON as ``collect`` reads it: hand-made payloads, valid and malformed."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tasks.annotation.base import ANNOTATION_COLUMNS, AnnotationBackendError
from tasks.annotation.label_studio import LabelStudioBackend
from tasks.annotation.label_studio_config import CONFIGS
from tasks.annotation.label_studio_payloads import TASKS

pytestmark = pytest.mark.unit
TOKEN = "secret-token-value"


class OfflineLabelStudio(LabelStudioBackend):
    """A backend whose server answers with the given tasks and two users (no network)."""

    def __init__(self, tasks: list[Any], kind: str = "text_classification"):
        super().__init__(url="http://ls.test", token=TOKEN, classes=["cat", "dog"], kind=kind)
        self._tasks = tasks

    def tasks(self) -> list[Any]:
        return self._tasks

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        assert (method, path) == ("GET", "/api/users")
        return [{"id": 1, "email": "ann@example.org"}, {"id": 2, "username": "bob"}]


def choice(*labels: Any, control: str = "label") -> dict:
    return {
        "from_name": control,
        "to_name": "text",
        "type": "choices",
        "value": {"choices": list(labels)},
    }


def span(start: Any, end: Any, *labels: Any) -> dict:
    value = {"start": start, "end": end, "text": "x", "labels": list(labels)}
    return {"from_name": "label", "to_name": "text", "type": "labels", "value": value}


def annotation(*result: dict, **fields: Any) -> dict:
    return {
        "id": 70,
        "result": list(result) if result else [choice("cat")],
        "completed_by": 1,
        "created_at": "2026-01-02T03:04:05.123456Z",
        "was_cancelled": False,
        **fields,
    }


def task(*annotations: Any, number: int = 7, **data: Any) -> dict:
    data = {"lw_id": "item-1", "lw_round": 1, "text": "a text", **data}
    return {"id": number, "data": data, "annotations": list(annotations)}


def collect(*tasks: Any, kind: str = "text_classification", round_: int | None = None):
    return OfflineLabelStudio(list(tasks), kind).collect(round_)


# -- valid payloads --------------------------------------------------------------------------------


def test_a_choice_is_collected_with_item_annotator_round_and_time():
    got = collect(task(annotation()))
    assert list(got.columns) == list(ANNOTATION_COLUMNS)
    assert got.iloc[0].to_dict() == {
        "id": "item-1",
        "label": "cat",
        "annotator": "ann@example.org",
        "round": 1,
        "time": pd.Timestamp("2026-01-02T03:04:05.123456Z"),
        "source": "human",
    }


def test_the_first_choice_of_the_label_control_is_the_label():
    result = [choice("cat", control="sentiment"), choice(), choice("dog", "cat")]
    assert collect(task(annotation(*result)))["label"].tolist() == ["dog"]


def test_an_annotation_without_a_choice_is_not_collected():
    assert collect(task(annotation(choice()), annotation(result=None))).empty


def test_skipped_annotations_are_not_read():
    skipped = annotation(result="junk", created_at=None, was_cancelled=True)
    assert collect(task(skipped, annotation()))["label"].tolist() == ["cat"]


def test_tasks_labelwise_did_not_create_are_not_read():
    foreign = {"id": 8, "data": {"text": "x"}, "annotations": "junk"}
    assert collect(foreign, {"id": 9, "annotations": [None]}, task(annotation())).shape[0] == 1


def test_tasks_of_another_round_are_not_read():
    other = task("junk", number=8, lw_id="item-2", lw_round=2)
    assert collect(other, task(annotation()), round_=1)["id"].tolist() == ["item-1"]
    assert collect(task(annotation()), round_=2).empty


@pytest.mark.parametrize("round_", [3, 3.0, "3"])
def test_a_round_written_as_a_whole_number_in_any_json_type_is_read(round_):
    got = collect(task(annotation(), lw_round=round_), round_=3)
    assert got["round"].tolist() == [3] and pd.api.types.is_integer_dtype(got["round"])


def test_a_whole_number_item_id_is_read_as_text():
    assert collect(task(annotation(), lw_id=12))["id"].tolist() == ["12"]


@pytest.mark.parametrize(
    ("completed_by", "annotator"),
    [
        (1, "ann@example.org"),
        (2, "bob"),
        ("2", "bob"),
        ({"id": 2, "email": "stale@example.org"}, "bob"),
        (9, "user-9"),
        (None, "unknown"),
    ],
)
def test_the_annotator_is_resolved_from_an_id_or_an_expanded_user(completed_by, annotator):
    assert collect(task(annotation(completed_by=completed_by)))["annotator"].tolist() == [annotator]


@pytest.mark.parametrize(
    "created_at",
    [
        "2026-01-02T03:04:05.123456Z",
        "2026-01-02T05:04:05+02:00",
        "2026-01-02T03:04:05",
        "2026-01-02",
    ],
)
def test_created_at_is_read_with_or_without_a_time_zone(created_at):
    time = collect(task(annotation(created_at=created_at)))["time"].iloc[0]
    assert time == pd.Timestamp(created_at) and time.tz == pd.Timestamp(created_at).tz


def test_ner_spans_are_the_json_text_of_sorted_start_end_label():
    result = [span(7, 9, "LOC"), span(0, 4, "PER"), span(5, 6), choice("cat", control="sentiment")]
    label = collect(task(annotation(*result)), kind="ner")["label"].iloc[0]
    assert (
        label == '[{"start": 0, "end": 4, "label": "PER"}, {"start": 7, "end": 9, "label": "LOC"}]'
    )
    assert json.loads(label) == [
        {"start": 0, "end": 4, "label": "PER"},
        {"start": 7, "end": 9, "label": "LOC"},
    ]


def test_an_ner_answer_without_spans_is_collected_as_no_entity():
    assert collect(task(annotation(span(5, 6))), kind="ner")["label"].tolist() == ["[]"]


def number(value: Any, control: str = "label") -> dict:
    return {"from_name": control, "to_name": "row", "type": "number", "value": {"number": value}}


@pytest.mark.parametrize(("value", "label"), [(151, "151"), (151.0, "151.0"), (-0.25, "-0.25")])
def test_a_number_is_collected_as_the_text_of_the_number(value, label):
    assert collect(task(annotation(number(value))), kind="number")["label"].tolist() == [label]


def test_the_first_number_of_the_label_control_is_the_label():
    result = [number(1, control="confidence"), number(None), number(7.5), number(9)]
    assert collect(task(annotation(*result)), kind="number")["label"].tolist() == ["7.5"]


def test_an_annotation_without_a_number_is_not_collected():
    empty = annotation({"from_name": "label", "value": {}}, id=71)
    assert collect(task(annotation(number(None)), empty), kind="number").empty


def test_every_label_config_kind_has_a_task_model():
    assert set(TASKS) == set(CONFIGS)


# -- malformed payloads: the error names the task, the annotation and the field ---------------------


@pytest.mark.parametrize(
    ("payload", "path"),
    [
        pytest.param(task(annotation(), lw_id=True), "data.lw_id", id="lw_id-flag"),
        pytest.param(task(annotation(), lw_id=["a"]), "data.lw_id", id="lw_id-list"),
        pytest.param(task(annotation(), lw_round="one"), "data.lw_round", id="lw_round-text"),
        pytest.param(task(annotation(), lw_round=3.5), "data.lw_round", id="lw_round-fraction"),
        pytest.param(task(annotation(), lw_round=True), "data.lw_round", id="lw_round-flag"),
        pytest.param(task(annotation(), lw_round=None), "data.lw_round", id="lw_round-null"),
        pytest.param(
            {"id": 7, "data": {"lw_id": "item-1"}}, "data.lw_round", id="lw_round-missing"
        ),
        pytest.param({"id": 7, "data": ["item-1"]}, "data", id="data"),
        pytest.param(
            {"id": 7, "data": task()["data"], "annotations": {}}, "annotations", id="list"
        ),
    ],
)
def test_a_malformed_task_names_the_task_and_the_field(payload, path):
    with pytest.raises(AnnotationBackendError) as info:
        collect(payload)
    assert str(info.value).startswith("unexpected task 7")
    assert f": {path}: " in str(info.value) and TOKEN not in str(info.value)
    assert info.value.where == "http://ls.test/api/tasks/7"


@pytest.mark.parametrize(
    ("answer", "path"),
    [
        pytest.param(annotation(id="seventy"), "annotations.0.id", id="id"),
        pytest.param(annotation(result={"a": 1}), "annotations.0.result", id="result"),
        pytest.param(annotation(result=["cat"]), "annotations.0.result.0", id="result-item"),
        pytest.param(
            annotation({"from_name": "label", "value": ["cat"]}),
            "annotations.0.result.0.value",
            id="value",
        ),
        pytest.param(
            annotation({"from_name": "label", "value": {"choices": "cat"}}),
            "annotations.0.result.0.value.choices",
            id="choices-text",
        ),
        pytest.param(
            annotation(choice("cat", 3)), "annotations.0.result.0.value.choices.1", id="choice"
        ),
        pytest.param(annotation(created_at=None), "annotations.0.created_at", id="created_at-null"),
        pytest.param(annotation(created_at="soon"), "annotations.0.created_at", id="created_at"),
        pytest.param(annotation(created_at=1767323045), "annotations.0.created_at", id="epoch"),
        pytest.param(
            {k: v for k, v in annotation().items() if k != "created_at"},
            "annotations.0.created_at",
            id="created_at-missing",
        ),
        pytest.param(annotation(completed_by=[1]), "annotations.0.completed_by", id="user-list"),
        pytest.param(annotation(completed_by=True), "annotations.0.completed_by", id="user-flag"),
        pytest.param(annotation(completed_by="ann"), "annotations.0.completed_by", id="user-text"),
        pytest.param(
            annotation(completed_by={"email": "ann@example.org"}),
            "annotations.0.completed_by",
            id="user-without-id",
        ),
    ],
)
def test_a_malformed_annotation_names_the_task_the_annotation_and_the_field(answer, path):
    with pytest.raises(AnnotationBackendError) as info:
        collect(task(answer))
    message = str(info.value)
    assert message.startswith("unexpected annotation ") and " of task 7 (item 'item-1')" in message
    assert f": {path}: " in message and TOKEN not in message
    assert info.value.where == "http://ls.test/api/tasks/7"


def test_the_annotation_is_named_by_its_id():
    with pytest.raises(AnnotationBackendError, match="annotation 71 of task 7"):
        collect(task(annotation(), annotation(id=71, created_at="soon")))


@pytest.mark.parametrize(
    ("region", "path"),
    [
        pytest.param(span("0", 4, "PER"), "annotations.0.result.1.value.start", id="start"),
        pytest.param(span(0, 4.0, "PER"), "annotations.0.result.1.value.end", id="end"),
        pytest.param(span(0, True, "PER"), "annotations.0.result.1.value.end", id="end-flag"),
        pytest.param(
            {"from_name": "label", "value": {"start": 0, "labels": ["PER"]}},
            "annotations.0.result.1.value.end",
            id="end-missing",
        ),
        pytest.param(
            {"from_name": "label", "value": {"start": 0, "end": 4, "labels": "PER"}},
            "annotations.0.result.1.value.labels",
            id="labels-text",
        ),
        pytest.param(span(0, 4, 3), "annotations.0.result.1.value.labels.0", id="label"),
    ],
)
def test_a_malformed_ner_span_names_the_field(region, path):
    with pytest.raises(AnnotationBackendError) as info:
        collect(task(annotation(span(5, 9, "LOC"), region)), kind="ner")
    assert "annotation 70 of task 7" in str(info.value) and f": {path}: " in str(info.value)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("151", id="text"),
        pytest.param(True, id="flag"),
        pytest.param([151], id="list"),
        pytest.param(float("inf"), id="infinity"),
        pytest.param(float("-inf"), id="minus-infinity"),
        pytest.param(float("nan"), id="nan"),
    ],
)
def test_a_number_that_is_not_a_finite_number_names_the_task_and_the_field(value):
    with pytest.raises(AnnotationBackendError) as info:
        collect(task(annotation(number(value))), kind="number")
    message = str(info.value)
    assert "annotation 70 of task 7 (item 'item-1')" in message
    assert ": annotations.0.result.0.value.number: " in message and TOKEN not in message
    assert info.value.where == "http://ls.test/api/tasks/7"


def test_a_task_that_is_not_an_object_is_named_unknown():
    with pytest.raises(AnnotationBackendError, match=r"unexpected task \?") as info:
        collect(["not", "a", "task"])
    assert info.value.where == "http://ls.test/api/tasks/?"


# -- what is dispatched: what annotators see and the pre-annotations -------------------------------


class RecordingLabelStudio(LabelStudioBackend):
    """A backend whose server has one empty project and records the tasks imported (no network)."""

    def __init__(self, kind: str, data_kind: str = "tabular", classes=("cat", "dog")):
        super().__init__(
            url="http://ls.test", token=TOKEN, classes=list(classes), kind=kind, data_kind=data_kind
        )
        self.imported: list[dict] = []

    def tasks(self) -> list[Any]:
        return []

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        if (method, path) == ("GET", "/api/projects"):
            return [{"id": 1, "title": self.project_title}]
        if (method, path) == ("POST", "/api/projects/1/import"):
            self.imported.extend(kwargs["json"])
        return {}


def dispatched(backend: RecordingLabelStudio, **columns: Any) -> list[dict]:
    """The tasks ``backend`` imports for a one-item batch with ``columns``, as strict JSON."""
    batch = pd.DataFrame({"id": ["item-1"], "round": 1, "rank": [1], "score": [0.5], **columns})
    backend.dispatch(batch, 1)
    return json.loads(json.dumps(backend.imported, allow_nan=False))


TOKENS = ["Ada", "Lovelace", "met", "Charles", "Babbage", "in", "London"]
TAGS = ["B-person", "I-person", "O", "B-person", "I-person", "O", "B-geo-loc"]


def test_an_ner_task_shows_the_sentence_of_a_token_list():
    [sent] = dispatched(RecordingLabelStudio("ner", "tokens"), text=[json.dumps(TOKENS)])
    assert sent["data"]["text"] == "Ada Lovelace met Charles Babbage in London"
    assert "predictions" not in sent  # no champion: nothing to correct


def test_a_tag_prediction_is_pre_annotated_as_the_spans_that_give_those_tags_back():
    from tasks.annotation.spans import spans_to_tags

    [sent] = dispatched(
        RecordingLabelStudio("ner", "tokens"),
        text=[json.dumps(TOKENS)],
        prediction=[json.dumps(TAGS)],
    )
    [prediction] = sent["predictions"]
    values = [r["value"] for r in prediction["result"]]
    assert [(v["text"], v["labels"]) for v in values] == [
        ("Ada Lovelace", ["person"]),
        ("Charles Babbage", ["person"]),
        ("London", ["geo-loc"]),
    ]
    assert {(r["from_name"], r["to_name"], r["type"]) for r in prediction["result"]} == {
        ("label", "text", "labels")
    }
    spans = [{"start": v["start"], "end": v["end"], "label": v["labels"][0]} for v in values]
    assert spans_to_tags(spans, TOKENS) == TAGS


def test_a_tag_prediction_of_another_length_than_the_sentence_is_refused():
    with pytest.raises(ValueError, match="2 tags for a sentence of 7 tokens"):
        dispatched(
            RecordingLabelStudio("ner", "tokens"),
            text=[json.dumps(TOKENS)],
            prediction=[json.dumps(["B-person", "O"])],
        )


def test_a_local_image_is_sent_as_a_data_uri_of_its_bytes(tmp_path):
    import base64

    from PIL import Image

    path = tmp_path / "digit.png"
    Image.new("L", (8, 8), color=200).save(path)
    [sent] = dispatched(
        RecordingLabelStudio("image_classification", "image"),
        image_path=[str(path)],
        prediction=["cat"],
    )
    head, _, body = sent["data"]["image"].partition(",")
    assert head == "data:image/png;base64" and base64.b64decode(body) == path.read_bytes()
    assert sent["predictions"][0]["result"][0]["to_name"] == "image"


@pytest.mark.parametrize(
    "url",
    [
        "https://example.org/cat.png",
        "http://10.0.0.5/a.jpg",
        "data:image/png;base64,AA==",
        "s3://bucket/cat.png",
    ],
)
def test_an_image_url_is_sent_as_it_is(url):
    [sent] = dispatched(RecordingLabelStudio("image_classification", "image"), image_path=[url])
    assert sent["data"]["image"] == url


def test_an_image_that_cannot_be_read_names_its_path(tmp_path):
    missing = tmp_path / "gone.png"
    with pytest.raises(AnnotationBackendError, match=r"gone\.png") as info:
        dispatched(RecordingLabelStudio("image_classification", "image"), image_path=[str(missing)])
    assert info.value.where == str(missing)


@pytest.mark.parametrize(
    ("data_kind", "view"), [("tabular", "row"), ("text", "text"), ("image", "image")]
)
def test_the_number_config_shows_the_item_as_its_data_kind_and_pre_annotates_the_number(
    data_kind, view, tmp_path
):
    import xml.etree.ElementTree as ET

    from PIL import Image

    from tasks.annotation.label_studio_config import label_config

    path = tmp_path / "item.png"
    Image.new("L", (4, 4)).save(path)
    backend = RecordingLabelStudio("number", data_kind, classes=())
    [sent] = dispatched(
        backend, age=[41], text=["a text"], image_path=[str(path)], prediction=[np.float64(151.5)]
    )
    assert set(sent["data"]) >= {view}
    assert sent["predictions"][0]["result"] == [
        {"from_name": "label", "to_name": view, "type": "number", "value": {"number": 151.5}}
    ]
    control = ET.fromstring(label_config("number", [], data_kind)).find(".//Number")
    assert control is not None and control.get("name") == "label" and control.get("toName") == view


@pytest.mark.parametrize("prediction", [np.nan, np.inf])
def test_a_missing_or_infinite_number_is_no_pre_annotation(prediction):
    [sent] = dispatched(
        RecordingLabelStudio("number", classes=()), age=[41], prediction=[prediction]
    )
    assert "predictions" not in sent and sent["data"]["row"] == {"age": 41}


def test_the_settings_accept_the_number_label_config():
    from tasks.settings import Settings

    settings = Settings.model_validate({"annotation": {"label_config": "number"}})
    assert settings.annotation.label_config == "number"


def test_a_sentence_tagged_without_entities_is_pre_annotated_as_no_span():
    [sent] = dispatched(
        RecordingLabelStudio("ner", "tokens"),
        text=[json.dumps(TOKENS)],
        prediction=[json.dumps(["O"] * len(TOKENS))],
    )
    assert sent["predictions"][0]["result"] == []  # a prediction: it orders the queue
