"""Label collection: gate new labels, then append them to the label log (never overwriting)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.data import store
from tasks.data.validate import validate_labels

#: one answer: an annotator's label for an item in a round; the label log holds each once
ANSWER_KEY = ["id", "annotator", "round"]


def unseen(collected: pd.DataFrame, stored: pd.DataFrame) -> pd.DataFrame:
    """The answers of ``collected`` that ``stored`` does not hold, each once (the first seen),
    keyed by :data:`ANSWER_KEY`: the one dedup of every path that stores answers."""
    if collected.empty:
        return collected.reset_index(drop=True)
    types = {"id": str, "annotator": str, "round": "int64"}
    frame = collected.astype(types).drop_duplicates(ANSWER_KEY, keep="first")
    if stored.empty:
        return frame.reset_index(drop=True)
    seen = pd.MultiIndex.from_frame(stored[ANSWER_KEY].astype(types))
    return frame[~pd.MultiIndex.from_frame(frame[ANSWER_KEY]).isin(seen)].reset_index(drop=True)


def new_annotations(settings: Any, collected: pd.DataFrame) -> pd.DataFrame:
    """The answers of ``collected`` not yet in the label log (:func:`unseen`)."""
    return unseen(collected, store.read_labels(settings))


def collect_labels(
    labels: pd.DataFrame,
    settings: Any,
    *,
    round_: int,
    file: str | Path = "labels",
) -> pd.DataFrame:
    """Validate ``labels`` (id, label, annotator[, source, time]) and append them for ``round_``.

    Missing ``round`` is set to ``round_``, missing ``time`` to now (UTC), missing ``source`` to
    "human". Raises ``ValidationError`` (labels unchanged) if any row fails the label gate.
    Returns the full label log.
    """
    df = labels.copy()
    if "round" not in df.columns:
        df["round"] = round_
    if "time" not in df.columns:
        df["time"] = pd.Timestamp(datetime.now(UTC))
    if "source" not in df.columns:
        df["source"] = "human"
    validate_labels(df, settings, file=file, round_=round_)
    return store.append_labels(settings, df)


def read_label_file(path: Path | str, settings: Any) -> pd.DataFrame:
    """A CSV/Parquet/JSONL file of labels (its label column renamed to ``label``)."""
    from tasks.data.ingest import read_table

    df = read_table(Path(path), "labels", settings)
    return df.rename(columns={settings.data.label_column: "label"})
