"""What a round trains on: the feature columns, one label per labeled item (aggregating several
annotators' answers), the labeled pool rows, and whether a model can be trained yet."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tasks.data import store
from tasks.loop.rounds import RoundError
from tasks.model import build as models
from tasks.settings import Settings

NON_FEATURES = {"id", "ingest_batch", "first_seen", "label", "source_path"}


def feature_columns(pool: pd.DataFrame, settings: Settings) -> list[str]:
    """``data.feature_columns``, or every numeric pool column that is not bookkeeping."""
    if settings.data.feature_columns:
        return list(settings.data.feature_columns)
    columns = [
        c for c in pool.columns if c not in NON_FEATURES and pd.api.types.is_numeric_dtype(pool[c])
    ]
    if not columns:
        raise RoundError(
            "the pool has no numeric feature columns; set data.feature_columns "
            "(text and image pools need a featurizer first)"
        )
    return columns


def matrix(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """The feature ``columns`` of ``frame`` as a float matrix."""
    return frame[columns].to_numpy(dtype=np.float64)


@dataclass(frozen=True)
class Consensus:
    """One label per labeled item, and the one aggregation fit behind it (per round)."""

    labels: pd.DataFrame  # id, label, n_votes, agreement: what training uses
    votes: pd.DataFrame  # the latest answer of each annotator on items several answered
    agreed: pd.DataFrame  # those items' aggregated labels (empty: no such item)
    annotator_accuracy: pd.Series | None  # Dawid-Skene's estimate per annotator


def consensus(settings: Settings) -> Consensus:
    """One label per labeled id: the latest, or, where several annotators answered an item, the
    ``annotation.aggregation`` of their votes (majority or Dawid-Skene), fit on those items only:
    single answers (the seed labels, items outside the overlap share) tell EM nothing about an
    annotator's errors and let it drift away from them. Aggregated rows carry ``n_votes`` and
    ``agreement``. Dawid-Skene is fit once, and also gives each annotator's accuracy."""
    from tasks.annotation.aggregate import aggregate_with_fit

    log = store.read_labels(settings)
    latest = store.latest_labels(log)
    votes = several_votes(latest_per_annotator(log)) if len(log) else log
    if votes.empty:
        return Consensus(latest, votes, latest.iloc[:0], None)
    classes = [str(c) for c in settings.data.classes] or None
    agreed, fit = aggregate_with_fit(votes, settings.annotation.aggregation, classes)
    single = latest.loc[~latest["id"].isin(set(agreed["id"])), ["id", "label"]]
    single = single.assign(n_votes=1, agreement=1.0)
    columns = ["id", "label", "n_votes", "agreement"]
    labels = pd.concat([single, agreed[columns]], ignore_index=True)
    return Consensus(labels, votes, agreed, fit.annotator_accuracy())


def training_labels(settings: Settings) -> pd.DataFrame:
    """The labels training uses (:func:`consensus`)."""
    return consensus(settings).labels


def latest_per_annotator(log: pd.DataFrame) -> pd.DataFrame:
    """Each annotator's latest answer per item."""
    ordered = log.reset_index(drop=True).sort_values("time", kind="stable")
    return ordered.drop_duplicates(["id", "annotator"], keep="last").reset_index(drop=True)


def several_votes(votes: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``votes`` (one per id and annotator) on items that several annotators answered."""
    return votes[votes.groupby("id")["annotator"].transform("nunique").gt(1)].reset_index(drop=True)


def labeled_frame(pool: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Pool rows that have a training label (``labels``: :func:`training_labels`), in pool
    order, with ``label``."""
    if labels.empty:
        return pool.iloc[:0].assign(label=pd.Series(dtype="object"))
    return pool.merge(labels[["id", "label"]], on="id", how="inner")


def training_waits(labels: pd.DataFrame, settings: Settings) -> str | None:
    """Why no model can be trained yet (None: it can): a classifier needs two classes, and
    each class of ``data.classes`` needs ``data.min_per_class`` labels. Not an error: a project
    that starts with no labels gets there round by round (the training gate checks the rest)."""
    counts = labels["label"].astype(str).value_counts()
    declared = [str(c) for c in settings.data.classes]
    if declared:
        counts = counts.reindex(declared, fill_value=0)
    minimum = max(settings.data.min_per_class, 1)
    short = [f"{label!r} has {int(n)}" for label, n in counts.items() if n < minimum]
    if (counts >= minimum).sum() < 2:
        seen = ", ".join(f"{label!r}: {int(n)}" for label, n in counts.items()) or "none"
        return f"training waits for {minimum}+ labels in two classes (labels so far: {seen})"
    if short and settings.data.min_per_class > 0:
        return f"training waits for data.min_per_class={minimum} labels per class: " + ", ".join(
            short
        )
    return None


def initial_model(settings: Settings, labeled: pd.DataFrame, columns: list[str]) -> Any:
    """The configured model fit on ``labeled`` (before any champion exists)."""
    return models.fit_model(
        models.build_model(settings.model, random_state=settings.project.seed),
        matrix(labeled, columns),
        labeled["label"].astype(str).to_numpy(),
    )


def classes_of(model: Any) -> list[str]:
    return [str(c) for c in model.classes_]
