"""Label Studio's task JSON (``GET /api/tasks``): the part labelwise reads, as pydantic models,
and the pre-annotations it writes (``prediction_result``): a class, spans, or a number.

``read_task`` gives a task labelwise dispatched, with its submitted annotations, or None for a task
it did not create (no ``lw_id`` in its data) or of another round. A task in another shape raises a
``PayloadError`` naming the task, the annotation and the field
(``annotations.0.result.1.value.start``; a number that is text or infinite:
``annotations.0.result.0.value.number``). What labelwise never reads is not checked: the
annotations of a task it skips, a skipped annotation, the results of controls other than
``label``, a region without labels. Keys not modelled here are Label Studio's own and are ignored.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Generic, TypeVar

import numpy as np
import pandas as pd
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    PrivateAttr,
    StrictInt,
    StrictStr,
    ValidationError,
    WrapValidator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from tasks.annotation.label_studio_config import CONTROL, NUMBER, REGIONS
from tasks.annotation.spans import sentence, tags_to_spans

#: task data keys written by labelwise (everything else is the item's payload)
ID_KEY, ROUND_KEY, RANK_KEY, SCORE_KEY, CONFIDENCE_KEY = (
    "lw_id",
    "lw_round",
    "lw_rank",
    "lw_score",
    "lw_confidence",
)

T = TypeVar("T")


# -- values ----------------------------------------------------------------------------------------


def _not_a_flag(value: Any) -> Any:
    # pydantic reads true as 1; a flag is never a count nor an id
    if isinstance(value, bool):
        raise PydanticCustomError("whole_number", "Input should be a whole number, not true/false")
    return value


def _text_id(value: Any) -> Any:
    return str(value) if type(value) is int else value


def _user_object_id(value: Any) -> Any:
    # some Label Studio versions expand the user into an object
    if not isinstance(value, dict):
        return value
    if "id" not in value:
        raise PydanticCustomError("user_id", "Input should be a user id or a user with an id")
    return value["id"]


def _timestamp(value: Any) -> pd.Timestamp:
    # pandas, as for every other source of annotations: a date alone, with or without a time zone
    if isinstance(value, str):
        try:
            time = pd.Timestamp(value)
        except (ValueError, OverflowError):
            time = pd.NaT
        if time is not pd.NaT:
            return time
    raise PydanticCustomError("date_time", "Input should be a date-time as text")


def _finite_number(value: Any) -> int | float:
    # a JSON number only: text such as "3.5" is no answer of a Number control, and JSON parsers
    # read 1e400 as infinity (Python's also NaN and Infinity), which no model can learn from
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError("finite_number", "Input should be a number")
    if not math.isfinite(value):
        raise PydanticCustomError("finite_number", "Input should be a finite number")
    return value


#: a whole number, as JSON may give it: 3, 3.0 or "3"
WholeNumber = Annotated[int, BeforeValidator(_not_a_flag)]
#: an item id: text, or a whole number read as its text
ItemId = Annotated[str, BeforeValidator(_text_id)]
#: a user id, or the user object that carries it
UserId = Annotated[WholeNumber, BeforeValidator(_user_object_id)]
Timestamp = Annotated[pd.Timestamp, PlainValidator(_timestamp)]
#: a finite JSON number (not text, not a flag)
FiniteNumber = Annotated[int | float, PlainValidator(_finite_number)]


# -- what is not read ------------------------------------------------------------------------------


def _reading_unless(skip: Callable[[Any], bool]) -> WrapValidator:
    """Validate a value unless ``skip(value)``: then it is None, unread."""

    def validate(value: Any, handler: Callable[[Any], Any]) -> Any:
        return None if skip(value) else handler(value)

    return WrapValidator(validate)


def _none_as_empty(value: Any) -> Any:
    return [] if value is None else value


def _drop_unread(items: list[Any]) -> list[Any]:
    return [item for item in items if item is not None]


def _not_labelwise(data: Any) -> bool:
    return isinstance(data, dict) and ID_KEY not in data


def _skipped(annotation: Any) -> bool:
    return isinstance(annotation, dict) and bool(annotation.get("was_cancelled"))


def _other_control(result: Any) -> bool:
    return isinstance(result, dict) and result.get("from_name") != CONTROL


def _without_labels(value: Any) -> bool:
    return isinstance(value, dict) and not value.get("labels")


#: a list (null: empty) whose skipped annotations are dropped unread
Submitted = Annotated[
    list[Annotated[T, _reading_unless(_skipped)]],
    BeforeValidator(_none_as_empty),
    AfterValidator(_drop_unread),
]
#: a list (null: empty) of the results of the ``label`` control; the others are dropped unread
FromLabel = Annotated[
    list[Annotated[T, _reading_unless(_other_control)]],
    BeforeValidator(_none_as_empty),
    AfterValidator(_drop_unread),
]


# -- the models ------------------------------------------------------------------------------------


class Payload(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Choices(Payload):
    #: the classes chosen: a list (a bare "cat" is no list, and no label "c")
    choices: list[StrictStr] | None = None


class ChoicesResult(Payload):
    value: Choices = Choices()


class Span(Payload):
    start: StrictInt
    end: StrictInt
    labels: Annotated[list[StrictStr], Field(min_length=1)]


class SpanResult(Payload):
    #: None: a region without labels (it marks no span)
    value: Annotated[Span | None, _reading_unless(_without_labels)] = None


class Annotation(Payload):
    """One annotator's submitted answer to a task."""

    id: int | None = None
    #: None: the annotator is unknown
    completed_by: UserId | None = None
    created_at: Timestamp
    #: None: never reported (an edit by the annotator sets it)
    updated_at: Timestamp | None = None

    @property
    def answered_at(self) -> pd.Timestamp:
        """When the answer was last given: an edited answer is a new one (it supersedes)."""
        return self.created_at if self.updated_at is None else self.updated_at

    @property
    def label(self) -> str | None:
        """The answer as the label store holds it (None: no answer)."""
        raise NotImplementedError


