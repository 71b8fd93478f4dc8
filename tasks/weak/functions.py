"""Labeling functions: small rules a domain expert writes instead of labeling rows one by one.

A labeling function takes one pool item (a :class:`Row`: ``row["text"]`` or ``row.text``) and
returns a class label, or ``None`` to abstain. Declared with ``label=``, it votes for that one
label when it returns something true (``True``, the label itself) and abstains otherwise::

    import re
    import labelwise

    @labelwise.labeling_function(name="prize", label="spam")
    def prize(row):
        return re.search(r"\\b(prize|won|winner)\\b", row.text.lower()) is not None

A module of them is loaded by :func:`load_functions` (``weak.module``); :func:`apply_functions`
runs them over a frame of items and returns their votes as class indices (``-1``: abstain).
A function that raises on a row abstains on that row and the error is reported with the row's
id; one that raises on every row, or returns a label outside the project's classes, is an error
naming the function.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

#: a vote of "no opinion" in a vote matrix
ABSTAIN = -1


class LabelingFunctionError(ValueError):
    """A labeling function module or function is unusable; the message names it."""


class Row(dict):
    """One item as a labeling function sees it: its columns by key or by attribute."""

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            columns = ", ".join(map(str, self)) or "none"
            raise AttributeError(f"the item has no column {key!r} (columns: {columns})") from None


@dataclass(frozen=True)
class LabelingFunction:
    """A registered labeling function: its ``name``, the wrapped ``function`` and, when it votes
    for one class only, that ``label``."""

    name: str
    function: Callable[[Row], Any]
    label: Any = None

    def __call__(self, row: Row) -> Any:
        return self.function(row)

    @property
    def version(self) -> str:
        """A hash of the function's source and declared label: a changed function's cached
        votes are recomputed."""
        try:
            source = inspect.getsource(self.function)
        except (OSError, TypeError):
            source = repr(self.function)
        return hashlib.sha256(f"{source}|{self.label!r}".encode()).hexdigest()[:12]

    def vote(self, value: Any) -> str | None:
        """The label a return value stands for, or None (abstain); a ValueError for a value
        that is neither."""
        if self.label is not None:
            if value is None or value is False:
                return None
            if value is True or str(value) == str(self.label):
                return str(self.label)
            raise ValueError(f"returned {value!r}, but it votes for {self.label!r} only")
        if value is None:
            return None
        if isinstance(value, bool | np.bool_):
            raise ValueError(
                f"returned {value!r}: return a class label or None, or declare the one label "
                "it votes for with labeling_function(label=...)"
            )
        return str(value)


def labeling_function(
    name: str | None = None, label: Any = None
) -> Callable[[Callable[[Row], Any]], LabelingFunction]:
    """Register a function as a labeling function (its ``name`` defaults to the function's)."""

    def register(function: Callable[[Row], Any]) -> LabelingFunction:
        return LabelingFunction(name or function.__name__, function, label)

    return register


def import_module(module: str, root: Path | None = None) -> Any:
    """``module`` as a dotted name (``package.module``) or a ``.py`` path (relative to
    ``root``), imported; a :class:`LabelingFunctionError` naming it when it does not import."""
    path = Path(module) if module.endswith(".py") else None
    if path is not None and not path.is_absolute() and root is not None:
        path = root / path
    try:
        if path is None:
            if root is not None and str(root) not in sys.path:
                sys.path.insert(0, str(root))
            return importlib.import_module(module)
        if not path.is_file():
            raise FileNotFoundError(f"no such file {path}")
        spec = importlib.util.spec_from_file_location(f"labelwise_lf_{path.stem}", path)
        loaded = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        spec.loader.exec_module(loaded)  # type: ignore[union-attr]
        return loaded
    except SyntaxError as exc:
        raise LabelingFunctionError(
            f"weak.module {module!r} does not import: {exc.filename}, line {exc.lineno}: {exc.msg}"
        ) from exc
    except Exception as exc:  # any error while importing user code is reported
        raise LabelingFunctionError(
            f"weak.module {module!r} does not import: {type(exc).__name__}: {exc}"
        ) from exc


def load_functions(
    module: str, names: Sequence[str] = (), root: Path | None = None
) -> list[LabelingFunction]:
    """The labeling functions defined in ``module`` (in definition order), or only ``names``."""
    found = [
        v for v in vars(import_module(module, root)).values() if isinstance(v, LabelingFunction)
    ]
    by_name: dict[str, LabelingFunction] = {}
    for function in found:
        if function.name in by_name and by_name[function.name] is not function:
            raise LabelingFunctionError(
                f"weak.module {module!r}: two labeling functions are named {function.name!r}"
            )
        by_name[function.name] = function
    if not by_name:
        raise LabelingFunctionError(
            f"weak.module {module!r} defines no labeling function "
            "(decorate them with @labelwise.labeling_function(...))"
        )
    missing = [n for n in names if n not in by_name]
    if missing:
        raise LabelingFunctionError(
            f"weak.functions: {missing} not in {module!r}; it defines {sorted(by_name)}"
        )
    return [by_name[n] for n in names] if names else list(by_name.values())


@dataclass(frozen=True)
class FunctionError:
    """A function that raised on a row: the row's id and the error."""

    function: str
    id: str
    error: str


@dataclass
class Votes:
    """Votes of ``functions`` on items ``ids``: ``matrix[i, j]`` is the index in ``classes`` of
    function j's label for item i, or ``ABSTAIN``."""

    ids: np.ndarray
    functions: list[str]
    matrix: np.ndarray
    classes: list[str]
    errors: list[FunctionError] = field(default_factory=list)
    n_errors: dict[str, int] = field(default_factory=dict)

    def subset(self, functions: Sequence[str]) -> Votes:
        """These votes for ``functions`` only (in that order)."""
        columns = [self.functions.index(f) for f in functions]
        errors = [e for e in self.errors if e.function in functions]
        counts = {f: self.n_errors.get(f, 0) for f in functions}
        return Votes(
            self.ids, list(functions), self.matrix[:, columns], self.classes, errors, counts
        )


def apply_functions(
    functions: Sequence[LabelingFunction],
    items: pd.DataFrame,
    classes: Sequence[str],
    *,
    id_column: str = "id",
    fail_on_all: bool = True,
) -> Votes:
    """Each function's vote on each item of ``items`` (one row per item, with ``id_column``);
    with ``fail_on_all``, a function that raises on every item is an error."""
    classes = [str(c) for c in classes]
    index = {c: k for k, c in enumerate(classes)}
    ids = items[id_column].astype(str).to_numpy()
    records = [Row(r) for r in items.to_dict("records")]
    matrix = np.full((len(records), len(functions)), ABSTAIN, dtype=np.int16)
    errors: list[FunctionError] = []
    n_errors: dict[str, int] = {}
    for j, function in enumerate(functions):
        failed = 0
        for i, row in enumerate(records):
            try:
                label = function.vote(function(row))
            except Exception as exc:  # a rule failing on a row abstains there
                failed += 1
                errors.append(FunctionError(function.name, ids[i], f"{type(exc).__name__}: {exc}"))
                continue
            if label is None:
                continue
            if label not in index:
                raise LabelingFunctionError(
                    f"labeling function {function.name!r} returned {label!r} for item {ids[i]!r}, "
                    f"which is not one of data.classes {classes}"
                )
            matrix[i, j] = index[label]
        n_errors[function.name] = failed
        if fail_on_all and records and failed == len(records):
            first = next(e for e in errors if e.function == function.name)
            raise LabelingFunctionError(
                f"labeling function {function.name!r} raised on every item ({failed}); on item "
                f"{first.id!r}: {first.error}"
            )
    return Votes(ids, [f.name for f in functions], matrix, classes, errors, n_errors)
