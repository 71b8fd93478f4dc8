"""Label Studio backend: a real server, reached over its REST API (plain HTTP with httpx).

Why not ``label-studio-sdk``: its 2.x wheel pulls ``opencv-python-headless``, which pins
``numpy<2.3`` and would downgrade the pipeline's ``numpy==2.4.6``. The endpoints used here are
the ones the SDK wraps (``/api/projects``, ``/api/projects/{id}/import``, ``/api/tasks``,
``/api/dm/views``).

How items reach annotators most-informative-first:

* every task carries the external id ``lw_id`` (re-dispatching an id already in the project is a
  no-op), its round ``lw_round``, rank ``lw_rank`` and the strategy's score ``lw_score``
  (informativeness: higher = more informative; null for picks without a per-row score, such as
  batch-diversity, cold-start and random picks: the rank orders every pick);
* the model's prediction is imported as a pre-annotation with ``model_version`` = the round's
  model version, and the project's ``model_version`` is set to it each round (Label Studio's
  uncertainty sampling ignores predictions of any other version);
* **score mapping**: uncertainty sampling serves the task with the LOWEST prediction score first,
  so the prediction's ``score`` is the serving key ``(rank - 1) / n`` (0 for the most informative
  item, increasing with rank). The model's own probability of its label is kept in task data as
  ``lw_confidence``. A raw confidence would only order the batch correctly for uncertainty
  strategies; the rank does so for every strategy (committees, diversity, hybrids);
* a Data Manager view "labelwise: most informative first" orders tasks by ``data.lw_rank``.

Collection polls ``/api/tasks`` (retries with exponential backoff ride out a restarting server);
the token is sent only in the ``Authorization`` header and never logged or put in errors.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import pandas as pd
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

from tasks.annotation.base import (
    ANNOTATION_COLUMNS,
    BATCH_COLUMNS,
    PREDICTION_COLUMNS,
    AnnotationBackendError,
    Progress,
    check_batch,
    empty_annotations,
)

log = logging.getLogger(__name__)

URL_VARIABLE = "LABEL_STUDIO_URL"
TOKEN_VARIABLE = "LABEL_STUDIO_API_KEY"
VIEW_TITLE = "labelwise: most informative first"
#: task data keys written by labelwise (everything else is the item's payload)
ID_KEY, ROUND_KEY, RANK_KEY, SCORE_KEY, CONFIDENCE_KEY = (
    "lw_id",
    "lw_round",
    "lw_rank",
    "lw_score",
    "lw_confidence",
)
KINDS = ("text_classification", "image_classification", "tabular_classification", "ner")


def _escape(value: str) -> str:
    return (
        str(value)
        .replace("&", "&amp;")
        .replace('"', "&quot;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
    )


def label_config(kind: str, classes: Sequence[str]) -> str:
    """The labeling interface (Label Studio XML) for ``kind``; ``classes`` are the choices, or the
    entity types for ``ner``. The answer is always the control named ``label``."""
    if kind not in KINDS:
        raise ValueError(f"unknown label config {kind!r}; use one of {', '.join(KINDS)}")
    if not classes:
        raise ValueError(f"label config {kind!r} needs at least one class")
    if kind == "ner":
        labels = "".join(f'<Label value="{_escape(c)}"/>' for c in classes)
        return (
            f'<View><Labels name="label" toName="text">{labels}</Labels>'
            '<Text name="text" value="$text"/></View>'
        )
    shown = {
        "text_classification": ('<Text name="text" value="$text"/>', "text"),
        "image_classification": ('<Image name="image" value="$image"/>', "image"),
        "tabular_classification": ('<Table name="row" value="$row"/>', "row"),
    }[kind]
    choices = "".join(f'<Choice value="{_escape(c)}"/>' for c in classes)
    return (
        f"<View>{shown[0]}"
        f'<Choices name="label" toName="{shown[1]}" choice="single" showInline="true">'
        f"{choices}</Choices></View>"
    )


def _jsonable(value: Any) -> Any:
    """``value`` as JSON can hold it: numpy scalars and arrays as Python values, timestamps as
    ISO text, NaN and infinities as null (JSON has neither; diversity and random picks carry no
    score, a tabular row may miss a value)."""
    if isinstance(value, np.generic):
        value = value.item()
    elif isinstance(value, np.ndarray):
        return [_jsonable(v) for v in value.tolist()]
    elif isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _spans(value: Any) -> list[dict[str, Any]]:
    """NER spans from a list of {start, end, label} (or its JSON string)."""
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else []
    return [
        {"start": int(s["start"]), "end": int(s["end"]), "label": str(s["label"])} for s in value
    ]


def _round(value: Any) -> int:
    """A task's ``lw_round``: a whole number (JSON may give it as 3, 3.0 or "3")."""
    if isinstance(value, bool):
        raise ValueError(f"{ROUND_KEY} is not a whole number: {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{ROUND_KEY} is not a whole number: {value!r:.80}") from None
    if not number.is_integer():
        raise ValueError(f"{ROUND_KEY} is not a whole number: {value!r:.80}")
    return int(number)


