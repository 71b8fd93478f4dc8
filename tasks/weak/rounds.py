"""Weak supervision in a round: the functions' votes on the pool (cached per item and function
version), the report, and the weak labels the label model gives, stored apart from the human
label log (``<data_dir>/weak_labels.parquet``, ``source: weak``; never in the holdout)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.data import store
from tasks.settings import Settings
from tasks.weak.functions import (
    ABSTAIN,
    FunctionError,
    LabelingFunction,
    LabelingFunctionError,
    Votes,
    apply_functions,
    load_functions,
)
from tasks.weak.label_model import confident_labels
from tasks.weak.report import lf_report

WEAK_COLUMNS = ["id", "label", "probability", "source", "round", "label_model"]


@dataclass
class WeakVotes:
    """The kept functions' votes on the pool, and the report that decided which are kept."""

    votes: Votes
    report: pd.DataFrame


def functions_of(settings: Settings) -> list[LabelingFunction]:
    """The project's labeling functions (``weak.module``, ``weak.functions``)."""
    if not settings.weak.module:
        raise LabelingFunctionError("weak.module is not set: no labeling functions to run")
    return load_functions(settings.weak.module, settings.weak.functions, root=Path.cwd())


def project_classes(
    settings: Settings, functions: list[LabelingFunction], human: pd.DataFrame
) -> list[str]:
    """``data.classes``, else the classes of the human labels and the functions' declared ones."""
    if settings.data.classes:
        return [str(c) for c in settings.data.classes]
    seen = set(human["label"].astype(str)) if len(human) else set()
    seen |= {str(f.label) for f in functions if f.label is not None}
    return sorted(seen)


def cache_dir(settings: Settings) -> Path:
    return Path(settings.project.work_dir) / "weak"


def cached_votes(
    settings: Settings, functions: list[LabelingFunction], items: pd.DataFrame, classes: list[str]
) -> Votes:
    """:func:`apply_functions` on ``items``, run only for items and function versions not in
    the cache (``<work_dir>/weak/votes.parquet``: one column per function version, the label
    voted or null; ``errors.parquet``: the rows a function raised on)."""
    folder = cache_dir(settings)
    votes_file, errors_file = folder / "votes.parquet", folder / "errors.parquet"
    keys = [f"{f.name}@{f.version}" for f in functions]
    ids = items["id"].astype(str)
    cache = pd.read_parquet(votes_file) if votes_file.exists() else pd.DataFrame({"id": []})
    errors = (
        pd.read_parquet(errors_file)
        if errors_file.exists()
        else pd.DataFrame({"key": [], "id": [], "error": []}, dtype=str)
    )
    cache = cache.set_index(cache["id"].astype(str)).drop(columns="id")
    for key, function in zip(keys, functions, strict=True):
        done = set(cache.index[cache[key].notna()]) if key in cache.columns else set()
        failed = set(errors.loc[errors["key"] == key, "id"])
        todo = ~ids.isin(done | failed).to_numpy()
        if not todo.any():
            continue
        fresh = apply_functions([function], items[todo], classes, fail_on_all=False)
        column = pd.Series(
            [classes[k] if k != ABSTAIN else "" for k in fresh.matrix[:, 0]],
            index=fresh.ids,
            dtype=object,
        )  # "" = abstained (null = not run yet)
        cache = cache.reindex(cache.index.union(column.index))
        if key not in cache:
            cache[key] = pd.Series(dtype=object)
        cache.loc[column.index, key] = column
        new_errors = pd.DataFrame(
            {
                "key": key,
                "id": [e.id for e in fresh.errors],
                "error": [e.error for e in fresh.errors],
            }
        )
        errors = pd.concat([errors, new_errors], ignore_index=True)
        failing = set(errors.loc[errors["key"] == key, "id"])
        if len(ids) and ids.isin(failing).all():
            first = errors[errors["key"] == key].iloc[0]
            raise LabelingFunctionError(
                f"labeling function {function.name!r} raised on every item ({len(ids)}); on "
                f"item {first['id']!r}: {first['error']}"
            )
    folder.mkdir(parents=True, exist_ok=True)
    stored = cache.reset_index(names="id")
    stored.columns = [str(c) for c in stored.columns]
    store.write_parquet_atomic(stored.astype({c: object for c in stored.columns}), votes_file)
    store.write_parquet_atomic(errors.astype(str), errors_file)
    return _as_votes(cache, errors, ids, keys, functions, classes)


def _as_votes(
    cache: pd.DataFrame,
    errors: pd.DataFrame,
    ids: pd.Series,
    keys: list[str],
    functions: list[LabelingFunction],
    classes: list[str],
) -> Votes:
    index = {c: k for k, c in enumerate(classes)}
    rows = cache.reindex(ids.to_numpy())
    matrix = np.full((len(ids), len(keys)), ABSTAIN, dtype=np.int16)
    for j, key in enumerate(keys):
        matrix[:, j] = rows[key].map(index).fillna(ABSTAIN).to_numpy(dtype=np.int16)
    asked = set(ids)
    mine = errors[errors["key"].isin(keys) & errors["id"].isin(asked)]
    by_key = dict(zip(keys, [f.name for f in functions], strict=True))
    kept = [
        FunctionError(by_key[k], i, e)
        for k, i, e in mine[["key", "id", "error"]].itertuples(index=False)
    ]
    counts = {f.name: int((mine["key"] == k).sum()) for k, f in zip(keys, functions, strict=True)}
    return Votes(
        ids.to_numpy(dtype=str), [f.name for f in functions], matrix, classes, kept, counts
    )


