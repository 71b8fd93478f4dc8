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

What annotators see (``label_studio_config``): a text; an image (a file of the worker's is sent
inline as a ``data:`` URI, since Label Studio cannot read it; http(s) URLs as they are); a table
row; for NER the sentence (its tokens joined by single spaces, where spans are marked and
collected, :mod:`tasks.annotation.spans`) with the model's tags as span pre-annotations; for the
``number`` config (regression) a Number control over the item as ``data.kind`` shows it.

Collection polls ``/api/tasks`` (retries with exponential backoff ride out a restarting server);
the token is sent only in the ``Authorization`` header and never logged or put in errors.
"""

from __future__ import annotations

import base64
import logging
import mimetypes
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
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
    jsonable,
)
from tasks.annotation.label_studio_config import REGIONS, item_view, label_config
from tasks.annotation.label_studio_payloads import (
    CONFIDENCE_KEY,
    ID_KEY,
    RANK_KEY,
    ROUND_KEY,
    SCORE_KEY,
    PayloadError,
    Task,
    prediction_result,
    read_task,
)
from tasks.annotation.spans import sentence

log = logging.getLogger(__name__)

URL_VARIABLE = "LABEL_STUDIO_URL"
TOKEN_VARIABLE = "LABEL_STUDIO_API_KEY"
VIEW_TITLE = "labelwise: most informative first"


#: a URL Label Studio loads itself (``data:``, ``http(s)://``, a connected cloud storage's
#: ``s3://``, ``gs://`` ...); ``file://`` would name a file of the worker's
_URL = re.compile(r"^(data:|(?!file://)[A-Za-z][A-Za-z0-9+.-]*://)")


def image_source(value: Any) -> str:
    """What an Image tag can load: a URL as it is, a local file as a ``data:<mime>;base64,`` URI
    (Label Studio runs elsewhere and cannot read the worker's files)."""
    text = str(value)
    if _URL.match(text):
        return text
    path = Path(text)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise AnnotationBackendError(
            f"image {text!r} cannot be sent to Label Studio: {exc.strerror or exc}", where=text
        ) from None
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return f"data:{mime};base64,{base64.b64encode(raw).decode('ascii')}"


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
    #: the project's ``data.kind``: how the ``number`` config shows an item; ``tokens``: as a sentence
    data_kind: str = "tabular"
    retry_seconds: float = 90.0
    timeout: float = 30.0
    name: str = "label_studio"
    _project: int | None = field(default=None, init=False, repr=False)
    _users: dict[int, str] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Any, classes: Sequence[str]) -> LabelStudioBackend:
        """URL from ``LABEL_STUDIO_URL``; token from ``LABEL_STUDIO_API_KEY`` or the Prefect
        Secret block ``labelwise-label-studio-api-key``; the rest from ``settings.annotation``
        (and ``data.kind``, resolved from the project's data when ``auto``)."""
        from tasks.data.profile import resolve
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
            data_kind=resolve(settings).data.kind,
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
                "label_config": label_config(self.kind, self.classes, self.data_kind),
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

    def _task(self, row: dict[str, Any], n: int, model_version: str) -> dict[str, Any]:
        reserved = {*BATCH_COLUMNS, *PREDICTION_COLUMNS, "model_version", "gold"}
        payload = {k: jsonable(v) for k, v in row.items() if k not in reserved}
        data: dict[str, Any] = {
            ID_KEY: str(row["id"]),
            ROUND_KEY: int(row["round"]),
            RANK_KEY: int(row["rank"]),
            SCORE_KEY: jsonable(row.get("score")),
            CONFIDENCE_KEY: jsonable(row.get("prediction_score")),
        }
        view = item_view(self.kind, self.data_kind)
        tokens: list[str] = []
        if view == "text" and (self.kind == "ner" or self.data_kind == "tokens"):
            from tasks.features.space import as_tokens

            # spans are marked, collected and converted to tags on this very text
            tokens = as_tokens(row[self.text_field])
            data["text"] = sentence(tokens)
        elif view == "text":
            data["text"] = str(row[self.text_field])
        elif view == "image":
            data["image"] = image_source(row[self.image_field])
        else:
            data["row"] = payload
        data.update({k: v for k, v in payload.items() if k not in data})
        task: dict[str, Any] = {"data": data}
        size = None
        if self.kind in REGIONS and row.get("prediction") is not None:
            from tasks.annotation.boxes import image_size

            size = image_size(row[self.image_field])
        result = prediction_result(row.get("prediction"), self.kind, view, tokens, size)
        if result is not None:
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

    def _user(self, user_id: int | None) -> str:
        if user_id is None:
            return "unknown"
        if user_id not in self._users:
            users = self._request("GET", "/api/users")
            self._users.update({int(u["id"]): u.get("email") or u["username"] for u in users})
        return self._users.get(user_id, f"user-{user_id}")

    def _labelwise_tasks(self, round_: int | None) -> Iterator[Task[Any]]:
        """The tasks labelwise dispatched (of ``round_``, or all), read from Label Studio's JSON."""
        for raw in self.tasks():
            try:
                task = read_task(raw, self.kind, round_)
            except PayloadError as exc:
                number = "?" if exc.task is None else exc.task
                raise AnnotationBackendError(
                    f"unexpected {exc.subject} from Label Studio: {exc.detail}",
                    where=f"{self.url.rstrip('/')}/api/tasks/{number}",
                ) from None
            if task is not None:
                yield task

    def collect(self, round_: int | None = None) -> pd.DataFrame:
        """Every submitted (not skipped) annotation, one row per task x annotator, at the time it
        was last updated (an edited answer comes back as a new answer, superseding the old one).
        A task or an annotation in an unexpected shape fails with its id and the field."""
        rows = [
            (t.data.item, label, self._user(a.completed_by), t.data.round, a.answered_at, "human")
            for t in self._labelwise_tasks(round_)
            for a in t.annotations
            if (label := a.label) is not None
        ]
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
