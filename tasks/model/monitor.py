"""Monitoring each round: Evidently drift reports, class balance, per-group fairness
metrics and the calibration trend, with thresholds from ``params.yaml``'s ``monitor:`` section.

Checks that cross a threshold are returned as flags (and logged by :func:`log_monitoring` as a
warning, run tags and metrics); :func:`next_random_fraction` turns a drift flag into a larger
random share of the next batch. Evidently is imported inside functions (6-15 s import).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import recall_score

from tasks.settings import MonitorSettings

log = logging.getLogger(__name__)

# Checks whose flag means the labeled set no longer represents the data: they raise the random
# fraction of the next batch.
DRIFT_CHECKS = frozenset({"sampling_bias", "production_drift", "class_balance"})


@dataclass(frozen=True)
class Check:
    """One monitoring check: its value against its threshold, and the report it wrote."""

    name: str
    flagged: bool
    value: float
    threshold: float
    detail: str
    report: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MonitorResult:
    checks: tuple[Check, ...]

    @property
    def flags(self) -> dict[str, bool]:
        return {check.name: check.flagged for check in self.checks}

    @property
    def flagged(self) -> list[str]:
        return [check.name for check in self.checks if check.flagged]

    @property
    def drift_flagged(self) -> bool:
        return any(check.flagged and check.name in DRIFT_CHECKS for check in self.checks)

    def get(self, name: str) -> Check:
        for check in self.checks:
            if check.name == name:
                return check
        raise KeyError(name)


def _sample(frame: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    return frame.sample(max_rows, random_state=seed) if len(frame) > max_rows else frame


def _column_drifted(method: str, value: float, threshold: float) -> bool:
    # Evidently reports p-values for statistical tests (drift: p < threshold) and distances for
    # the others, e.g. Wasserstein on larger samples (drift: distance >= threshold).
    return value < threshold if "p_value" in method else value >= threshold


def _column_test(
    reference: pd.Series, current: pd.Series, categorical: bool, threshold: float | None
) -> tuple[float, bool]:
    """One column's drift score and verdict by Evidently's default test for its type and sizes
    (what its ``ValueDrift`` metric computes before it draws the column's charts)."""
    from evidently.legacy.calculations.stattests import get_stattest
    from evidently.legacy.core import ColumnType

    kind = ColumnType.Categorical if categorical else ColumnType.Numerical
    reference = reference.replace([-np.inf, np.inf], np.nan).dropna()
    current = current.replace([-np.inf, np.inf], np.nan).dropna()
    if reference.empty or current.empty:
        raise ValueError(f"column {reference.name!r} has no finite value to test for drift")
    result = get_stattest(reference, current, kind, None)(reference, current, kind, threshold)
    return float(result.drift_score), bool(result.drifted)


def drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    name: str,
    drift_share: float,
    column_threshold: float | None = None,
    categorical: Sequence[str] = (),
    html_path: Path | str | None = None,
    max_rows: int = 20_000,
    seed: int = 0,
) -> Check:
    """Evidently data-drift report of ``current`` against ``reference`` (their common columns).

    Flagged when the share of drifted columns reaches ``drift_share``; ``extra`` holds the
    per-column scores and the list of drifted columns.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    columns = [c for c in reference.columns if c in set(current.columns)]
    if not columns:
        raise ValueError(f"{name}: reference and current share no columns")
    categorical = [c for c in categorical if c in columns]
    numerical = [
        c for c in columns if c not in categorical and pd.api.types.is_numeric_dtype(reference[c])
    ]
    categorical += [c for c in columns if c not in categorical and c not in numerical]
    definition = DataDefinition(numerical_columns=numerical, categorical_columns=categorical)
    ref_rows = _sample(reference[columns], max_rows, seed)
    cur_rows = _sample(current[columns], max_rows, seed)
    scores: dict[str, float] = {}
    drifted: list[str] = []
    report = None
    if html_path is None:  # the same tests as the report's, without its charts (~2/3 of its time)
        for column in columns:
            scores[column], column_drifted = _column_test(
                ref_rows[column], cur_rows[column], column in categorical, column_threshold
            )
            if column_drifted:
                drifted.append(column)
    else:
        ref = Dataset.from_pandas(ref_rows, data_definition=definition)
        cur = Dataset.from_pandas(cur_rows, data_definition=definition)
        preset = DataDriftPreset(
            columns=columns, drift_share=drift_share, threshold=column_threshold
        )
        snapshot = Report([preset]).run(current_data=cur, reference_data=ref)
        for metric in json.loads(snapshot.json())["metrics"]:
            config = metric["config"]
            if not config["type"].endswith(":ValueDrift"):
                continue
            value = float(metric["value"])
            scores[config["column"]] = value
            if _column_drifted(config["method"], value, float(config["threshold"])):
                drifted.append(config["column"])
        report = Path(html_path)
        report.parent.mkdir(parents=True, exist_ok=True)
        snapshot.save_html(str(report))
    share = len(drifted) / len(columns)
    return Check(
        name=name,
        flagged=share >= drift_share,
        value=share,
        threshold=drift_share,
        detail=f"{len(drifted)}/{len(columns)} columns drifted: {', '.join(drifted) or 'none'}",
        report=report,
        extra={"column_scores": scores, "drifted_columns": drifted},
    )


def class_shares(labels: Any, classes: Sequence[Any]) -> np.ndarray:
    labels = pd.Series(np.asarray(labels))
    counts = labels.value_counts().reindex(list(classes), fill_value=0).to_numpy(dtype=float)
    return counts / max(counts.sum(), 1.0)


def class_balance(
    labeled_y: Any,
    pool_pred: Any,
    classes: Sequence[Any],
    *,
    max_distance: float,
    html_path: Path | str | None = None,
) -> Check:
    """Class shares of the labeled set against the predicted class shares of the pool; flagged
    when their total-variation distance ``0.5 * sum_k |p_k - q_k|`` exceeds ``max_distance``.
    The HTML report is Evidently's drift of the label column (reference: predicted pool)."""
    labeled = class_shares(labeled_y, classes)
    pool = class_shares(pool_pred, classes)
    distance = float(0.5 * np.abs(labeled - pool).sum())
    report = None
    if html_path is not None:
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

        definition = DataDefinition(categorical_columns=["label"])
        ref = Dataset.from_pandas(
            pd.DataFrame({"label": np.asarray(pool_pred).astype(str)}), data_definition=definition
        )
        cur = Dataset.from_pandas(
            pd.DataFrame({"label": np.asarray(labeled_y).astype(str)}), data_definition=definition
        )
        snapshot = Report([DataDriftPreset(columns=["label"])]).run(
            current_data=cur, reference_data=ref
        )
        report = Path(html_path)
        report.parent.mkdir(parents=True, exist_ok=True)
        snapshot.save_html(str(report))
    shares = {
        str(c): {"labeled": float(a), "pool_predicted": float(b)}
        for c, a, b in zip(classes, labeled, pool, strict=True)
    }
    return Check(
        name="class_balance",
        flagged=distance > max_distance,
        value=distance,
        threshold=max_distance,
        detail=f"total-variation distance {distance:.3f} (labeled vs predicted pool)",
        report=report,
        extra={"shares": shares},
    )


