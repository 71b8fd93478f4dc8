"""The one interface every annotation backend implements (Label Studio, simulated, files).

A backend receives a round's batch (``dispatch``), returns every annotation completed so far
(``collect``) and reports progress. Both calls are idempotent: dispatching an id twice is a no-op
and collecting twice returns the same annotations, so a crashed round can simply be rerun.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

#: columns of the batch handed to ``dispatch`` (payload columns such as ``text`` may follow)
BATCH_COLUMNS = ("id", "round", "rank", "score")
#: optional batch columns: the model's predicted label and its probability (pre-annotations)
PREDICTION_COLUMNS = ("prediction", "prediction_score")
#: columns of what ``collect`` returns: one row per annotation (several annotators per item);
#: ``time`` is when the answer was last given, so an edited answer comes back with a new time
#: and supersedes the annotator's earlier one (:func:`tasks.data.store.current_answers`)
ANNOTATION_COLUMNS = ("id", "label", "annotator", "round", "time", "source")


class AnnotationBackendError(RuntimeError):
    """The annotation backend failed; carries where (URL or path) and the status when known."""

    def __init__(self, message: str, *, where: str | None = None, status: int | None = None):
        detail = message
        if where:
            detail += f" ({where}"
            detail += f", status {status})" if status is not None else ")"
        super().__init__(detail)
        self.where = where
        self.status = status


@dataclass(frozen=True)
class Progress:
    """How far a round's batch has come: items sent, items with at least one annotation."""

    dispatched: int
    annotated: int
    annotations: int

    @property
    def fraction(self) -> float:
        return self.annotated / self.dispatched if self.dispatched else 1.0


@runtime_checkable
class AnnotationBackend(Protocol):
    name: str

    def dispatch(self, batch: pd.DataFrame, round_: int) -> list[str]:
        """Send the batch's items; returns the ids newly sent (already-sent ids are skipped)."""
        ...

    def collect(self, round_: int | None = None) -> pd.DataFrame:
        """Every completed annotation (of ``round_``, or all), with ANNOTATION_COLUMNS."""
        ...

    def progress(self, round_: int) -> Progress:
        """Items dispatched and annotated for ``round_``."""
        ...


def empty_annotations() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in ANNOTATION_COLUMNS})


def check_batch(batch: pd.DataFrame) -> None:
    missing = [c for c in BATCH_COLUMNS if c not in batch.columns]
    if missing:
        raise ValueError(f"batch for dispatch is missing column(s): {', '.join(missing)}")
    if batch["id"].duplicated().any():
        raise ValueError("batch for dispatch has duplicate ids")


def wait_for(
    backend: AnnotationBackend,
    round_: int,
    *,
    quorum: float = 1.0,
    timeout: float = 0.0,
    poll_seconds: float = 10.0,
    wake: threading.Event | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Progress:
    """Poll ``backend.progress(round_)`` until ``quorum`` of the batch is annotated or ``timeout``
    seconds pass (on ``clock``, sleeping with ``sleep``); returns the last progress. ``wake`` (set
    by a webhook listener) makes it poll at once instead of at the next interval: a speed-up only,
    polling alone finds every annotation."""
    deadline = clock() + timeout
    while True:
        progress = backend.progress(round_)
        left = deadline - clock()
        if progress.fraction >= quorum or left <= 0:
            return progress
        if wake is None:
            sleep(min(poll_seconds, left))
        else:
            wake.wait(min(poll_seconds, left))
            wake.clear()


class WebhookListener:
    """A tiny local HTTP receiver for Label Studio webhooks: any POST sets ``event``.

    Label Studio sends webhooks with a 1 s timeout and drops failures, so this only shortens
    waits (see :func:`wait_for`); the server needs ``SSRF_PROTECTION_ENABLED=false`` to call a
    localhost URL.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.event = threading.Event()
        self.received = 0
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                listener.received += 1
                listener.event.set()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:  # quiet
                return

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    def __enter__(self) -> WebhookListener:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def jsonable(value: Any) -> Any:
    """``value`` as JSON can hold it: numpy scalars and arrays as Python values, timestamps as
    ISO text, NaN and infinities as null (JSON has neither; diversity and random picks carry no
    score, a tabular row may miss a value)."""
    if isinstance(value, np.generic):
        value = value.item()
    elif isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    elif isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
