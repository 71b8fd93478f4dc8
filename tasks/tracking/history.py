"""The rounds of a loop as a table, read back from MLflow (``labelwise history``)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from tasks.tracking.runs import LOOP_TAG, ROUND_TAG, Tracking

DEFAULT_METRICS = ("accuracy", "macro_f1", "rare_class_recall", "log_loss", "ece_top_label")


def latest_loop_run_id(tracking: Tracking) -> str | None:
    """The most recently started loop (parent) run of the experiment."""
    import mlflow

    runs = mlflow.MlflowClient().search_runs(
        [tracking.experiment_id],
        filter_string=f"tags.`{LOOP_TAG}` = 'loop'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def round_history(
    tracking: Tracking, loop_run_id: str | None = None, metrics: Sequence[str] = DEFAULT_METRICS
) -> pd.DataFrame:
    """One row per round of the loop (default: the latest): round, n_labels, ``metrics``,
    champion (version serving after the round), promoted, flags, run_id."""
    import mlflow

    columns = ["round", "n_labels", *metrics, "champion", "promoted", "flags", "run_id"]
    loop_run_id = loop_run_id or latest_loop_run_id(tracking)
    if loop_run_id is None:
        return pd.DataFrame(columns=columns)
    runs = mlflow.MlflowClient().search_runs(
        [tracking.experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{loop_run_id}'",
        max_results=10_000,
    )
    rows = []
    for run in runs:
        tags, values = run.data.tags, run.data.metrics
        rows.append(
            {
                "round": int(tags.get(ROUND_TAG, -1)),
                "n_labels": int(values["n_labels"]) if "n_labels" in values else None,
                **{name: values.get(name) for name in metrics},
                "champion": tags.get("labelwise.champion_version"),
                "promoted": tags.get("labelwise.promoted") == "true",
                "flags": tags.get("labelwise.flags", ""),
                "run_id": run.info.run_id,
            }
        )
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values("round", ignore_index=True)