def group_metrics(y_true: Any, y_pred: Any, groups: Any, classes: Sequence[Any]) -> dict[str, Any]:
    """Per-group macro recall and predicted-class rates; ``demographic_parity_difference`` is the
    largest gap, over classes, between the groups' rates of predicting that class (for two
    classes: the usual positive-rate gap) and ``recall_gap`` the largest gap in macro recall."""
    y_true, y_pred, groups = np.asarray(y_true), np.asarray(y_pred), np.asarray(groups)
    per_group: dict[str, dict[str, Any]] = {}
    rates = []
    for group in pd.unique(groups):
        rows = groups == group
        rate = class_shares(y_pred[rows], classes)
        rates.append(rate)
        per_group[str(group)] = {
            "n": int(rows.sum()),
            "recall": float(
                recall_score(
                    y_true[rows],
                    y_pred[rows],
                    labels=list(classes),
                    average="macro",
                    zero_division=0,
                )
            ),
            "predicted_rate": {str(c): float(r) for c, r in zip(classes, rate, strict=True)},
        }
    rates_arr = np.array(rates)
    recalls = [g["recall"] for g in per_group.values()]
    return {
        "groups": per_group,
        "demographic_parity_difference": float((rates_arr.max(0) - rates_arr.min(0)).max()),
        "recall_gap": float(max(recalls) - min(recalls)),
    }


def fairness_checks(
    y_true: Any, y_pred: Any, groups: Any, classes: Sequence[Any], settings: MonitorSettings
) -> list[Check]:
    metrics = group_metrics(y_true, y_pred, groups, classes)
    column = settings.sensitive_column
    dpd, gap = metrics["demographic_parity_difference"], metrics["recall_gap"]
    return [
        Check(
            "demographic_parity",
            dpd > settings.max_demographic_parity_difference,
            dpd,
            settings.max_demographic_parity_difference,
            f"largest gap in predicted-class rate between {column} groups: {dpd:.3f}",
            extra={"groups": metrics["groups"]},
        ),
        Check(
            "group_recall",
            gap > settings.max_recall_gap,
            gap,
            settings.max_recall_gap,
            f"largest gap in macro recall between {column} groups: {gap:.3f}",
        ),
    ]


