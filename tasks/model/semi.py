"""Self-training on the unlabeled pool (``model.semi_supervised: self_training``): the model fit on
the labels predicts a sample of the unlabeled rows, and its confident predictions become extra
training rows with a lower weight (``weight x confidence``). One refit, no iterations: cheap, and
it cannot run away from the labels. Off by default until the benchmark shows it helps
(``labelwise benchmark --semi-supervised``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class SelfTraining:
    """Which predictions become pseudo-labels: probability >= ``threshold``, at most
    ``max_rows`` unlabeled rows looked at per fit, each trained on with ``weight x confidence``."""

    threshold: float = 0.9
    weight: float = 0.5
    max_rows: int = 5000


def pseudo_labels(
    fitted: Any,
    X: Any,
    candidates: np.ndarray,
    options: SelfTraining,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows of ``X`` among ``candidates``, their predicted classes, their training weights) for
    the predictions of ``fitted`` at least ``options.threshold`` sure; ``candidates`` (unlabeled
    row indices) are sampled down to ``options.max_rows`` first."""
    candidates = np.asarray(candidates, dtype=np.int64)
    if candidates.shape[0] > options.max_rows:
        candidates = np.sort(rng.choice(candidates, size=options.max_rows, replace=False))
    if candidates.shape[0] == 0:
        return candidates, np.empty(0, dtype=object), np.empty(0)
    probas = np.asarray(fitted.predict_proba(X[candidates]))
    confidence = probas.max(axis=1)
    keep = confidence >= options.threshold
    classes = np.asarray(fitted.classes_)
    return (
        candidates[keep],
        classes[probas[keep].argmax(axis=1)],
        options.weight * confidence[keep],
    )
