"""Plots of a round: reliability diagram, confusion matrix, learning curve (matplotlib, Agg)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix

from tasks.model.metrics import expected_calibration_error, reliability_curve


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
