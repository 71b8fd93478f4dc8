"""Run a gate's checks as one great-expectations suite, on the rows that can fail them.

A per-row check may say which rows it can fail (``Check.suspects``: a vectorised, conservative
superset of the rows GX would report, e.g. the nulls of a column). A check with no suspect row
passes on that column statistic alone; the others run in GX on the suspect rows only, so a gate
over a million clean rows costs numpy passes, not a GX validation of every row, and its report
and failures are the ones GX gives on the whole frame.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tasks.data.gates import Failure, GateResult
from tasks.telemetry import telemetry_off

Suspects = Callable[[pd.DataFrame], "np.ndarray | None"]


@dataclass
class Check:
    """An expectation to run and how to word its per-row failure.

    ``suspects(df)`` (per-row expectations only) gives a boolean mask holding every row the
    expectation can fail, or None when it cannot tell: then GX checks every row.
    """

    expectation: Any
    reason: str
    column: str | None = None
    suspects: Suspects | None = None


_CONTEXT: list[Any] = []


def _quiet_context() -> Any:
    """One ephemeral GX context per process (each new one leaves a temporary docs directory)."""
    if not _CONTEXT:
        telemetry_off()
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        ctx = gx.get_context(mode="ephemeral")
        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
        _CONTEXT.append(ctx)
    return _CONTEXT[0]


def run_checks(df: pd.DataFrame, name: str, checks: list[Check]) -> GateResult:
    """Run ``checks`` over ``df``; failing rows are read from the index."""
    result = GateResult()
    if not checks:
        return result
    masks = [None if c.suspects is None else c.suspects(df) for c in checks]
    ran = [i for i, mask in enumerate(masks) if mask is None or mask.any()]
    entries: dict[int, dict[str, Any]] = {}
    failures: dict[int, list[Failure]] = {}
    raised: list[int] = []
    if ran:
        frame = df
        if all(masks[i] is not None for i in ran):
            frame = df[np.logical_or.reduce([masks[i] for i in ran])]
        for i, entry, found, error in _validate(frame, name, [checks[i] for i in ran]):
            entries[ran[i]], failures[ran[i]] = entry, found
            if error:
                raised.append(ran[i])
    for i in set(range(len(checks))) - set(entries):
        # no row can fail it: the entry GX gives a passing expectation
        kind = type(checks[i].expectation).expectation_type
        column = getattr(checks[i].expectation, "column", None) or checks[i].column
        entries[i] = {"check": kind, "column": column, "success": True, "unexpected_count": 0}
    rank = _gx_order(checks)
    for i in raised + sorted(set(entries) - set(raised), key=rank.__getitem__):
        result.checks.append(entries[i])
        result.failures += failures.get(i, [])
    return result


def _gx_order(checks: list[Check]) -> list[tuple[int, int]]:
    """GX reports results grouped by column in order of first appearance, then in suite order,
    after those whose metrics raised: the order one suite of all ``checks`` would give."""
    groups: dict[Any, int] = {}
    rank = []
    for position, check in enumerate(checks):
        column = getattr(check.expectation, "column", None)
        group = groups.setdefault(column if isinstance(column, str) else None, len(groups))
        rank.append((group, position))
    return rank


def _validate(
    df: pd.DataFrame, name: str, checks: list[Check]
) -> list[tuple[int, dict[str, Any], list[Failure], bool]]:
    """One GX suite of ``checks`` over ``df``: (check index, report entry, failures, whether it
    raised) per result, in GX's order."""
    import great_expectations as gx

    ctx = _quiet_context()
    name = f"{name}_{uuid.uuid4().hex[:12]}"
    batch = (
        ctx.data_sources.add_pandas(f"{name}_source")
        .add_dataframe_asset(name=name)
        .add_batch_definition_whole_dataframe("whole")
    )
    # the whole suite at once: adding expectations one by one re-saves the suite each time
    ctx.suites.add(
        gx.ExpectationSuite(name=f"{name}_suite", expectations=[c.expectation for c in checks])
    )
    by_id = {str(c.expectation.id): i for i, c in enumerate(checks)}
    definition = ctx.validation_definitions.add(
        gx.ValidationDefinition(name=name, data=batch, suite=ctx.suites.get(f"{name}_suite"))
    )
    try:
        run = definition.run(
            batch_parameters={"dataframe": df}, result_format={"result_format": "COMPLETE"}
        )
    finally:  # the shared context keeps nothing between gates
        ctx.validation_definitions.delete(name)
        ctx.suites.delete(f"{name}_suite")
        ctx.data_sources.delete(f"{name}_source")
    out = []
    # GX does not keep the order of the suite: match each result to its check by expectation id.
    for res in run.results:
        index = by_id[str(res.expectation_config.id)]
        check = checks[index]
        kind = res.expectation_config.type
        column = res.expectation_config.kwargs.get("column", check.column)
        raised = bool(res.exception_info and res.exception_info.get("raised_exception"))
        unexpected = res.result.get("unexpected_index_list") or []
        entry = {
            "check": kind,
            "column": column,
            "success": bool(res.success),
            "unexpected_count": int(res.result.get("unexpected_count") or 0),
        }
        found = []
        if res.success:
            pass
        elif raised:
            message = res.exception_info.get("exception_message", "")
            found.append(Failure(None, column, kind, f"{check.reason}: {message}"))
        elif unexpected:
            found += [Failure(_row(row), column, kind, check.reason) for row in unexpected]
        else:
            found.append(Failure(None, column, kind, check.reason))
        out.append((index, entry, found, _errored(res.exception_info)))
    return out


def _errored(info: Any) -> bool:
    """Whether GX caught an exception for this result (flat, or keyed by the failing metric)."""
    if not isinstance(info, dict):
        return False
    if "raised_exception" in info:
        return bool(info["raised_exception"])
    return any(isinstance(v, dict) and v.get("raised_exception") for v in info.values())


def _row(value: Any) -> int | None:
    if isinstance(value, dict):  # GX gives dicts when index columns are named
        value = next(iter(value.values()), None)
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# --- suspects: the rows a per-row expectation can fail, computed a column at a time ---------------


def null_rows(column: str) -> Suspects:
    """Rows where ``column`` is null (what ExpectColumnValuesToNotBeNull reports)."""
    return lambda df: df[column].isna().to_numpy()


def repeated_rows(column: str) -> Suspects:
    """Rows whose ``column`` value appears more than once (ExpectColumnValuesToBeUnique)."""
    return lambda df: df[column].duplicated(keep=False).to_numpy()


def rows_outside(column: str, low: float | None, high: float | None) -> Suspects:
    """Present values of a numeric ``column`` outside [low, high]; None where GX would raise
    (no bound, low above high) or for other dtypes."""

    def suspects(df: pd.DataFrame) -> np.ndarray | None:
        values = df[column]
        numeric = pd.api.types.is_numeric_dtype(values) and values.dtype.kind != "c"
        if (
            not numeric
            or (low is None and high is None)
            or (None not in (low, high) and low > high)
        ):
            return None
        x = values.to_numpy(dtype=np.float64, na_value=np.nan)
        inside = np.ones(len(x), dtype=bool)
        if low is not None:
            inside &= x >= low
        if high is not None:
            inside &= x <= high
        return ~inside & ~np.isnan(x)

    return suspects


def rows_not_in(column: str, values: list[Any]) -> Suspects:
    """Present values of ``column`` not in ``values`` (ExpectColumnValuesToBeInSet)."""
    return lambda df: (df[column].notna() & ~df[column].isin(values)).to_numpy()
