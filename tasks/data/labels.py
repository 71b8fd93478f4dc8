"""Label collection: gate new labels, then append them to the label log (never overwriting).

One rule for a second answer by the same annotator on an item: the log is append-only (every
distinct answer is kept), an exact repeat is not appended again, and a changed answer is
appended and supersedes the annotator's earlier one everywhere the log is read
(:func:`tasks.data.store.current_answers`)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.data import store
from tasks.data.validate import validate_labels

#: what the label gate and the collected answers hold once: an annotator's answer on an item in
#: a round (a backend reporting several: the latest, :func:`latest_collected`)
ANSWER_KEY = ["id", "annotator", "round"]
#: an exact repeat of a stored answer: the same label by the same annotator at the same time
REPEAT_KEY = ["id", "annotator", "label", "time"]


def answer_times(frame: pd.DataFrame) -> pd.Series:
    """``frame``'s answer times as UTC at the log's precision (NaT: none given, or unreadable)."""
    if "time" not in frame.columns:
        return pd.Series(pd.NaT, index=frame.index, dtype="datetime64[us, UTC]")
    times = pd.to_datetime(frame["time"], utc=True, format="mixed", errors="coerce")
    return times.dt.floor("us").dt.as_unit("us")


def latest_collected(collected: pd.DataFrame) -> pd.DataFrame:
    """``collected`` with one answer per :data:`ANSWER_KEY`: the latest by time (ties, and no
    time: the later row), in the order given. A backend may report an annotator's history."""
    types = {"id": str, "annotator": str, "round": "int64"}
    frame = collected.astype(types).reset_index(drop=True)
    order = answer_times(frame).sort_values(kind="stable", na_position="last").index
    return frame.loc[order].drop_duplicates(ANSWER_KEY, keep="last").sort_index()


def _repeat_keys(frame: pd.DataFrame, *, text: bool = True) -> pd.MultiIndex:
    """:data:`REPEAT_KEY` of ``frame``, comparable across sources: a time as its microseconds
    (as text it would cost a second per 100k answers), a label as text (``text=False``: it is,
    as in the label log)."""
    columns = {c: frame[c] for c in REPEAT_KEY if c != "time"}
    if text:
        columns["label"] = columns["label"].astype(str)
    columns["time"] = pd.Series(answer_times(frame).array.asi8, index=frame.index)
    return pd.MultiIndex.from_arrays([columns[c] for c in REPEAT_KEY])


def repeats_current(frame: pd.DataFrame, stored: pd.DataFrame) -> np.ndarray:
    """Whether each row of ``frame`` says what its annotator's answer just before it says (the
    same label): in answer-time order over the log's current answers and ``frame`` (the log
    first on equal times; rows without a time come after every answer, in their order)."""
    columns = ["id", "annotator", "label"]
    current = store.current_answers(stored)
    current = current[columns].assign(time=answer_times(current), row=-1)
    mine = frame[columns].assign(time=answer_times(frame), row=np.arange(len(frame)))
    merged = pd.concat([current, mine], ignore_index=True).astype({c: str for c in columns})
    merged = merged.sort_values("time", kind="stable", na_position="last")
    before = merged.groupby(["id", "annotator"])["label"].shift()
    same = merged["label"].eq(before) & merged["row"].ge(0)
    return np.isin(np.arange(len(frame)), merged.loc[same, "row"].to_numpy())


def unseen(collected: pd.DataFrame, stored: pd.DataFrame) -> pd.DataFrame:
    """The answers of ``collected`` the label log ``stored`` lacks, each once: the one dedup of
    every path that stores answers (the rule: :func:`tasks.data.store.current_answers`).

    Of :func:`latest_collected`, a row is dropped when it exactly repeats a stored answer: the
    same id, annotator, label and time (a collect or an import run again after a crash), or,
    given without a time, the same label as that annotator's answer before it. A different
    answer is kept, and then supersedes the annotator's earlier one (if it is later)."""
    if collected.empty:
        return collected.reset_index(drop=True)
    frame = latest_collected(collected)
    stored = stored[stored["id"].isin(frame["id"].unique())]
    if stored.empty:
        return frame.reset_index(drop=True)
    exact = _repeat_keys(frame).isin(_repeat_keys(stored, text=False))  # no time: never exact
    again = answer_times(frame).isna().to_numpy()  # backends give times: an import may not
    if again.any():
        again &= repeats_current(frame, stored)
    return frame[~exact & ~again].reset_index(drop=True)


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
    "human". Raises ``ValidationError`` (labels unchanged) if any row fails the label gate. Only
    the answers the log lacks are appended (:func:`unseen`: importing a file twice adds nothing,
    a changed answer is added). Returns the full label log.
    """
    now = pd.Timestamp(datetime.now(UTC))
    df = labels.copy()
    if "round" not in df.columns:
        df["round"] = round_
    if "time" not in df.columns:
        df["time"] = now
    if "source" not in df.columns:
        df["source"] = "human"
    validate_labels(df, settings, file=file, round_=round_)
    rows = store.normalize_labels(df)
    if "time" not in labels.columns:  # no time given: a repeat is the same label (unseen)
        rows["time"] = pd.Series(pd.NaT, index=rows.index, dtype=rows["time"].dtype)
    log = store.read_labels(settings)
    fresh = unseen(rows, log)
    fresh["time"] = fresh["time"].fillna(now)
    return store.append_labels(settings, fresh) if len(fresh) else log


def read_label_file(path: Path | str, settings: Any) -> pd.DataFrame:
    """A CSV/Parquet/JSONL file of labels (its label column renamed to ``label``)."""
    from tasks.data.ingest import read_table

    df = read_table(Path(path), "labels", settings)
    return df.rename(columns={settings.data.label_column: "label"})
