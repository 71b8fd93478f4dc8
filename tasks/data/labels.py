"""Label collection: gate new labels, then append them to the label log (never overwriting)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.data import store
from tasks.data.validate import validate_labels


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
