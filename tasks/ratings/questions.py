"""The next items to ask one user to rate (``labelwise elicit``): read the catalog and the user's
ratings, fit the factor model when the strategy needs it, rank the items not yet rated."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from strategies.elicitation import STRATEGIES, elicit
from tasks.ratings.factors import fit_als
from tasks.ratings.reader import RatingsError, Scale, file_format, read_ratings, user_rows

OUTPUT_COLUMNS = ["item", "rank", "score", "strategy"]


@dataclass(frozen=True)
class ElicitOptions:
    """How many items, by which strategy, for which user; the factor model's size (used by
    ``factor_uncertainty`` only)."""

    k: int = 10
    strategy: str = "pop_entropy"
    user: str | None = None
    scale: Scale | None = None
    rank: int = 10
    reg: float = 10.0
    iterations: int = 15
    seed: int = 0


def next_questions(
    ratings: Path | str, user_ratings: Path | str, options: ElicitOptions
) -> pd.DataFrame:
    """The next ``options.k`` items to ask (columns ``item, rank, score, strategy``), best
    first, none the user has rated. The user's rows in the catalog file, if any, count as
    rated too and are left out of the catalog statistics and the model."""
    if options.strategy not in STRATEGIES:
        raise RatingsError(
            f"--strategy {options.strategy!r}: unknown (known: {', '.join(STRATEGIES)})"
        )
    catalog = read_ratings(ratings, scale=options.scale)
    scale = options.scale or catalog.scale
    mine = read_ratings(user_ratings, scale=scale, catalog=catalog, allow_empty=True)
    user, mine = user_rows(mine, options.user)
    train = catalog.without_user(user) if user is not None else catalog
    if len(train) == 0:
        raise RatingsError(f"{catalog.file}: no ratings besides those of user {user!r}")
    item_ids, item_index = np.unique(catalog.items, return_inverse=True)
    known = np.union1d(
        np.searchsorted(item_ids, mine.items),
        item_index[catalog.users == user] if user is not None else np.empty(0, np.int64),
    ).astype(np.int64)
    keep = catalog.users != user if user is not None else np.ones(len(catalog), bool)
    items = item_index[keep]
    n_items = item_ids.shape[0]
    factors = None
    if options.strategy == "factor_uncertainty":
        _, users = np.unique(train.users, return_inverse=True)
        model = fit_als(
            users, items, train.values, int(users.max()) + 1, n_items, rank=options.rank,
            reg=options.reg, iterations=options.iterations, seed=options.seed,
        )  # fmt: skip
        factors = model.item_factors
    picks = elicit(
        options.strategy, items, train.values, n_items, options.k,
        levels=np.unique(catalog.values), item_factors=factors, reg=options.reg,
        exclude=known, prior_items=known, seed=options.seed,
    )  # fmt: skip
    return pd.DataFrame(
        {
            "item": item_ids[picks.items].astype(str),
            "rank": np.arange(1, picks.items.shape[0] + 1),
            "score": picks.scores,
            "strategy": options.strategy,
        },
        columns=OUTPUT_COLUMNS,
    )


def write_questions(frame: pd.DataFrame, out: Path) -> None:
    """Write the questions as CSV, Parquet or JSONL by ``out``'s suffix."""
    kind = file_format(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if kind == "parquet":
        frame.to_parquet(out, index=False)
    elif kind == "csv":
        frame.to_csv(out, index=False, sep="\t" if out.suffix.lower() == ".tsv" else ",")
    else:
        frame.to_json(out, orient="records", lines=True)