def weak_votes(settings: Settings, pool: pd.DataFrame, human: pd.DataFrame) -> WeakVotes:
    """The functions' votes on the pool, the report (pool coverage, accuracy on ``human``
    labels and on the holdout), and the votes of the functions the report keeps."""
    if settings.model.task not in ("classification", "auto"):
        raise LabelingFunctionError(
            f"weak.module: labeling functions vote classes, and this project's model.task is "
            f"{settings.model.task}; set weak.module: null"
        )
    functions = functions_of(settings)
    classes = project_classes(settings, functions, human)
    on_pool = cached_votes(settings, functions, pool, classes)
    holdout = store.read_holdout(settings)
    on_holdout = cached_votes(settings, functions, holdout, classes) if len(holdout) else None
    truth = dict(zip(human["id"].astype(str), human["label"].astype(str), strict=True))
    held = dict(zip(holdout["id"].astype(str), holdout["label"].astype(str), strict=True))
    report = lf_report(
        on_pool,
        truth,
        on_holdout,
        held,
        min_coverage=settings.weak.min_coverage,
        min_accuracy=settings.weak.min_accuracy,
        min_evaluated=settings.weak.min_evaluated,
    )
    kept = report.loc[report["kept"], "function"].tolist()
    return WeakVotes(on_pool.subset(kept), report)


def weak_labels(
    settings: Settings, votes: Votes, human: pd.DataFrame, round_: int
) -> tuple[pd.DataFrame, np.ndarray | None]:
    """The label model's labels (``WEAK_COLUMNS``) for pool items with a kept function's vote,
    no human label and a probability of at least ``weak.min_probability``, and the label
    model's accuracy estimate per kept function (None: it gives none)."""
    empty = pd.DataFrame({c: [] for c in WEAK_COLUMNS})
    if not votes.functions or len(votes.classes) < 2:
        return empty, None
    model, rows, best, top = confident_labels(
        settings.weak.label_model,
        votes.matrix,
        len(votes.classes),
        settings.weak.min_probability,
        seed=settings.project.seed,
    )
    unlabeled = ~pd.Series(votes.ids[rows]).isin(set(human["id"].astype(str))).to_numpy()
    rows, best, top = rows[unlabeled], best[unlabeled], top[unlabeled]
    labels = pd.DataFrame(
        {
            "id": votes.ids[rows],
            "label": np.asarray(votes.classes, dtype=object)[best],
            "probability": top,
            "source": "weak",
            "round": round_,
            "label_model": settings.weak.label_model,
        }
    )
    return labels, model.accuracies()


def weak_labels_path(settings: Settings) -> Path:
    return store.data_paths(settings).root / "weak_labels.parquet"


def save_weak_labels(settings: Settings, labels: pd.DataFrame) -> Path:
    """Write this round's weak labels (they replace the last round's: a label model is refit
    each round); never the human label log."""
    path = weak_labels_path(settings)
    store.write_parquet_atomic(labels, path)
    return path


def read_weak_labels(settings: Settings) -> pd.DataFrame:
    """The weak labels of the latest round (empty without weak supervision)."""
    path = weak_labels_path(settings)
    return pd.read_parquet(path) if path.exists() else pd.DataFrame({c: [] for c in WEAK_COLUMNS})


def with_weak_rows(
    labeled: pd.DataFrame,
    pool: pd.DataFrame,
    weak: pd.DataFrame,
    weights: np.ndarray | None,
    weight: float,
) -> tuple[pd.DataFrame, Any]:
    """The training rows: the human-labeled ones (``weights`` or 1 each) and, when ``weight``
    is above 0, the weakly labeled pool items no human labeled, weighing ``weight x
    probability``. Returns (rows, sample weights or None when all are 1)."""
    if weight <= 0 or weak.empty:
        return labeled, weights
    extra = pool.merge(weak[["id", "label", "probability"]], on="id", how="inner")
    extra = extra[~extra["id"].isin(set(labeled["id"]))]
    if extra.empty:
        return labeled, weights
    human = np.ones(len(labeled)) if weights is None else np.asarray(weights, dtype=np.float64)
    rows = pd.concat([labeled, extra.drop(columns="probability")], ignore_index=True)
    return rows, np.concatenate([human, weight * extra["probability"].to_numpy()])


def summary(
    votes: WeakVotes, labels: pd.DataFrame, accuracies: np.ndarray | None
) -> dict[str, Any]:
    """What a round records of its weak supervision (state info, MLflow)."""
    report = votes.report.copy()
    report["label_model_accuracy"] = np.nan
    if accuracies is not None:
        kept = report["kept"].to_numpy()
        report.loc[kept, "label_model_accuracy"] = np.asarray(accuracies, dtype=np.float64)
    matrix = votes.votes.matrix
    covered = float((matrix != ABSTAIN).any(axis=1).mean()) if matrix.size else 0.0
    return {
        "n_weak_labels": len(labels),
        "coverage": covered,
        "functions": report.astype(object).where(report.notna(), None).to_dict(orient="records"),
        "errors": [e.__dict__ for e in votes.votes.errors[:50]],
    }
