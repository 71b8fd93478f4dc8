"""The labeling-function report (Snorkel's ``LFAnalysis`` table, and more): per function its
coverage, overlaps and conflicts on the pool, its empirical accuracy on the human labels and on
the holdout, its errors, and whether the project keeps it (``weak.min_coverage``,
``weak.min_accuracy``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from tasks.weak.functions import ABSTAIN, Votes

REPORT_COLUMNS = [
    "function", "polarity", "coverage", "overlaps", "conflicts", "n_errors",
    "accuracy_human", "n_human", "accuracy_holdout", "n_holdout", "kept", "why",
]  # fmt: skip


def coverage_stats(matrix: np.ndarray) -> pd.DataFrame:
    """Per function (column): ``coverage`` (share of rows it votes on), ``overlaps`` (share of
    rows it and another function vote on) and ``conflicts`` (share of rows where another
    function votes a different class)."""
    voted = matrix != ABSTAIN
    n = max(matrix.shape[0], 1)
    others = voted.sum(axis=1, keepdims=True) - voted
    conflicts = np.zeros(matrix.shape[1])
    for j in range(matrix.shape[1]):
        differs = voted & (matrix != matrix[:, [j]])
        conflicts[j] = (voted[:, j] & differs.any(axis=1)).sum() / n
    return pd.DataFrame(
        {
            "coverage": voted.sum(axis=0) / n,
            "overlaps": (voted & (others > 0)).sum(axis=0) / n,
            "conflicts": conflicts,
        }
    )


def empirical_accuracy(votes: Votes, truth: Mapping[str, str]) -> pd.DataFrame:
    """Per function: ``accuracy`` among the items of ``truth`` (id -> label) it voted on, and
    ``n`` (how many those are); accuracy NaN where n is 0."""
    known = np.array([i in truth for i in votes.ids], dtype=bool)
    index = {c: k for k, c in enumerate(votes.classes)}
    y = np.array([index.get(str(truth[i]), -2) for i in votes.ids[known]], dtype=np.int64)
    matrix = votes.matrix[known]
    voted = matrix != ABSTAIN
    n = voted.sum(axis=0)
    right = (voted & (matrix == y[:, None])).sum(axis=0)
    accuracy = np.where(n > 0, right / np.maximum(n, 1), np.nan)
    return pd.DataFrame({"accuracy": accuracy, "n": n})


def polarity(matrix: np.ndarray, classes: list[str]) -> list[str]:
    """The classes each function has voted for, joined by ``|``."""
    return ["|".join(classes[k] for k in np.unique(col[col != ABSTAIN])) for col in matrix.T]


def lf_report(
    pool: Votes,
    human: Mapping[str, str],
    holdout: Votes | None = None,
    holdout_truth: Mapping[str, str] | None = None,
    *,
    min_coverage: float = 0.0,
    min_accuracy: float = 0.0,
    min_evaluated: int = 10,
) -> pd.DataFrame:
    """One row per function (``REPORT_COLUMNS``). A function is dropped (``kept`` False, with
    ``why``) below ``min_coverage`` on the pool, or below ``min_accuracy`` on the human labels
    once it has voted on ``min_evaluated`` of them."""
    stats = coverage_stats(pool.matrix)
    on_human = empirical_accuracy(pool, human)
    report = pd.DataFrame(
        {
            "function": pool.functions,
            "polarity": polarity(pool.matrix, pool.classes),
            **{c: stats[c].to_numpy() for c in stats.columns},
            "n_errors": [pool.n_errors.get(f, 0) for f in pool.functions],
            "accuracy_human": on_human["accuracy"].to_numpy(),
            "n_human": on_human["n"].to_numpy(),
        }
    )
    if holdout is not None and holdout_truth is not None:
        on_holdout = empirical_accuracy(holdout, holdout_truth)
        report["accuracy_holdout"] = on_holdout["accuracy"].to_numpy()
        report["n_holdout"] = on_holdout["n"].to_numpy()
    else:
        report["accuracy_holdout"], report["n_holdout"] = np.nan, 0
    why = []
    for row in report.itertuples():
        if row.coverage < min_coverage:
            why.append(f"coverage {row.coverage:.3f} < weak.min_coverage {min_coverage}")
        elif row.n_human >= min_evaluated and row.accuracy_human < min_accuracy:
            why.append(
                f"accuracy {row.accuracy_human:.3f} on {row.n_human} human labels "
                f"< weak.min_accuracy {min_accuracy}"
            )
        else:
            why.append("")
    report["why"] = why
    report["kept"] = report["why"] == ""
    return report[REPORT_COLUMNS]


def metric_name(function: str) -> str:
    """A function name as MLflow takes it in a metric key."""
    return re.sub(r"[^A-Za-z0-9_.\-/ ]", "_", function)


def log_report(summary: dict[str, Any], round_: int) -> None:
    """Log a round's weak supervision in the active MLflow run: ``weak.n_labels``,
    ``weak.coverage``, per function ``weak.<name>.<coverage|conflicts|accuracy_human|...>``, and
    the whole report as ``weak/lf_report_round_NNN.json``."""
    import mlflow

    from tasks.tracking.runs import log_json

    metrics = {"weak.n_labels": summary["n_weak_labels"], "weak.coverage": summary["coverage"]}
    for row in summary["functions"]:
        for key in ("coverage", "overlaps", "conflicts", "n_errors", "accuracy_human",
                    "accuracy_holdout", "label_model_accuracy"):  # fmt: skip
            if row.get(key) is not None:
                metrics[f"weak.{metric_name(row['function'])}.{key}"] = float(row[key])
        metrics[f"weak.{metric_name(row['function'])}.kept"] = float(bool(row["kept"]))
    mlflow.log_metrics(metrics, step=round_)
    log_json(summary, f"weak/lf_report_round_{round_:03d}.json")