class _Transient(Exception):
    def __init__(self, status: int | None, detail: str):
        super().__init__(detail)
        self.status = status


@dataclass
class LabelStudioBackend:
    """Dispatch/collect/progress against one Label Studio project (found by title or created)."""

    url: str
    token: str = field(repr=False)
    classes: list[str]
    kind: str = "text_classification"
    project_title: str = "labelwise"
    annotators_per_item: int = 1
    overlap_share: float = 0.0
    text_field: str = "text"
    image_field: str = "image_path"
    retry_seconds: float = 90.0
    timeout: float = 30.0
    name: str = "label_studio"
    _project: int | None = field(default=None, init=False, repr=False)
    _users: dict[int, str] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Any, classes: Sequence[str]) -> LabelStudioBackend:
        """URL from ``LABEL_STUDIO_URL``; token from ``LABEL_STUDIO_API_KEY`` or the Prefect
        Secret block ``labelwise-label-studio-api-key``; the rest from ``settings.annotation``."""
        from tasks.secrets import SecretError, block_for, require_secret

        url = os.environ.get(URL_VARIABLE)
        if not url:
            raise AnnotationBackendError(
                f"set {URL_VARIABLE} and {TOKEN_VARIABLE} (or the Prefect Secret block "
                f"{block_for(TOKEN_VARIABLE)!r}) to reach Label Studio "
                "(`labelwise annotation up` prints both)"
            )
        try:
            token = require_secret(TOKEN_VARIABLE)
        except SecretError as exc:
            raise AnnotationBackendError(f"Label Studio token: {exc}", where=url) from None
        cfg = settings.annotation
        return cls(
            url=url,
            token=token,
            classes=list(cfg.ner_labels if cfg.label_config == "ner" else classes),
            kind=cfg.label_config,
            project_title=cfg.project_title,
            annotators_per_item=cfg.annotators_per_item,
            overlap_share=cfg.overlap_share,
            text_field=cfg.text_field,
            image_field=cfg.image_field,
            retry_seconds=cfg.request_retry_seconds,
        )

    # -- HTTP -------------------------------------------------------------------------------

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        where = f"{self.url.rstrip('/')}{path}"
        headers = {"Authorization": f"Token {self.token}"}

        def once() -> Any:
            try:
                response = httpx.request(
                    method, where, headers=headers, timeout=self.timeout, **kwargs
                )
            except httpx.TransportError as exc:
                raise _Transient(None, f"{type(exc).__name__}") from exc
            if response.status_code >= 500 or response.status_code == 429:
                raise _Transient(response.status_code, response.text[:200])
            if response.status_code >= 400:
                raise AnnotationBackendError(
                    f"Label Studio refused {method} {path}: {response.text[:300]}",
                    where=where,
                    status=response.status_code,
                )
            return response.json() if response.content else None

        retrying = Retrying(
            retry=retry_if_exception(lambda e: isinstance(e, _Transient)),
            wait=wait_exponential(multiplier=0.5, max=8.0),
            stop=stop_after_delay(self.retry_seconds),
            reraise=True,
            before_sleep=lambda state: log.warning(
                "Label Studio %s %s failed (%s); retrying", method, path, state.outcome.exception()
            ),
        )
        try:
            return retrying(once)
        except _Transient as exc:
            raise AnnotationBackendError(
                f"Label Studio unreachable after {self.retry_seconds:.0f} s of retries: {exc}",
                where=where,
                status=exc.status,
            ) from None

    # -- project ----------------------------------------------------------------------------

    @property
    def project_id(self) -> int:
        """The project titled ``project_title`` (created and configured on first use)."""
        if self._project is None:
            projects = self._request("GET", "/api/projects", params={"page_size": 1000})
            items = projects.get("results", projects) if isinstance(projects, dict) else projects
            found = [p["id"] for p in items if p.get("title") == self.project_title]
            self._project = found[0] if found else self._create_project()
        return self._project

    def _create_project(self) -> int:
        project = self._request(
            "POST",
            "/api/projects",
            json={
                "title": self.project_title,
                "label_config": label_config(self.kind, self.classes),
                "sampling": "Uncertainty sampling",
                "maximum_annotations": max(1, self.annotators_per_item),
                "overlap_cohort_percentage": round(
                    100 * self.overlap_share if self.annotators_per_item > 1 else 100
                ),
                "show_collab_predictions": True,
            },
        )
        self._request(
            "POST",
            "/api/dm/views",
            json={
                "project": project["id"],
                "data": {"title": VIEW_TITLE, "ordering": [f"tasks:data.{RANK_KEY}"]},
            },
        )
        return int(project["id"])

    def set_model_version(self, model_version: str) -> None:
        """Make ``model_version``'s predictions the ones uncertainty sampling orders by."""
        self._request(
            "PATCH", f"/api/projects/{self.project_id}", json={"model_version": model_version}
        )

    def tasks(self) -> list[dict[str, Any]]:
        """Every task of the project with its annotations (paged)."""
        out: list[dict[str, Any]] = []
        page = 1
        while True:
            body = self._request(
                "GET",
                "/api/tasks",
                params={
                    "project": self.project_id,
                    "page": page,
                    "page_size": 500,
                    "fields": "all",
                },
            )
            batch = body.get("tasks", [])
            out.extend(batch)
            if not batch or len(out) >= int(body.get("total", len(out))):
                return out
            page += 1

    # -- the backend interface --------------------------------------------------------------

    def _prediction(self, row: dict[str, Any], to_name: str) -> list[dict[str, Any]]:
        value = row.get("prediction")
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return []
        if self.kind == "ner":
            text = str(row.get(self.text_field, ""))
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
                for s in _spans(value)
            ]
        return [
            {
                "from_name": "label",
                "to_name": to_name,
                "type": "choices",
                "value": {"choices": [str(value)]},
            }
        ]

    def _task(self, row: dict[str, Any], n: int, model_version: str) -> dict[str, Any]:
        reserved = {*BATCH_COLUMNS, *PREDICTION_COLUMNS, "model_version", "gold"}
        payload = {k: _jsonable(v) for k, v in row.items() if k not in reserved}
        data: dict[str, Any] = {
            ID_KEY: str(row["id"]),
            ROUND_KEY: int(row["round"]),
            RANK_KEY: int(row["rank"]),
            SCORE_KEY: _jsonable(row.get("score")),
            CONFIDENCE_KEY: _jsonable(row.get("prediction_score")),
        }
        if self.kind in ("text_classification", "ner"):
            data["text"] = str(row[self.text_field])
            to_name = "text"
        elif self.kind == "image_classification":
            data["image"] = str(row[self.image_field])
            to_name = "image"
        else:
            data["row"] = payload
            to_name = "row"
        data.update({k: v for k, v in payload.items() if k not in data})
        task: dict[str, Any] = {"data": data}
        result = self._prediction(row, to_name)
        if result:
            task["predictions"] = [
                {
                    "model_version": model_version,
                    "score": (int(row["rank"]) - 1) / max(n, 1),
                    "result": result,
                }
            ]
        return task

    def dispatch(
        self, batch: pd.DataFrame, round_: int, model_version: str | None = None
    ) -> list[str]:
        """Import the batch's new items (ids already in the project are skipped), with the model's
        predictions under ``model_version`` (default: the batch's ``model_version`` column, else
        ``round-<round_>``), and make that version the project's (if the batch has predictions)."""
        check_batch(batch)
        if model_version is None:
            versions = batch["model_version"].dropna() if "model_version" in batch else []
            model_version = str(versions.iloc[0]) if len(versions) else f"round-{round_}"
        existing = {str(t["data"].get(ID_KEY)) for t in self.tasks()}
        rows = batch.assign(round=round_).to_dict(orient="records")
        new = [r for r in rows if str(r["id"]) not in existing]
        if new:
            tasks = [self._task(r, len(batch), model_version) for r in new]
            self._request(
                "POST",
                f"/api/projects/{self.project_id}/import",
                params={"return_task_ids": "true"},
                json=tasks,
            )
        if "prediction" in batch and batch["prediction"].notna().any():
            # Label Studio refuses a version no prediction carries; without predictions the
            # queue cannot be ordered by uncertainty and stays in import order
            self.set_model_version(model_version)
        else:
            log.warning("batch of round %s has no predictions: queue order is import order", round_)
        return [str(r["id"]) for r in new]

    def _user(self, user_id: Any) -> str:
        if user_id is None:
            return "unknown"
        if isinstance(user_id, dict):  # some Label Studio versions expand the user
            user_id = user_id.get("id")
            if user_id is None:
                raise ValueError("completed_by has no id")
        if isinstance(user_id, bool) or not isinstance(user_id, (int, str)):
            raise ValueError(f"completed_by is not a user id: {user_id!r}")
        user_id = int(user_id)
        if user_id not in self._users:
            users = self._request("GET", "/api/users")
            self._users.update({int(u["id"]): u.get("email") or u["username"] for u in users})
        return self._users.get(user_id, f"user-{user_id}")

    def _label(self, result: Any) -> str | None:
        if not isinstance(result, list) or not all(isinstance(r, dict) for r in result):
            raise ValueError("result is not a list of objects")
        mine = [r for r in result if r.get("from_name") == "label"]
        for r in mine:
            if not isinstance(r.get("value", {}), dict):
                raise ValueError("result value is not an object")
        if self.kind == "ner":
            spans = []
            for r in mine:
                value = r.get("value", {})
                labels = value.get("labels")
                if not labels:
                    continue
                start, end = value.get("start"), value.get("end")
                if not (
                    isinstance(labels, list)
                    and isinstance(labels[0], str)
                    and all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end))
                ):
                    raise ValueError(f"span is not start/end/labels: {value!r:.80}")
                spans.append((start, end, labels[0]))
            return json.dumps([{"start": s, "end": e, "label": lab} for s, e, lab in sorted(spans)])
        for r in mine:
            choices = r.get("value", {}).get("choices") or []
            if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
                raise ValueError(f"choices is not a list of text: {choices!r:.80}")
            if choices:
                return choices[0]
        return None

    def _annotation_row(self, data: dict[str, Any], annotation: Any) -> tuple | None:
        if not isinstance(annotation, dict):
            raise ValueError("annotation is not an object")
        if annotation.get("was_cancelled"):
            return None
        label = self._label(annotation.get("result") or [])
        if label is None:
            return None
        created = annotation.get("created_at")
        if not isinstance(created, str):
            raise ValueError(f"created_at is not a date-time: {created!r:.80}")
        try:
            time = pd.Timestamp(created)
        except (ValueError, OverflowError):
            raise ValueError(f"created_at is not a date-time: {created!r:.80}") from None
        if time is pd.NaT:
            raise ValueError(f"created_at is not a date-time: {created!r:.80}")
        return (
            str(data[ID_KEY]),
            label,
            self._user(annotation.get("completed_by")),
            _round(data[ROUND_KEY]),
            time,
            "human",
        )

    def collect(self, round_: int | None = None) -> pd.DataFrame:
        """Every submitted (not skipped) annotation, one row per task x annotator. A task or an
        annotation Label Studio returns in an unexpected shape fails with its id and the field."""
        rows = []
        for task in self.tasks():
            where = f"{self.url.rstrip('/')}/api/tasks/{task.get('id') if isinstance(task, dict) else '?'}"
            try:
                data = task.get("data", {}) if isinstance(task, dict) else None
                if not isinstance(data, dict):
                    raise ValueError("task data is not an object")
                if ID_KEY not in data:
                    continue
                if not isinstance(data[ID_KEY], (str, int)) or isinstance(data[ID_KEY], bool):
                    raise ValueError(f"{ID_KEY} is not an id: {data[ID_KEY]!r:.80}")
                if round_ is not None and _round(data.get(ROUND_KEY)) != round_:
                    continue
                annotations = task.get("annotations") or []
                if not isinstance(annotations, list):
                    raise ValueError("annotations is not a list")
            except ValueError as exc:
                raise AnnotationBackendError(
                    f"unexpected task from Label Studio: {exc}", where=where
                ) from None
            for annotation in annotations:
                try:
                    row = self._annotation_row(data, annotation)
                except ValueError as exc:
                    number = annotation.get("id") if isinstance(annotation, dict) else None
                    raise AnnotationBackendError(
                        f"unexpected annotation {number} of item {data[ID_KEY]!r:.80} from Label "
                        f"Studio: {exc}",
                        where=where,
                    ) from None
                if row is not None:
                    rows.append(row)
        if not rows:
            return empty_annotations()
        return pd.DataFrame(rows, columns=list(ANNOTATION_COLUMNS))

    def progress(self, round_: int) -> Progress:
        tasks = [t for t in self.tasks() if t.get("data", {}).get(ROUND_KEY) == round_]
        done = [
            [a for a in t.get("annotations") or [] if not a.get("was_cancelled")] for t in tasks
        ]
        return Progress(
            dispatched=len(tasks),
            annotated=sum(1 for d in done if d),
            annotations=sum(len(d) for d in done),
        )

    def request_more(self, ids: Sequence[str]) -> None:
        """Ask for one more annotation on each of ``ids`` (low agreement): raise its overlap."""
        wanted = {str(i) for i in ids}
        for task in self.tasks():
            if str(task["data"].get(ID_KEY)) in wanted:
                overlap = int(task.get("overlap") or 1) + 1
                self._request("PATCH", f"/api/tasks/{task['id']}", json={"overlap": overlap})

    def register_webhook(self, url: str) -> int:
        """Ask Label Studio to POST to ``url`` when an annotation is created or updated (once per
        url). Optional: it only wakes a poller early (``base.wait_for``); polling stays the path
        that finds every annotation."""
        hooks = self._request("GET", "/api/webhooks", params={"project": self.project_id})
        for hook in hooks:
            if hook.get("url") == url and hook.get("project") == self.project_id:
                return int(hook["id"])
        hook = self._request(
            "POST",
            "/api/webhooks",
            json={
                "project": self.project_id,
                "url": url,
                "send_payload": False,
                "send_for_all_actions": False,
                "actions": ["ANNOTATION_CREATED", "ANNOTATIONS_CREATED", "ANNOTATION_UPDATED"],
                "is_active": True,
            },
        )
        return int(hook["id"])

    def next_task(self) -> dict[str, Any] | None:
        """The task Label Studio would show an annotator now (``/api/projects/{id}/next``)."""
        try:
            return self._request("GET", f"/api/projects/{self.project_id}/next")
        except AnnotationBackendError as exc:
            if exc.status == 404:
                return None
            raise