def calibration_check(ece: float, previous: Sequence[float], settings: MonitorSettings) -> Check:
    """ECE this round against ``max_ece`` and its rise over the previous round."""
    rise = ece - previous[-1] if len(previous) else 0.0
    flagged = ece > settings.max_ece or rise > settings.max_ece_increase
    return Check(
        "calibration",
        flagged,
        float(ece),
        settings.max_ece,
        f"top-label ECE {ece:.3f} (previous rounds: "
        f"{', '.join(f'{v:.3f}' for v in previous) or 'none'}; rise {rise:+.3f})",
        extra={"ece_trend": [*map(float, previous), float(ece)]},
    )


def run_monitoring(
    settings: MonitorSettings,
    out_dir: Path | str,
    *,
    classes: Sequence[Any] | None = None,
    labeled_X: pd.DataFrame | None = None,
    pool_X: pd.DataFrame | None = None,
    reference_X: pd.DataFrame | None = None,
    new_X: pd.DataFrame | None = None,
    labeled_y: Any = None,
    pool_pred: Any = None,
    holdout_y: Any = None,
    holdout_pred: Any = None,
    holdout_groups: Any = None,
    ece: float | None = None,
    ece_history: Sequence[float] = (),
    categorical: Sequence[str] = (),
    seed: int = 0,
) -> MonitorResult:
    """Every check whose inputs are given: sampling bias (labeled vs pool features), production
    drift (new vs reference), class balance, fairness on the sensitive column, calibration."""
    out = Path(out_dir)
    html = settings.html_reports
    checks: list[Check] = []
    drift = {
        "drift_share": settings.drift_share,
        "column_threshold": settings.column_threshold,
        "categorical": categorical,
        "seed": seed,
    }
    if labeled_X is not None and pool_X is not None:
        checks.append(
            drift_report(
                pool_X,
                labeled_X,
                name="sampling_bias",
                **drift,
                html_path=out / "sampling_bias.html" if html else None,
            )
        )
    if reference_X is not None and new_X is not None and len(new_X):
        checks.append(
            drift_report(
                reference_X,
                new_X,
                name="production_drift",
                **drift,
                html_path=out / "production_drift.html" if html else None,
            )
        )
    if labeled_y is not None and pool_pred is not None and classes is not None:
        checks.append(
            class_balance(
                labeled_y,
                pool_pred,
                classes,
                max_distance=settings.max_class_balance_distance,
                html_path=out / "class_balance.html" if html else None,
            )
        )
    if (
        settings.sensitive_column
        and holdout_groups is not None
        and holdout_y is not None
        and holdout_pred is not None
        and classes is not None
    ):
        checks.extend(fairness_checks(holdout_y, holdout_pred, holdout_groups, classes, settings))
    if ece is not None:
        checks.append(calibration_check(ece, ece_history, settings))
    return MonitorResult(tuple(checks))


def next_random_fraction(current: float, result: MonitorResult, settings: MonitorSettings) -> float:
    """The random fraction of the next batch: raised to ``random_fraction_on_drift`` when a drift
    check (sampling bias, production drift, class balance) fired, else ``current``."""
    if result.drift_flagged:
        return max(current, settings.random_fraction_on_drift)
    return current


def log_monitoring(result: MonitorResult, step: int | None = None) -> None:
    """Log into the active MLflow run: ``monitor.<check>`` metrics (and ``.flag``), tags
    ``labelwise.flag.<check>`` and ``labelwise.flags``, the HTML reports under ``monitoring/``,
    ``monitoring/checks.json``; and a warning for every flagged check."""
    import mlflow

    from tasks.tracking.runs import finite_metrics

    metrics: dict[str, float] = {}
    tags = {}
    for check in result.checks:
        metrics[f"monitor.{check.name}"] = check.value
        metrics[f"monitor.{check.name}.flag"] = float(check.flagged)
        tags[f"labelwise.flag.{check.name}"] = str(check.flagged).lower()
        if check.flagged:
            log.warning(
                "monitor: %s crossed its threshold %s: %s",
                check.name,
                check.threshold,
                check.detail,
            )
        if check.report is not None:
            mlflow.log_artifact(str(check.report), artifact_path="monitoring")
    tags["labelwise.flags"] = ",".join(result.flagged) or "none"
    mlflow.log_metrics(finite_metrics(metrics), step=step)
    mlflow.set_tags(tags)
    summary = [
        {**asdict(check), "report": check.report.name if check.report else None}
        for check in result.checks
    ]
    mlflow.log_text(json.dumps(summary, indent=2, default=str), "monitoring/checks.json")
