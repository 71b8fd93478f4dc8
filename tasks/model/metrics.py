"""Holdout metrics and plots: pure functions of labels and predictions.

``METRICS`` is the one table of metric names: each name's scorer and whether higher is better,
read by model promotion, the loop's random baseline and the label-efficiency benchmark.

ECE uses ``n_bins`` equal-width bins on (0, 1]; bin ``b`` holds confidences in
``((b-1)/n_bins, b/n_bins]`` (Guo et al. 2017), confidence 0 falls in the first bin.

References
----------
Guo, C., Pleiss, G., Sun, Y. & Weinberger, K. Q. (2017). On calibration of modern neural networks.
Kull, M. et al. (2019). Beyond temperature scaling: obtaining well-calibrated multiclass
probabilities with Dirichlet calibration (class-wise ECE). NeurIPS.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    recall_score,
)

OUTSIDE = "O"  # the BIO tag of a token outside every entity


def _bin_index(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    return np.clip(np.ceil(confidence * n_bins).astype(int) - 1, 0, n_bins - 1)


def _binned_gap(confidence: np.ndarray, outcome: np.ndarray, n_bins: int) -> float:
    """``sum_b |B_b|/n * |mean(outcome in B_b) - mean(confidence in B_b)|``."""
    bins = _bin_index(confidence, n_bins)
    conf_sum = np.bincount(bins, weights=confidence, minlength=n_bins)
    hit_sum = np.bincount(bins, weights=outcome, minlength=n_bins)
    return float(np.abs(hit_sum - conf_sum).sum() / confidence.shape[0])


def _codes(y_true: Any, classes: Sequence[Any] | None, n_classes: int) -> np.ndarray:
    y_true = np.asarray(y_true)
    if classes is None:
        return y_true.astype(int)
    classes = np.asarray(classes)
    lookup = {label: i for i, label in enumerate(classes.tolist())}
    try:
        return np.array([lookup[label] for label in y_true.tolist()], dtype=int)
    except KeyError as exc:
        raise ValueError(f"label {exc.args[0]!r} is not among the model's classes") from None


def expected_calibration_error(
    y_true: Any,
    probas: Any,
    n_bins: int = 15,
    kind: Literal["top_label", "classwise"] = "top_label",
    classes: Sequence[Any] | None = None,
) -> float:
    """Expected calibration error.

    Parameters
    ----------
    y_true : array of shape (n_samples,); labels from ``classes`` (or column indices if None).
    probas : array of shape (n_samples, n_classes)
    kind : ``"top_label"``: confidence = max probability, outcome = prediction correct.
        ``"classwise"``: mean over classes k of the ECE of ``p_k`` against ``y == k``.
    """
    probas = np.asarray(probas, dtype=np.float64)
    codes = _codes(y_true, classes, probas.shape[1])
    if kind == "top_label":
        correct = (probas.argmax(axis=1) == codes).astype(np.float64)
        return _binned_gap(probas.max(axis=1), correct, n_bins)
    if kind == "classwise":
        gaps = [
            _binned_gap(probas[:, k], (codes == k).astype(np.float64), n_bins)
            for k in range(probas.shape[1])
        ]
        return float(np.mean(gaps))
    raise ValueError(f"kind must be 'top_label' or 'classwise', got {kind!r}")


def reliability_curve(y_true: Any, probas: Any, n_bins: int = 15, classes: Any = None) -> dict:
    """Per-bin top-label confidence, accuracy and count (empty bins: NaN)."""
    probas = np.asarray(probas, dtype=np.float64)
    codes = _codes(y_true, classes, probas.shape[1])
    confidence = probas.max(axis=1)
    correct = (probas.argmax(axis=1) == codes).astype(np.float64)
    bins = _bin_index(confidence, n_bins)
    count = np.bincount(bins, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(bins, weights=confidence, minlength=n_bins) / count
        acc = np.bincount(bins, weights=correct, minlength=n_bins) / count
    return {
        "confidence": conf,
        "accuracy": acc,
        "count": count,
        "edges": np.linspace(0, 1, n_bins + 1),
    }


def brier_score(codes: np.ndarray, probas: np.ndarray) -> float:
    """Multiclass Brier score: mean over rows of ``sum_k (p_k - [y == k])^2``."""
    onehot = np.eye(probas.shape[1])[codes]
    return float(((probas - onehot) ** 2).sum(axis=1).mean())


# ---- the metric table: name -> scorer and direction -------------------------------------------


@dataclass(frozen=True)
class Metric:
    """A holdout metric: ``score(y_true, y_pred)`` and which way is better.

    ``takes`` says what ``y_pred`` is: ``"labels"`` (predicted classes), ``"probas"`` (array of
    shape (n_samples, n_classes); ``y_true`` as column indices), ``"values"`` (regression
    predictions), ``"intervals"`` (array of shape (n_samples, 2): lower and upper bounds) or
    ``"tags"`` (one tag list per sentence) or ``"regions"`` (boxes / polygons per image).
    """

    score: Callable[..., float]
    higher_is_better: bool = True
    takes: Literal["labels", "probas", "values", "intervals", "tags", "regions"] = "labels"

    @property
    def task(self) -> str:
        """The learning task the metric scores: classification, regression, tokens or
        detection."""
        tasks = {"values": "regression", "intervals": "regression", "tags": "tokens"}
        return (tasks | {"regions": "detection"}).get(self.takes, "classification")


def accuracy(y_true: Any, y_pred: Any) -> float:
    return float(accuracy_score(y_true, y_pred))


def macro_f1(y_true: Any, y_pred: Any) -> float:
    """Unweighted mean of the per-class F1 over the classes in ``y_true`` or ``y_pred``."""
    return float(f1_score(y_true, y_pred, average="macro", zero_division=0))


def rare_class_recall(y_true: Any, y_pred: Any, rare_class: Any = None) -> float:
    """Recall of ``rare_class`` (default: the least frequent class in ``y_true``)."""
    if rare_class is None:
        values, counts = np.unique(np.asarray(y_true), return_counts=True)
        rare_class = values[np.argmin(counts)]
    return float(
        recall_score(y_true, y_pred, labels=[rare_class], average="macro", zero_division=0)
    )


def rmse(y_true: Any, y_pred: Any) -> float:
    return float(np.sqrt(mean_squared_error(y_true, y_pred)))


def _mae(y_true: Any, y_pred: Any) -> float:
    return float(mean_absolute_error(y_true, y_pred))


def _log_loss(codes: np.ndarray, probas: np.ndarray) -> float:
    probas = np.asarray(probas, dtype=np.float64)
    return float(log_loss(codes, _clipped(probas), labels=np.arange(probas.shape[1])))


def _clipped(probas: np.ndarray) -> np.ndarray:
    """Probabilities kept off 0 (log loss is infinite there), rows summing to 1 again."""
    clipped = np.clip(probas, 1e-15, 1.0)
    return clipped / clipped.sum(axis=1, keepdims=True)


def _brier(codes: Any, probas: Any) -> float:
    return brier_score(np.asarray(codes, dtype=int), np.asarray(probas, dtype=np.float64))


def _ece_top_label(codes: Any, probas: Any, n_bins: int = 15) -> float:
    return expected_calibration_error(codes, probas, n_bins, "top_label")


def _ece_classwise(codes: Any, probas: Any, n_bins: int = 15) -> float:
    return expected_calibration_error(codes, probas, n_bins, "classwise")


def interval_coverage(y_true: Any, bounds: Any) -> float:
    """Fraction of ``y_true`` inside ``[lower, upper]`` (``bounds[:, 0]``, ``bounds[:, 1]``)."""
    y_true, bounds = np.asarray(y_true, dtype=np.float64), np.asarray(bounds, dtype=np.float64)
    return float(np.mean((y_true >= bounds[:, 0]) & (y_true <= bounds[:, 1])))


def interval_width(y_true: Any, bounds: Any) -> float:
    """Mean ``upper - lower``."""
    bounds = np.asarray(bounds, dtype=np.float64)
    return float(np.mean(bounds[:, 1] - bounds[:, 0]))


def token_f1(y_true: Sequence[Sequence[str]], y_pred: Sequence[Sequence[str]]) -> float:
    """Entity-token F1: micro F1 over tokens, where a true positive is a token whose predicted tag
    is not "O" and equals the gold tag exactly (B-/I- prefix and type); precision divides by the
    tokens predicted non-"O", recall by the tokens gold non-"O". 0 when both counts are 0."""
    gold = np.concatenate([np.asarray(t, dtype=str) for t in y_true]) if len(y_true) else []
    pred = np.concatenate([np.asarray(t, dtype=str) for t in y_pred]) if len(y_pred) else []
    gold, pred = np.asarray(gold, dtype=str), np.asarray(pred, dtype=str)
    if gold.shape != pred.shape:
        raise ValueError(f"{gold.shape[0]} gold tags but {pred.shape[0]} predicted")
    true_pos = int(np.sum((pred != OUTSIDE) & (pred == gold)))
    n_pred, n_gold = int(np.sum(pred != OUTSIDE)), int(np.sum(gold != OUTSIDE))
    if n_pred + n_gold == 0:
        return 0.0
    return 2.0 * true_pos / (n_pred + n_gold)  # = 2PR / (P + R)


def entity_spans(tags: Sequence[str]) -> set[tuple[int, int, str]]:
    """The entities of a BIO tag sequence as (start, end, type) token spans, end exclusive; an
    ``I-`` tag that does not continue an entity of its type starts one (CoNLL's convention)."""
    spans: set[tuple[int, int, str]] = set()
    start, kind = None, None
    for i, tag in enumerate([*map(str, tags), OUTSIDE]):
        prefix, _, name = tag.partition("-")
        continues = prefix == "I" and kind == name
        if start is not None and not continues:
            spans.add((start, i, kind or ""))
            start, kind = None, None
        if tag != OUTSIDE and not continues:
            start, kind = i, name
    return spans


def entity_f1(y_true: Sequence[Sequence[str]], y_pred: Sequence[Sequence[str]]) -> float:
    """Entity F1 (CoNLL): an entity is right when its span and type both match exactly; micro
    over all sentences. 0 when there are no entities at all."""
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} gold sentences but {len(y_pred)} predicted")
    hit = n_pred = n_gold = 0
    for gold, pred in zip(y_true, y_pred, strict=True):
        g, p = entity_spans(gold), entity_spans(pred)
        hit, n_pred, n_gold = hit + len(g & p), n_pred + len(p), n_gold + len(g)
    return 0.0 if n_pred + n_gold == 0 else 2.0 * hit / (n_pred + n_gold)


