"""How a gate ends: failures, the quarantine file, the per-round summary and ``ValidationError``.

A gate's input is a DataFrame whose index is the 1-based row number in the input. If anything
fails, every failing row goes to ``quarantine/<gate>-<time>.parquet`` with a reason per row, the
gate's summary is recorded in ``validation/round-N.json``, and a ``ValidationError`` naming the
file, the first failing row and its column is raised. Gates never write the pool or the labels:
callers append only after a gate has passed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import pandas as pd

from tasks.data import store
from tasks.data.json_rows import PLAIN, json_rows, plain

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
class GateResult:
    """A gate's failures and its report: one entry per check run."""

    failures: list[Failure] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)


def numbered(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``df`` indexed by 1-based row number."""
    out = df.reset_index(drop=True).copy()
    out.index = pd.RangeIndex(1, len(out) + 1)
    return out


def _records(df: pd.DataFrame | None, rows: list[int | None]) -> list[str | None]:
    """Each failing row's values as JSON, as ``df.loc[row]`` holds them (None for a failure of
    no row or of a row not in ``df``)."""
    if df is None:
        return [None] * len(rows)
    keep = df.index.isin([r for r in rows if r is not None]) & ~df.index.duplicated()
    found = df[keep]  # a repeated row label: its first row
    # one row of a frame holds the frame's common dtype: floats for ints and floats together
    common = found.iloc[:1].to_numpy().dtype
    keys = [json.dumps(str(c)) for c in found.columns]
    if not keys or len(set(keys)) < len(keys) or common.kind not in "Oiufb":
        by_row = {row: _record(found.loc[row]) for row in found.index}
    else:
        frame = found if common.kind == "O" else found.astype(common)
        pieces = [f"{{{keys[0]}: ", *(f", {k}: " for k in keys[1:])]
        rows_json = json_rows(frame, list(frame.columns), pieces, "}", PLAIN)
        texts = [t for part in rows_json for t in part.to_pylist()]
        by_row = dict(zip(found.index, texts, strict=True))
    return [by_row.get(r) if r is not None else None for r in rows]


def _record(values: pd.Series) -> str:
    return json.dumps({str(k): plain(v) for k, v in values.items()}, default=str)


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
            "record": _records(df, [f.row for f in failures]),
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
