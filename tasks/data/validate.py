"""The gates' expectations (great-expectations 1.x): at ingest, at label collection, before training.

Each gate builds its list of checks here and runs them with ``checks.run_checks``; ``gates``
holds what a failure leads to (quarantine, summary, ``ValidationError``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.data import store
from tasks.data.profile import resolve
from tasks.data.typed_checks import label_failures
from tasks.data.checks import (
    Check,
    null_rows,
    repeated_rows,
    rows_not_in,
    rows_outside,
    run_checks,
)
from tasks.data.gates import (
    QUARANTINE_COLUMNS,
    Failure,
    GateResult,
    ValidationError,
    conclude,
    numbered,
    reject,
    write_quarantine,
)

__all__ = [  # the gate machinery, importable from here as before the split
    "QUARANTINE_COLUMNS",
    "Check",
    "Failure",
    "GateResult",
    "ValidationError",
    "conclude",
    "ingest_checks",
    "label_value_failures",
    "numeric_failures",
    "reject",
    "run_checks",
    "schema_failures",
    "validate_labels",
    "validate_training",
    "write_quarantine",
]


def ingest_checks(
    df: pd.DataFrame, data: Any, *, holdout: bool = False, class_labels: bool = True
) -> list[Check]:
    """Expectations for a freshly read input (``data`` is ``settings.data``); ``class_labels``:
    a holdout's labels are classes (not a detection task's regions)."""
    import great_expectations.expectations as gxe

    checks = [
        Check(
            gxe.ExpectColumnValuesToBeUnique(column="id"),
            "duplicate id",
            suspects=repeated_rows("id"),
        )
    ]
    for column in df.columns:
        if column not in data.nullable_columns:
            checks.append(
                Check(
                    gxe.ExpectColumnValuesToNotBeNull(column=column),
                    "missing value",
                    suspects=null_rows(column),
                )
            )
    for column, (low, high) in data.value_ranges.items():
        if column in df.columns:
            checks.append(
                Check(
                    gxe.ExpectColumnValuesToBeBetween(column=column, min_value=low, max_value=high),
                    f"value outside [{low}, {high}] (data.value_ranges)",
                    suspects=rows_outside(column, low, high),
                )
            )
    if holdout and class_labels and data.classes and data.label_column in df.columns:
        checks.append(_in_classes(data.label_column, data.classes))
    return checks


def _in_classes(column: str, classes: list[str]) -> Check:
    import great_expectations.expectations as gxe

    shown = ", ".join(map(repr, classes[:10])) + (", ..." if len(classes) > 10 else "")
    return Check(
        gxe.ExpectColumnValuesToBeInSet(column=column, value_set=list(classes)),
        f"label not in data.classes ({shown})",
        suspects=rows_not_in(column, list(classes)),
    )


def schema_failures(df: pd.DataFrame, required: list[str]) -> list[Failure]:
    """A failure per required column that is missing (checked with GX before anything else)."""
    import great_expectations.expectations as gxe

    checks = [
        Check(gxe.ExpectColumnToExist(column=c), "missing column", column=c) for c in required
    ]
    return run_checks(df.iloc[:0], "schema", checks).failures  # names only: no rows needed


def numeric_failures(df: pd.DataFrame, columns: list[str]) -> tuple[pd.DataFrame, list[Failure]]:
    """Coerce ``columns`` to numbers; a failure per value that is present but not a number.

    Returns a converted copy of ``df``, or ``df`` itself when every column is numeric already.
    """
    todo = [c for c in columns if c in df.columns and not pd.api.types.is_numeric_dtype(df[c])]
    out = df.copy() if todo else df
    failures = []
    for column in todo:
        coerced = pd.to_numeric(out[column], errors="coerce")
        bad = coerced.isna() & out[column].notna()
        for row in out.index[bad]:
            reason = f"not a number: {out.at[row, column]!r}"
            failures.append(Failure(int(row), column, "expect_column_values_to_be_of_type", reason))
        out[column] = coerced
    return out, failures


def validate_labels(
    labels: pd.DataFrame,
    settings: Any,
    *,
    file: str | Path = "labels",
    round_: int | None = None,
) -> dict[str, Any]:
    """Label-collection gate: known id, label in ``data.classes``, annotator present, valid source.

    ``labels`` is indexed by 1-based row number (``reset_index`` is applied if it is not).
    """
    import great_expectations.expectations as gxe

    df = numbered(labels)
    where = settings
    schema = [
        Failure(None, str(c), "unique_column", "column name appears twice")
        for c in df.columns[df.columns.duplicated()].unique()
    ] or schema_failures(df, list(store.LABEL_COLUMNS))
    if schema:
        return conclude("labels", where, file, GateResult(schema), df=df, round_=round_)
    # values the log cannot store are failures of their own cell, then blanked for the GX checks
    df, own = label_value_failures(df)
    df["annotator"] = df["annotator"].map(lambda v: v.strip() if isinstance(v, str) else v)
    pool = store.read_pool(where)
    # the answers' ids found in the pool: GX's value set stays the size of the answers, not of
    # the pool (a 100k-id set cost GX ~10 s per round copying its configuration)
    answered = df["id"].dropna().astype(str).unique()
    pool_ids = sorted(set(answered) & set(pool["id"].astype(str)))
    checks = [
        Check(gxe.ExpectColumnValuesToNotBeNull(column=c), "missing value")
        for c in store.LABEL_COLUMNS
    ]
    checks += [
        Check(gxe.ExpectColumnValuesToBeInSet(column="id", value_set=pool_ids), "id not in pool"),
        Check(
            gxe.ExpectColumnValueLengthsToBeBetween(column="annotator", min_value=1),
            "empty annotator",
        ),
        Check(
            gxe.ExpectColumnValuesToBeInSet(column="source", value_set=list(store.LABEL_SOURCES)),
            f"source not one of {', '.join(store.LABEL_SOURCES)}",
        ),
    ]
    settings = resolve(settings)  # what an answer must be depends on the task
    if settings.data.classes and settings.model.task == "classification":
        checks.append(_in_classes("label", [str(c) for c in settings.data.classes]))
    df["id"] = df["id"].map(lambda v: v if v is None or pd.isna(v) else str(v))
    df["label"] = df["label"].map(lambda v: v if v is None or pd.isna(v) else str(v))
    result = run_checks(df, "labels", checks)
    # numbers for a regression, a tag per token for NER (typed_checks)
    result.failures = own + label_failures(df, settings, pool) + result.failures
    return conclude("labels", where, file, result, df=df, round_=round_)


TEXT_COLUMNS = ("id", "label", "annotator", "source")


def _missing(value: Any) -> bool:
    return (
        value is None
        or (isinstance(value, (float, np.floating)) and np.isnan(value))
        or (value is pd.NaT)
    )


def _whole(value: Any) -> int | None:
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value) if -(2**63) <= int(value) < 2**63 else None
    if isinstance(value, (float, np.floating)) and np.isfinite(value) and float(value).is_integer():
        return int(value)
    return None


def _timestamp(value: Any) -> pd.Timestamp | None:
    if isinstance(value, (bool, np.bool_, int, float, np.number)):
        return None  # a bare number has no unit: refuse to guess seconds or nanoseconds
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
        return None
    if stamp is pd.NaT or not pd.Timestamp.min.tz_localize(None) < stamp.tz_localize(None) < (
        pd.Timestamp.max.tz_localize(None)
    ):
        return None
    return stamp


def label_value_failures(df: pd.DataFrame) -> tuple[pd.DataFrame, list[Failure]]:
    """A failure per label-row value of the wrong type (nested or non-text id/label/annotator/
    source, a round that is not a whole number, a time that is not a date-time) and per repeated
    (id, annotator, round); returns them and ``df`` with those cells blanked."""
    out = df.copy()
    failures: list[Failure] = []
    check = "expect_column_values_to_be_of_type"
    for column in TEXT_COLUMNS:
        for row, value in out[column].items():
            if isinstance(value, (list, tuple, dict, set, bytes, np.ndarray)):
                shown = repr(value)[:60]
                failures.append(Failure(int(row), column, check, f"not a text value: {shown}"))
                out.at[row, column] = None
    for row, value in out["round"].items():
        if not _missing(value) and _whole(value) is None:
            reason = f"round is not a whole number: {repr(value)[:60]}"
            failures.append(Failure(int(row), "round", check, reason))
            out.at[row, "round"] = None
    for row, value in out["time"].items():
        if not _missing(value) and _timestamp(value) is None:
            reason = f"not a date-time (or out of range): {repr(value)[:60]}"
            failures.append(Failure(int(row), "time", check, reason))
            out.at[row, "time"] = None
    key = pd.DataFrame(
        {c: out[c].map(lambda v: None if _missing(v) else str(v)) for c in ("id", "annotator")}
    )
    key["round"] = out["round"].map(lambda v: None if _missing(v) else _whole(v))  # 2 == 2.0
    complete = key.notna().all(axis=1)
    repeated = key[complete].duplicated(keep="first")
    first = {}
    for row, values in key[complete].iterrows():
        first.setdefault(tuple(values), int(row))
    for row in repeated.index[repeated]:
        earlier = first[tuple(key.loc[row])]
        reason = f"duplicate annotation: same id, annotator and round as row {earlier}"
        failures.append(Failure(int(row), "id", "unique_annotation", reason))
    return out, failures


def validate_training(
    labels: pd.DataFrame,
    settings: Any,
    *,
    file: str | Path | None = None,
    round_: int | None = None,
) -> dict[str, Any]:
    """Before-training gate: at least ``data.min_per_class`` labels per class, no holdout id."""
    import great_expectations.expectations as gxe

    where = settings
    file = file or store.data_paths(where).labels
    df = numbered(labels)
    # only the holdout ids found among the labels: GX's value set stays small (see validate_labels)
    holdout = set(store.read_holdout(where)["id"].astype(str))
    holdout_ids = sorted(holdout & set(df["id"].dropna().astype(str)))
    result = run_checks(
        df,
        "training",
        [
            Check(
                gxe.ExpectColumnValuesToNotBeInSet(column="id", value_set=holdout_ids),
                "holdout id in the training labels",
            )
        ],
    )
    classes = [str(c) for c in settings.data.classes] or sorted(df["label"].dropna().unique())
    counts = df["label"].value_counts().reindex(classes, fill_value=0)
    count_df = pd.DataFrame({"label": classes, "count": counts.to_numpy()})
    minimum = settings.data.min_per_class
    per_class = run_checks(
        count_df,
        "training_counts",
        [
            Check(
                gxe.ExpectColumnValuesToBeBetween(column="count", min_value=minimum),
                f"fewer than data.min_per_class={minimum} labels",
            )
        ],
    )
    result.checks += per_class.checks
    for failure in per_class.failures:
        row = failure.row or 0
        label, count = count_df.iloc[row]["label"], int(count_df.iloc[row]["count"])
        result.failures.append(
            Failure(
                None,
                "label",
                failure.check,
                f"class {label!r} has {count} label(s), fewer than data.min_per_class={minimum}",
            )
        )
    return conclude("training", where, file, result, df=df, round_=round_)
