"""Validation gates (great-expectations 1.x): at ingest, at label collection, before training.

A gate runs an expectation suite on a DataFrame whose index is the 1-based row number in the
input. If anything fails, every failing row goes to ``quarantine/<gate>-<time>.parquet`` with a
reason per row, the gate's summary is recorded in ``validation/round-N.json``, and a
``ValidationError`` naming the file, the first failing row and its column is raised. Gates never
write the pool or the labels: callers append only after a gate has passed.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import pandas as pd

from tasks.data import store

QUARANTINE_COLUMNS = ("gate", "file", "row", "column", "check", "reason", "record")


class ValidationError(ValueError):
    """Input failed a gate; carries the file, the first failing row and column, and the reason."""

    def __init__(
        self,
        file: str | Path,
        row: int | None,
        column: str | None,
        reason: str,
        *,
        gate: str,
        quarantine: Path | None = None,
        failures: int = 1,
    ) -> None:
        self.file, self.row, self.column, self.reason = str(file), row, column, reason
        self.gate, self.quarantine, self.failures = gate, quarantine, failures
        super().__init__(self.message)

    @property
    def message(self) -> str:
        where = [self.file]
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        text = f"{', '.join(where)}: {self.reason} ({self.gate} gate"
        if self.failures > 1:
            text += f"; {self.failures} problems in all"
        if self.quarantine is not None:
            text += f"; quarantined in {self.quarantine}"
        return text + ")"


@dataclass
class Failure:
    """One failing cell (or row, or column when ``row`` is None)."""

    row: int | None
    column: str | None
    check: str
    reason: str


@dataclass
class Check:
    """An expectation to run and how to word its per-row failure."""

    expectation: Any
    reason: str
    column: str | None = None


@dataclass
class GateResult:
    failures: list[Failure] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)


_CONTEXT: list[Any] = []


def _quiet_context() -> Any:
    """One ephemeral GX context per process (each new one leaves a temporary docs directory)."""
    if not _CONTEXT:
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        ctx = gx.get_context(mode="ephemeral")
        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
        _CONTEXT.append(ctx)
    return _CONTEXT[0]


def run_checks(df: pd.DataFrame, name: str, checks: list[Check]) -> GateResult:
    """Run ``checks`` as one GX suite over ``df``; failing rows are read from the index."""
    import great_expectations as gx

    result = GateResult()
    if not checks:
        return result
    ctx = _quiet_context()
    name = f"{name}_{uuid.uuid4().hex[:12]}"
    batch = (
        ctx.data_sources.add_pandas(f"{name}_source")
        .add_dataframe_asset(name=name)
        .add_batch_definition_whole_dataframe("whole")
    )
    suite = ctx.suites.add(gx.ExpectationSuite(name=f"{name}_suite"))
    by_id = {}
    for check in checks:
        added = suite.add_expectation(check.expectation)
        by_id[str(added.id)] = check
    definition = ctx.validation_definitions.add(
        gx.ValidationDefinition(name=name, data=batch, suite=suite)
    )
    try:
        run = definition.run(
            batch_parameters={"dataframe": df}, result_format={"result_format": "COMPLETE"}
        )
    finally:  # the shared context keeps nothing between gates
        ctx.validation_definitions.delete(name)
        ctx.suites.delete(f"{name}_suite")
        ctx.data_sources.delete(f"{name}_source")
    # GX does not keep the order of the suite: match each result to its check by expectation id.
    for res in run.results:
        check = by_id[str(res.expectation_config.id)]
        kind = res.expectation_config.type
        column = res.expectation_config.kwargs.get("column", check.column)
        raised = bool(res.exception_info and res.exception_info.get("raised_exception"))
        unexpected = res.result.get("unexpected_index_list") or []
        result.checks.append(
            {
                "check": kind,
                "column": column,
                "success": bool(res.success),
                "unexpected_count": int(res.result.get("unexpected_count") or 0),
            }
        )
        if res.success:
            continue
        if raised:
            message = res.exception_info.get("exception_message", "")
            result.failures.append(Failure(None, column, kind, f"{check.reason}: {message}"))
        elif unexpected:
            for row in unexpected:
                result.failures.append(Failure(_row(row), column, kind, check.reason))
        else:
            result.failures.append(Failure(None, column, kind, check.reason))
    return result


def _row(value: Any) -> int | None:
    if isinstance(value, dict):  # GX gives dicts when index columns are named
        value = next(iter(value.values()), None)
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _record(df: pd.DataFrame | None, row: int | None) -> str | None:
    if df is None or row is None or row not in df.index:
        return None
    values = df.loc[row]
    if isinstance(values, pd.DataFrame):  # duplicate index labels
        values = values.iloc[0]
    return json.dumps({str(k): _plain(v) for k, v in values.items()}, default=str)


def _plain(value: Any) -> Any:
    if value is None or (not isinstance(value, (list, dict, str)) and pd.isna(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def conclude(
    gate: str,
    where: Any,
    file: str | Path,
    result: GateResult,
    *,
    df: pd.DataFrame | None = None,
    round_: int | None = None,
    rows: int | None = None,
) -> dict[str, Any]:
    """Record the gate's summary; on failure write the quarantine file and raise."""
    failures = _dedupe(result.failures)
    round_ = store.latest_round(where) if round_ is None else round_
    summary: dict[str, Any] = {
        "gate": gate,
        "file": str(file),
        "time": datetime.now(UTC).isoformat(),
        "rows": int(rows if rows is not None else (len(df) if df is not None else 0)),
        "success": not failures,
        "failed_rows": len({f.row for f in failures if f.row is not None}),
        "problems": len(failures),
        "checks": result.checks,
        "quarantine": None,
    }
    quarantine = None
    if failures:
        quarantine = write_quarantine(where, gate, file, failures, df)
        summary["quarantine"] = str(quarantine)
        summary["first_problem"] = {
            "row": failures[0].row,
            "column": failures[0].column,
            "reason": failures[0].reason,
        }
    store.write_validation_summary(where, round_, gate, summary)
    if failures:
        first = failures[0]
        raise ValidationError(
            file,
            first.row,
            first.column,
            first.reason,
            gate=gate,
            quarantine=quarantine,
            failures=len(failures),
        )
    return summary


