"""Holdout metrics and plots: pure functions of labels and predictions.

ECE uses ``n_bins`` equal-width bins on (0, 1]; bin ``b`` holds confidences in
``((b-1)/n_bins, b/n_bins]`` (Guo et al. 2017), confidence 0 falls in the first bin.

References
----------
Guo, C., Pleiss, G., Sun, Y. & Weinberger, K. Q. (2017). On calibration of modern neural networks.
Kull, M. et al. (2019). Beyond temperature scaling: obtaining well-calibrated multiclass
probabilities with Dirichlet calibration (class-wise ECE). NeurIPS.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    mean_absolute_error,
    recall_score,
)

# Metrics where lower is better; every other metric is higher-is-better.
LOWER_IS_BETTER = frozenset(
    {"log_loss", "brier", "ece_top_label", "ece_classwise", "rmse", "mae", "interval_width"}
)


def higher_is_better(metric: str) -> bool:
    return metric not in LOWER_IS_BETTER


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
        "log_loss": float(log_loss(codes, np.clip(probas, 1e-15, 1.0), labels=labels)),
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


def _figure() -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(5.5, 4.5), dpi=100)


def _save(fig: Any, path: Path | str) -> Path:
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
    return path


def plot_reliability_diagram(
    y_true: Any, probas: Any, path: Path | str, *, n_bins: int = 15, classes: Any = None
) -> Path:
    """Top-label reliability diagram (accuracy per confidence bin against the diagonal) as PNG."""
    curve = reliability_curve(y_true, probas, n_bins, classes)
    ece = expected_calibration_error(y_true, probas, n_bins, "top_label", classes)
    fig, ax = _figure()
    edges = curve["edges"]
    filled = curve["count"] > 0
    ax.bar(
        edges[:-1][filled],
        curve["accuracy"][filled],
        width=1.0 / n_bins,
        align="edge",
        edgecolor="black",
        alpha=0.7,
        label="accuracy",
    )
    ax.plot([0, 1], [0, 1], "k--", label="perfect calibration")
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1),
        xlabel="confidence (top label)",
        ylabel="accuracy",
        title=f"Reliability diagram (ECE {ece:.3f}, {n_bins} bins)",
    )
    ax.legend(loc="upper left")
    return _save(fig, path)


def plot_confusion_matrix(
    y_true: Any, y_pred: Any, classes: Sequence[Any], path: Path | str
) -> Path:
    """Confusion matrix (rows: true class, columns: predicted) with counts, as PNG."""
    matrix = confusion_matrix(np.asarray(y_true), np.asarray(y_pred), labels=np.asarray(classes))
    fig, ax = _figure()
    image = ax.imshow(matrix, cmap="Blues")
    fig.colorbar(image, ax=ax)
    ticks = np.arange(len(classes))
    ax.set(
        xticks=ticks,
        yticks=ticks,
        xticklabels=[str(c) for c in classes],
        yticklabels=[str(c) for c in classes],
        xlabel="predicted",
        ylabel="true",
        title="Confusion matrix (holdout)",
    )
    limit = matrix.max() / 2.0 if matrix.size else 0
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(
            j, i, str(value), ha="center", va="center", color="white" if value > limit else "black"
        )
    return _save(fig, path)


def plot_learning_curve(
    history: Mapping[str, Sequence[tuple[float, float]]],
    path: Path | str,
    *,
    x_label: str = "labels",
) -> Path:
    """One line per metric: ``history[name] = [(n_labels, value), ...]``, as PNG."""
    fig, ax = _figure()
    for name, points in history.items():
        if points:
            xs, ys = zip(*sorted(points), strict=True)
            ax.plot(xs, ys, marker="o", label=name)
    ax.set(xlabel=x_label, ylabel="holdout metric", title="Learning curve")
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)