class ChoicesAnnotation(Annotation):
    result: FromLabel[ChoicesResult] = []

    @property
    def label(self) -> str | None:
        """The first class chosen (None: nothing chosen)."""
        return next((r.value.choices[0] for r in self.result if r.value.choices), None)


class SpansAnnotation(Annotation):
    result: FromLabel[SpanResult] = []

    @property
    def label(self) -> str:
        """The spans as JSON text: a list of {start, end, label} in text order (may be empty)."""
        spans = sorted(
            (r.value.start, r.value.end, r.value.labels[0]) for r in self.result if r.value
        )
        return json.dumps([{"start": s, "end": e, "label": label} for s, e, label in spans])


class Number(Payload):
    #: None: no number entered
    number: FiniteNumber | None = None


class NumberResult(Payload):
    value: Number = Number()


class NumberAnnotation(Annotation):
    result: FromLabel[NumberResult] = []

    @property
    def label(self) -> str | None:
        """The number entered, as text (``"151"``, ``"151.5"``; None: no number)."""
        return next((str(r.value.number) for r in self.result if r.value.number is not None), None)


class RegionResult(Payload):
    """A drawn box or polygon of the ``label`` control, as Label Studio sends it (read whole:
    :func:`~tasks.annotation.boxes.boxes_from_result` converts it to pixels)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    type: StrictStr
    value: dict[str, Any]


class RegionsAnnotation(Annotation):
    result: FromLabel[RegionResult] = []
    _regions: list[Any] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _in_pixels(self) -> RegionsAnnotation:
        # converted when read: a rotated box or a size that is no number names the task
        from tasks.annotation.boxes import boxes_from_result

        self._regions = boxes_from_result([r.model_dump() for r in self.result])
        return self

    @property
    def regions(self) -> list[Any]:
        """The drawn regions in pixels of the image (none drawn: an image without objects)."""
        return list(self._regions)

    @property
    def label(self) -> str:
        """The regions as the label log holds them (:func:`~tasks.annotation.boxes.encode_boxes`;
        ``[]`` when nothing was drawn, which is an answer too)."""
        from tasks.annotation.boxes import encode_boxes

        return encode_boxes(self.regions)


class TaskData(Payload):
    """The keys labelwise wrote in a task's data."""

    item: ItemId = Field(alias=ID_KEY)
    round: WholeNumber = Field(alias=ROUND_KEY)


class TaskHead(Payload):
    """What decides whether a task is read: its id, and its data if labelwise created it."""

    id: int | None = None
    #: None: a task labelwise did not create (no ``lw_id``)
    data: Annotated[TaskData | None, _reading_unless(_not_labelwise)] = None


A = TypeVar("A", bound=Annotation)


class Task(TaskHead, Generic[A]):
    """A task labelwise dispatched, with its submitted (not skipped) annotations."""

    data: TaskData
    annotations: Submitted[A] = []


#: the task model of each label config (``label_studio_config.CONFIGS``)
TASKS: dict[str, type[Task[Any]]] = {
    "text_classification": Task[ChoicesAnnotation],
    "image_classification": Task[ChoicesAnnotation],
    "tabular_classification": Task[ChoicesAnnotation],
    "ner": Task[SpansAnnotation],
    NUMBER: Task[NumberAnnotation],
    **dict.fromkeys(REGIONS, Task[RegionsAnnotation]),
}


# -- reading ---------------------------------------------------------------------------------------


