"""Which annotator to ask (``annotation.routing: quality``): the batch's more informative half
goes to the better half of the annotators by their record, the rest to the others, so hard items
meet the people most likely to get them right."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from tasks.loop.rounds import RoundError, round_states
from tasks.settings import Settings

#: gold answers an annotator needs before their gold accuracy is their record
GOLD_MIN = 5
#: the column of a dispatched batch naming who may answer each item (``|``-separated)
ROUTE = "route"


def annotator_record(settings: Settings, round_: int) -> pd.Series:
    """Each annotator's accuracy as the latest earlier round measured it: on gold items once
    they answered ``GOLD_MIN`` of them, else Dawid-Skene's estimate, else agreement with the
    majority; empty before any round measured one."""
    earlier = [
        s for s in round_states(settings) if s.round < round_ and s.info.get("annotator_stats")
    ]
    if not earlier:
        return pd.Series(dtype=float)
    stats = pd.DataFrame(earlier[-1].info["annotator_stats"])
    stats.index = stats["annotator"].astype(str)

    def column(name: str) -> pd.Series:
        return pd.to_numeric(stats.get(name, pd.Series(np.nan, index=stats.index)), errors="coerce")

    gold = column("gold_accuracy").where(column("gold_n") >= GOLD_MIN)
    return gold.combine_first(column("ds_accuracy")).combine_first(column("majority_agreement"))


def routes(batch: pd.DataFrame, record: pd.Series, annotators: Sequence[str]) -> pd.Series:
    """Who may answer each item of ``batch`` (``ROUTE`` values, aligned with it): the half
    with the highest ``score`` goes to the better half of ``annotators`` by ``record`` (an
    annotator without one counts as the median), the rest to the others. Items without a score
    (random and gold picks) go to anyone; with fewer than two annotators nothing is routed."""
    names = [str(a) for a in annotators]
    everyone = "|".join(names)
    if len(names) < 2:
        return pd.Series(everyone, index=batch.index)
    known = record.reindex(names)
    known = known.fillna(known.median() if known.notna().any() else 0.0)
    ranked = known.sort_values(ascending=False, kind="stable").index.tolist()
    best, rest = ranked[: (len(ranked) + 1) // 2], ranked[(len(ranked) + 1) // 2 :]
    scores = pd.to_numeric(batch["score"], errors="coerce")
    scored = scores.dropna()
    hard = scored.rank(ascending=False, method="first") <= (len(scored) + 1) // 2
    out = pd.Series(everyone, index=batch.index)
    out[scored.index[hard.to_numpy()]] = "|".join(best)
    out[scored.index[~hard.to_numpy()]] = "|".join(rest)
    return out


def with_routes(
    settings: Settings, round_: int, batch: pd.DataFrame, backend: Any, gold_ids: Sequence[str] = ()
) -> pd.DataFrame:
    """``batch`` with its ``ROUTE`` column (:func:`routes`) for ``backend``'s annotators (the
    simulated ones, else those the label log knows); gold items go to anyone (their answers
    are the record). Label Studio Community cannot assign a task to a user (an Enterprise
    API): an error naming the setting."""
    if backend.name == "label_studio":
        raise RoundError(
            "annotation.routing: quality assigns items to annotators, which Label Studio "
            "Community does not support (task assignment is a Label Studio Enterprise API): "
            "set annotation.routing: none, or use the files or simulated backend"
        )
    record = annotator_record(settings, round_)
    names = [a.name for a in getattr(backend, "annotators", [])] or list(record.index)
    gold = batch["id"].astype(str).isin(set(map(str, gold_ids)))
    out = batch.copy()
    out[ROUTE] = routes(out.assign(score=out["score"].where(~gold)), record, names)
    return out