def evaluate_tagger(y_true: Sequence[Sequence[str]], y_pred: Sequence[Sequence[str]]) -> dict:
    """Holdout metrics of a token tagger: ``token_f1`` and ``entity_f1``."""
    return {"token_f1": token_f1(y_true, y_pred), "entity_f1": entity_f1(y_true, y_pred)}


#: a predicted box matches a true one of its class from this intersection over union on
DETECTION_IOU = 0.5


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box of ``a`` (n, 4) with every box of ``b`` (m, 4), boxes
    as ``x, y, w, h``: shape (n, m)."""
    a, b = np.asarray(a, dtype=float).reshape(-1, 4), np.asarray(b, dtype=float).reshape(-1, 4)
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, :2] + a[:, None, 2:], b[None, :, :2] + b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0.0, None), axis=2)
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def box_matches(
    y_true: Sequence[Sequence[Any]], y_pred: Sequence[Sequence[Any]], iou: float = DETECTION_IOU
) -> tuple[int, int, int]:
    """(matched, predicted, true) boxes over the images: per image and class, predictions in
    order of score take the unmatched true box they overlap most, if by ``iou`` or more
    (regions are :class:`~tasks.annotation.boxes.Box` / ``Polygon``; a polygon counts as its
    bounding box)."""
    from tasks.annotation.boxes import bounds

    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} true images but {len(y_pred)} predicted")
    hit = n_pred = n_true = 0
    for truth, pred in zip(y_true, y_pred, strict=True):
        n_pred, n_true = n_pred + len(pred), n_true + len(truth)
        for label in {r.label for r in pred} & {r.label for r in truth}:
            mine = sorted((r for r in pred if r.label == label), key=lambda r: -(r.score or 0.0))
            gold = [bounds(r) for r in truth if r.label == label]
            overlap = box_iou(np.array([bounds(r) for r in mine]), np.array(gold))
            free = np.ones(len(gold), dtype=bool)
            for row in overlap:
                row = np.where(free, row, -1.0)
                best = int(row.argmax())
                if row[best] >= iou:
                    free[best], hit = False, hit + 1
    return hit, n_pred, n_true


def box_f1(y_true: Sequence[Sequence[Any]], y_pred: Sequence[Sequence[Any]]) -> float:
    """Detection F1 at IoU ``DETECTION_IOU``: 2 x matched / (predicted + true); 1 when neither
    has a box (nothing to find, nothing claimed)."""
    hit, n_pred, n_true = box_matches(y_true, y_pred)
    return 1.0 if n_pred + n_true == 0 else 2.0 * hit / (n_pred + n_true)


def evaluate_detector(
    y_true: Sequence[Sequence[Any]], y_pred: Sequence[Sequence[Any]]
) -> dict[str, float]:
    """Holdout metrics of a detector (boxes per image): ``box_f1``, ``box_precision`` and
    ``box_recall`` at IoU ``DETECTION_IOU``."""
    hit, n_pred, n_true = box_matches(y_true, y_pred)
    return {
        "box_f1": 1.0 if n_pred + n_true == 0 else 2.0 * hit / (n_pred + n_true),
        "box_precision": hit / n_pred if n_pred else 1.0,
        "box_recall": hit / n_true if n_true else 1.0,
    }


METRICS: dict[str, Metric] = {
    "accuracy": Metric(accuracy),
    "macro_f1": Metric(macro_f1),
    "rare_class_recall": Metric(rare_class_recall),
    "minority_recall": Metric(rare_class_recall),  # the benchmark's name for it
    "log_loss": Metric(_log_loss, higher_is_better=False, takes="probas"),
    "brier": Metric(_brier, higher_is_better=False, takes="probas"),
    "ece_top_label": Metric(_ece_top_label, higher_is_better=False, takes="probas"),
    "ece_classwise": Metric(_ece_classwise, higher_is_better=False, takes="probas"),
    "rmse": Metric(rmse, higher_is_better=False, takes="values"),
    "mae": Metric(_mae, higher_is_better=False, takes="values"),
    "interval_coverage": Metric(interval_coverage, takes="intervals"),
    "interval_width": Metric(interval_width, higher_is_better=False, takes="intervals"),
    "token_f1": Metric(token_f1, takes="tags"),
    "entity_f1": Metric(entity_f1, takes="tags"),
    "box_f1": Metric(box_f1, takes="regions"),
}


def higher_is_better(metric: str) -> bool:
    """Whether a larger ``metric`` is better; names outside the table (``recall_<class>``) are."""
    entry = METRICS.get(metric)
    return True if entry is None else entry.higher_is_better


def evaluate_classifier(
    y_true: Any,
    probas: Any,
    classes: Sequence[Any],
    *,
    n_bins: int = 15,
    rare_class: Any = None,
) -> dict[str, float]:
    """Holdout metrics of a classifier from its probabilities (columns in ``classes`` order).

    Keys: accuracy, macro_f1, recall_<class> per class, rare_class_recall (``rare_class`` or the
    least frequent class in ``y_true``), log_loss, brier, ece_top_label, ece_classwise.
    """
    classes = np.asarray(classes)
    probas = np.asarray(probas, dtype=np.float64)
    codes = _codes(y_true, classes, probas.shape[1])
    pred = probas.argmax(axis=1)
    labels = np.arange(classes.shape[0])
    recalls = recall_score(codes, pred, labels=labels, average=None, zero_division=0)
    if rare_class is None:
        present = np.bincount(codes, minlength=labels.size)
        present = np.where(present > 0, present, np.iinfo(np.int64).max)
        rare_code = int(present.argmin())
    else:
        rare_code = _codes([rare_class], classes, probas.shape[1])[0]
    metrics = {
        "accuracy": float(accuracy_score(codes, pred)),
        "macro_f1": float(f1_score(codes, pred, labels=labels, average="macro", zero_division=0)),
        **{f"recall_{label}": float(r) for label, r in zip(classes.tolist(), recalls, strict=True)},
        "rare_class_recall": float(recalls[rare_code]),
        "log_loss": float(log_loss(codes, _clipped(probas), labels=labels)),
        "brier": brier_score(codes, probas),
        "ece_top_label": expected_calibration_error(codes, probas, n_bins, "top_label"),
        "ece_classwise": expected_calibration_error(codes, probas, n_bins, "classwise"),
    }
    return metrics


def evaluate_regressor(
    y_true: Any,
    y_pred: Any,
    *,
    lower: Any = None,
    upper: Any = None,
    y_std: Any = None,
    level: float = 0.9,
) -> dict[str, float]:
    """RMSE, MAE and, given an interval (``lower``/``upper`` or a Gaussian ``y_std`` at
    ``level``), its empirical coverage and mean width."""
    from scipy.stats import norm

    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    metrics = {
        "rmse": float(np.sqrt(np.mean((y_true - y_pred) ** 2))),
        "mae": float(mean_absolute_error(y_true, y_pred)),
    }
    if y_std is not None:
        half = norm.ppf(0.5 + level / 2.0) * np.asarray(y_std, dtype=np.float64)
        lower, upper = y_pred - half, y_pred + half
    if lower is not None and upper is not None:
        lower, upper = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
        metrics["interval_coverage"] = float(np.mean((y_true >= lower) & (y_true <= upper)))
        metrics["interval_width"] = float(np.mean(upper - lower))
    return metrics