def _at(raw: Any, *path: Any) -> Any:
    """What ``raw`` holds at ``path``, None if nothing (only to name a task that failed)."""
    for key in path:
        try:
            raw = raw[key]
        except (LookupError, TypeError):
            return None
    return raw


def _or_unknown(number: Any) -> str:
    return "?" if number is None else str(number)


class PayloadError(ValueError):
    """A task in a shape labelwise does not read: which task, annotation and field, and why."""

    def __init__(self, error: ValidationError, raw: Any, item: str | None = None):
        errors = error.errors(include_url=False)
        loc = errors[0]["loc"]
        in_annotation = loc[0] == "annotations" and len(loc) > 1 if loc else False
        self.task = _at(raw, "id")
        self.annotation = _at(raw, *loc[:2], "id") if in_annotation else None
        self.path = ".".join(str(part) for part in loc)
        subject = f"task {_or_unknown(self.task)}"
        if in_annotation:
            subject = f"annotation {_or_unknown(self.annotation)} of {subject}"
        self.subject = subject + (f" (item {item!r:.80})" if item is not None else "")
        first = errors[0]
        # in JSON's words, not the name of a model here
        why = "Input should be an object" if first["type"] == "model_type" else first["msg"]
        got = "" if first["type"] == "missing" else f" (got {first['input']!r:.80})"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        self.detail = f"{self.path or 'the task'}: {why}{got}{more}"
        super().__init__(f"{self.subject}: {self.detail}")


M = TypeVar("M", bound=BaseModel)


def _validate(model: type[M], raw: Any, item: str | None = None) -> M:
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        raise PayloadError(error, raw, item) from None


def read_task(raw: Any, kind: str, round_: int | None = None) -> Task[Any] | None:
    """``raw`` as a task of the ``kind`` label config; None for a task labelwise did not create
    or, given ``round_``, of another round (its annotations are not read)."""
    head = _validate(TaskHead, raw)
    if head.data is None or (round_ is not None and head.data.round != round_):
        return None
    return _validate(TASKS[kind], raw, head.data.item)


# -- what labelwise writes -------------------------------------------------------------------------


def _spans(value: Any, tokens: Sequence[str]) -> list[dict[str, Any]]:
    """NER spans on ``sentence(tokens)`` from a model's BIO tags (one per token) or from spans
    ({start, end, label}); either as a list or its JSON text (as a tagger or ``label`` give it)."""
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else []
    value = list(value)
    if value and all(isinstance(v, str) for v in value):
        if len(value) != len(tokens):
            raise ValueError(
                f"a prediction of {len(value)} tags for a sentence of {len(tokens)} tokens"
            )
        value = tags_to_spans(value, tokens)
    return [
        {"start": int(s["start"]), "end": int(s["end"]), "label": str(s["label"])} for s in value
    ]


def prediction_result(
    prediction: Any,
    kind: str,
    to_name: str,
    tokens: Sequence[str] = (),
    image_size: tuple[int, int] | None = None,
) -> list[dict[str, Any]] | None:
    """The model's ``prediction`` as a pre-annotation's ``result`` (None: no prediction): the
    class chosen; for ``number`` the number (None if not finite); for ``ner`` the spans on the
    sentence of ``tokens`` (:func:`~tasks.annotation.spans.sentence`), from BIO tags or spans
    (empty: the model found no entity, still a prediction that orders the queue); for boxes and
    polygons (their JSON, :func:`~tasks.annotation.boxes.encode_boxes`) the regions in percent of
    the image's ``image_size`` (width, height)."""
    if isinstance(prediction, np.generic):
        prediction = prediction.item()
    if prediction is None or (isinstance(prediction, float) and math.isnan(prediction)):
        return None
    if kind in REGIONS:
        from tasks.annotation.boxes import decode_boxes, prediction_results

        if image_size is None:
            raise ValueError("a box pre-annotation needs the image's size")
        regions = decode_boxes(prediction) if isinstance(prediction, str) else list(prediction)
        return prediction_results(regions, image_size[0], image_size[1], CONTROL, to_name)
    if kind == "ner":
        text = sentence(tokens)
        return [
            {
                "from_name": CONTROL,
                "to_name": "text",
                "type": "labels",
                "value": {
                    "start": s["start"],
                    "end": s["end"],
                    "text": text[s["start"] : s["end"]],
                    "labels": [s["label"]],
                },
            }
            for s in _spans(prediction, tokens)
        ]
    if kind == NUMBER:
        number = float(prediction)
        if not math.isfinite(number):
            return None
        return [
            {
                "from_name": CONTROL,
                "to_name": to_name,
                "type": "number",
                "value": {"number": number},
            }
        ]
    return [
        {
            "from_name": CONTROL,
            "to_name": to_name,
            "type": "choices",
            "value": {"choices": [str(prediction)]},
        }
    ]
