"""Annotation backends: where selected items go to be labeled, and where labels come back from.

``make_backend(settings)`` builds the one configured in ``params.yaml``'s ``annotation:`` section
(simulated annotators, a Label Studio server, or CSV/JSONL files); ``store_annotations`` appends
what a backend collected to the label store exactly once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.annotation.base import (
    ANNOTATION_COLUMNS,
    BATCH_COLUMNS,
    AnnotationBackend,
    AnnotationBackendError,
    Progress,
)
from tasks.annotation.simulated import SimulatedAnnotator, SimulatedBackend

__all__ = [
    "ANNOTATION_COLUMNS",
    "BATCH_COLUMNS",
    "AnnotationBackend",
    "AnnotationBackendError",
    "Progress",
    "SimulatedAnnotator",
    "SimulatedBackend",
    "make_backend",
    "store_annotations",
]


def make_backend(
    settings: Any,
    *,
    truth: Mapping[str, str] | None = None,
    classes: Sequence[str] | None = None,
    annotators: Sequence[SimulatedAnnotator] | None = None,
) -> AnnotationBackend:
    """The backend named by ``settings.annotation.backend``.

    ``truth`` (id -> label) is required by the simulated backend; ``classes`` default to
    ``settings.data.classes``. Label Studio's URL and token come from the environment.
    """
    cfg = settings.annotation
    classes = list(classes if classes is not None else settings.data.classes)
    work_dir = Path(settings.project.work_dir)
    if cfg.backend == "simulated":
        if truth is None:
            raise ValueError("the simulated annotation backend needs truth= (id -> label)")
        classes = classes or sorted({str(v) for v in truth.values()})
        return SimulatedBackend(
            truth={str(k): str(v) for k, v in truth.items()},
            classes=classes,
            state_file=work_dir / "annotation" / "simulated.parquet",
            annotators=list(annotators) if annotators else [SimulatedAnnotator("oracle")],
            annotators_per_item=cfg.annotators_per_item,
            seed=settings.project.stream_seed("annotators"),
            overlap_share=cfg.overlap_share if cfg.annotators_per_item > 1 else 1.0,
        )
    if cfg.backend == "files":
        from tasks.annotation.files import FilesBackend
        from tasks.data.profile import resolve

        # answers are checked against the classes for classification only: a number or a list
        # of tags per token is checked by the label gate (tasks.data.typed_checks)
        task = resolve(settings).model.task
        return FilesBackend(
            cfg.files_dir or work_dir / "annotation",
            file_format=cfg.file_format,
            classes=(classes or None) if task == "classification" else None,
            task=task,
            text_field=settings.data.text_column or cfg.text_field,
        )
    from tasks.annotation.label_studio import LabelStudioBackend

    return LabelStudioBackend.from_settings(settings, classes)


def store_annotations(collected: pd.DataFrame, settings: Any, *, round_: int) -> pd.DataFrame:
    """Append the annotations of ``collected`` that the label store does not hold yet (through
    the label gate); returns the rows appended. Safe to call after every poll."""
    from tasks.data.labels import collect_labels, new_annotations

    fresh = new_annotations(settings, collected)
    if len(fresh):
        collect_labels(fresh[list(ANNOTATION_COLUMNS)], settings, round_=round_)
    return fresh