def _dedupe(failures: list[Failure]) -> list[Failure]:
    # one problem per cell: a row's null that also fails the range check is reported once
    seen: set[tuple[int | None, str | None, str]] = set()
    out = []
    for failure in sorted(failures, key=lambda f: (f.row is not None, f.row or 0)):
        key = (failure.row, failure.column, failure.reason if failure.row is None else "")
        if key not in seen:
            seen.add(key)
            out.append(failure)
    return out


def write_quarantine(
    where: Any,
    gate: str,
    file: str | Path,
    failures: list[Failure],
    df: pd.DataFrame | None = None,
) -> Path:
    """Write the failing rows, one reason each, to ``quarantine/<gate>-<UTC time>.parquet``."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    path = store.data_paths(where).quarantine / f"{gate}-{stamp}.parquet"
    table = pd.DataFrame(
        {
            "gate": gate,
            "file": str(file),
            "row": pd.array([f.row for f in failures], dtype="Int64"),
            "column": [f.column for f in failures],
            "check": [f.check for f in failures],
            "reason": [f.reason for f in failures],
            "record": [_record(df, f.row) for f in failures],
        },
        columns=list(QUARANTINE_COLUMNS),
    )
    store.write_parquet_atomic(table, path)
    return path


def reject(
    gate: str,
    where: Any,
    file: str | Path,
    row: int | None,
    column: str | None,
    reason: str,
    *,
    check: str = "readable",
    round_: int | None = None,
) -> NoReturn:
    """Fail a gate before any expectation can run (unreadable file, bad encoding, empty file)."""
    result = GateResult(failures=[Failure(row, column, check, reason)])
    result.checks.append(
        {"check": check, "column": column, "success": False, "unexpected_count": 1}
    )
    conclude(gate, where, file, result, round_=round_, rows=0)
    raise AssertionError("conclude raises when there are failures")  # pragma: no cover


# --- the gates ----------------------------------------------------------------------------------


def ingest_checks(df: pd.DataFrame, data: Any, *, holdout: bool = False) -> list[Check]:
    """Expectations for a freshly read input (``data`` is ``settings.data``)."""
    import great_expectations.expectations as gxe

    checks = [Check(gxe.ExpectColumnValuesToBeUnique(column="id"), "duplicate id")]
    for column in df.columns:
        if column not in data.nullable_columns:
            checks.append(Check(gxe.ExpectColumnValuesToNotBeNull(column=column), "missing value"))
    for column, (low, high) in data.value_ranges.items():
        if column in df.columns:
            reason = f"value outside [{low}, {high}] (data.value_ranges)"
            checks.append(
                Check(
                    gxe.ExpectColumnValuesToBeBetween(column=column, min_value=low, max_value=high),
                    reason,
                )
            )
    if holdout and data.classes and data.label_column in df.columns:
        checks.append(_in_classes(data.label_column, data.classes))
    return checks


def _in_classes(column: str, classes: list[str]) -> Check:
    import great_expectations.expectations as gxe

    shown = ", ".join(map(repr, classes[:10])) + (", ..." if len(classes) > 10 else "")
    return Check(
        gxe.ExpectColumnValuesToBeInSet(column=column, value_set=list(classes)),
        f"label not in data.classes ({shown})",
    )


def schema_failures(df: pd.DataFrame, required: list[str]) -> list[Failure]:
    """A failure per required column that is missing (checked with GX before anything else)."""
    import great_expectations.expectations as gxe

    checks = [
        Check(gxe.ExpectColumnToExist(column=c), "missing column", column=c) for c in required
    ]
    return run_checks(df, "schema", checks).failures


def numeric_failures(df: pd.DataFrame, columns: list[str]) -> tuple[pd.DataFrame, list[Failure]]:
    """Coerce ``columns`` to numbers; a failure per value that is present but not a number."""
    out = df.copy()
    failures = []
    for column in columns:
        if column not in out.columns or pd.api.types.is_numeric_dtype(out[column]):
            continue
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

    df = _numbered(labels)
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
    pool_ids = store.read_pool(where)["id"].astype(str).tolist()
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
    if settings.data.classes:
        checks.append(_in_classes("label", [str(c) for c in settings.data.classes]))
    df["id"] = df["id"].map(lambda v: v if v is None or pd.isna(v) else str(v))
    df["label"] = df["label"].map(lambda v: v if v is None or pd.isna(v) else str(v))
    result = run_checks(df, "labels", checks)
    result.failures = own + result.failures
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
    df = _numbered(labels)
    holdout_ids = store.read_holdout(where)["id"].astype(str).tolist()
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


def _numbered(df: pd.DataFrame) -> pd.DataFrame:
    out = df.reset_index(drop=True).copy()
    out.index = pd.RangeIndex(1, len(out) + 1)
    return out
