"""Peers side by side: modAL and scikit-activeml strategies against ours, same model, splits, seeds.

Every strategy sees, per seed, the split, initial labeled set and model of ``tasks.benchmark.curves``;
peers are driven through their own query APIs (modAL ``ActiveLearner.query``, scikit-activeml
``QueryStrategy.query``) in a loop equivalent to ``tasks.loop.simulate``: refit on the labeled rows,
score the test split, query a batch of pool rows, label them from the known answers. Ours run
through ``tasks.loop.simulate`` itself, in the same process and run, so query times are comparable.

Needs the ``peers`` extra (it adds packages, changes no pin of the project venv):

    .venv/bin/pip install -c requirements.lock -e '.[peers]'
    .venv/bin/python benchmarks/peers.py                          # breast_cancer, digits; 5 seeds
    .venv/bin/python benchmarks/peers.py --dataset digits --seeds 2 --budget 200

Writes ``benchmarks/results/peers-<dataset>.json`` (the ``results.json`` schema, plus per strategy
``library``, ``query_ms_per_round`` and ``query_wall_ms_per_round``) and prints a Markdown table per
dataset. Query time is CPU time of the query call with BLAS/OpenMP limited to one thread (the
machine may be shared, so wall time is kept but not compared), the refit excluded for every
library; each strategy runs one untimed round first, so imports and caches are not charged to
whoever runs first.
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import clone
from threadpoolctl import threadpool_limits

from tasks.benchmark.curves import (
    BenchmarkConfig,
    full_data_score,
    initial_rows,
    make_metric,
    make_model,
    split,
)
from tasks.benchmark.problems import Problem, problem_from_dataset
from tasks.benchmark.stats import aulc, summarise
from tasks.loop.simulate import simulate

OURS = ("random", "margin", "hybrid")
BASELINE = "margin"  # query-time ratios are against our default strategy
MISSING = -1  # scikit-activeml's marker for an unlabeled row (labels are encoded as 0..k-1)


# ---- the peers, each behind one small session -----------------------------------------------


class ModalSession:
    """modAL: a fresh ``ActiveLearner`` per round (its constructor fits the estimator on the
    labeled rows); the query runs on the unlabeled rows and returns indices into them.

    ``ActiveLearner.teach`` is not used: modAL 0.4.2.1 passes ``force_all_finite`` to
    ``check_X_y``, which scikit-learn >= 1.8 no longer accepts.
    """

    def __init__(self, query_strategy: Callable[..., Any], model: Any, X: Any, y: np.ndarray):
        self.query_strategy, self.model, self.X, self.y = query_strategy, model, X, y
        self.learner: Any = None

    def fit(self, labeled: np.ndarray) -> Any:
        from modAL.models import ActiveLearner

        self.learner = ActiveLearner(
            estimator=clone(self.model),
            query_strategy=self.query_strategy,
            X_training=self.X[labeled],
            y_training=self.y[labeled],
        )
        return self.learner

    def query(self, labeled: np.ndarray, n: int) -> np.ndarray:
        unlabeled = np.flatnonzero(~labeled)
        picks, _ = self.learner.query(self.X[unlabeled], n_instances=n)
        return unlabeled[np.asarray(picks, dtype=np.int64)]


class SkactivemlSession:
    """scikit-activeml: the model wrapped in ``SklearnClassifier`` and fit on the pool with
    unlabeled rows marked missing; ``query`` gets the whole pool and returns pool indices."""

    def __init__(
        self,
        strategy: Any,
        model: Any,
        X: Any,
        y: np.ndarray,
        seed: int,
        clf_keyword: str | None,
    ):
        self.strategy, self.model, self.X, self.y = strategy, model, X, y
        self.seed, self.clf_keyword = seed, clf_keyword
        self.clf: Any = None
        self.y_partial = np.full(y.shape[0], MISSING)

    def fit(self, labeled: np.ndarray) -> Any:
        from skactiveml.classifier import SklearnClassifier

        self.y_partial = np.where(labeled, self.y, MISSING)
        self.clf = SklearnClassifier(
            clone(self.model),
            classes=np.unique(self.y),
            missing_label=MISSING,
            random_state=self.seed,
        ).fit(self.X, self.y_partial)
        return self.clf

    def query(self, labeled: np.ndarray, n: int) -> np.ndarray:
        kwargs: dict[str, Any] = {}
        if self.clf_keyword is not None:  # model-free strategies (CoreSet) take no classifier
            kwargs = {self.clf_keyword: self.clf, f"fit_{self.clf_keyword}": False}
        picks = self.strategy.query(self.X, self.y_partial, batch_size=n, **kwargs)
        return np.asarray(picks, dtype=np.int64)


class SmallTextSession:
    """small-text: the model in its ``SklearnClassifier``, fit on a ``SklearnDataset`` of the
    labeled rows; ``query`` gets the whole pool as one dataset (unlabeled rows marked -1) with
    the labeled and unlabeled indices and returns pool indices. The test split is scored by
    the fitted model's own ``predict`` (small-text's is the argmax of the probabilities), so
    every library is scored by the same decision rule."""

    def __init__(self, strategy: Any, model: Any, X: Any, y: np.ndarray):
        self.strategy, self.model, self.X, self.y = strategy, model, X, y
        self.clf: Any = None

    def fit(self, labeled: np.ndarray) -> Any:
        from small_text import SklearnClassifier
        from small_text.data import SklearnDataset

        self.clf = SklearnClassifier(clone(self.model), num_classes=int(np.unique(self.y).size))
        self.clf.fit(SklearnDataset(self.X[labeled], self.y[labeled]))
        return self.clf.model

    def query(self, labeled: np.ndarray, n: int) -> np.ndarray:
        from small_text.data import SklearnDataset

        pool = SklearnDataset(self.X, np.where(labeled, self.y, -1))
        picks = self.strategy.query(
            self.clf, pool, np.flatnonzero(~labeled), np.flatnonzero(labeled), self.y[labeled], n=n
        )
        return np.asarray(picks, dtype=np.int64)


def _small_text(cls: str) -> Callable[[Any, Any, np.ndarray, int], SmallTextSession]:
    def build(model: Any, X: Any, y: np.ndarray, seed: int) -> SmallTextSession:
        import small_text

        return SmallTextSession(getattr(small_text, cls)(), model, X, y)

    return build


def _modal(module: str, function: str) -> Callable[[Any, Any, np.ndarray, int], ModalSession]:
    def build(model: Any, X: Any, y: np.ndarray, seed: int) -> ModalSession:
        query = getattr(importlib.import_module(f"modAL.{module}"), function)
        return ModalSession(query, model, X, y)

    return build


def _modal_information_density(model: Any, X: Any, y: np.ndarray, seed: int) -> ModalSession:
    """Settles (2009) information density from modAL's parts, as its docs suggest: least-confidence
    uncertainty times density (mean similarity 1 / (1 + euclidean distance) to the other unlabeled
    rows, modAL's ``information_density``). O(n_unlabeled^2) memory."""
    from modAL.density import information_density
    from modAL.uncertainty import classifier_uncertainty
    from modAL.utils.selection import multi_argmax

    def query(classifier: Any, X_unlabeled: Any, n_instances: int = 1) -> Any:
        utility = classifier_uncertainty(classifier, X_unlabeled)
        return multi_argmax(utility * information_density(X_unlabeled), n_instances=n_instances)

    return ModalSession(query, model, X, y)


def _skactiveml(
    cls: str, clf_keyword: str | None, seeded: tuple[str, ...] = (), **params: Any
) -> Callable[[Any, Any, np.ndarray, int], SkactivemlSession]:
    """``seeded``: parameters that are keyword dicts of a sub-estimator and get its seed."""

    def build(model: Any, X: Any, y: np.ndarray, seed: int) -> SkactivemlSession:
        import skactiveml.pool

        seeds = {key: {"random_state": seed} for key in seeded}
        strategy = getattr(skactiveml.pool, cls)(
            **params, **seeds, missing_label=MISSING, random_state=seed
        )
        return SkactivemlSession(strategy, model, X, y, seed, clf_keyword)

    return build


@dataclass(frozen=True)
class Peer:
    library: str
    build: Callable[[Any, Any, np.ndarray, int], Any]


PEERS: dict[str, Peer] = {
    "modAL:uncertainty_sampling": Peer("modAL", _modal("uncertainty", "uncertainty_sampling")),
    "modAL:margin_sampling": Peer("modAL", _modal("uncertainty", "margin_sampling")),
    "modAL:entropy_sampling": Peer("modAL", _modal("uncertainty", "entropy_sampling")),
    "modAL:information_density": Peer("modAL", _modal_information_density),
    "modAL:uncertainty_batch_sampling": Peer(
        "modAL", _modal("batch", "uncertainty_batch_sampling")
    ),
    "skactiveml:least_confident": Peer(
        "scikit-activeml", _skactiveml("UncertaintySampling", "clf", method="least_confident")
    ),
    "skactiveml:margin_sampling": Peer(
        "scikit-activeml", _skactiveml("UncertaintySampling", "clf", method="margin_sampling")
    ),
    "skactiveml:entropy": Peer(
        "scikit-activeml", _skactiveml("UncertaintySampling", "clf", method="entropy")
    ),
    "skactiveml:Clue": Peer(
        "scikit-activeml",
        _skactiveml("Clue", "estimator", ("cluster_algo_dict",), method="entropy"),
    ),
    "skactiveml:Falcun": Peer("scikit-activeml", _skactiveml("Falcun", "clf")),
    "skactiveml:CoreSet": Peer("scikit-activeml", _skactiveml("CoreSet", None)),
    "skactiveml:TypiClust": Peer(
        "scikit-activeml", _skactiveml("TypiClust", None, ("cluster_algo_dict",))
    ),
    "skactiveml:ProbCover": Peer(
        "scikit-activeml", _skactiveml("ProbCover", None, ("cluster_algo_dict",))
    ),
    # BADGE on our learner: with no embedding flag, scikit-activeml takes the input rows as the
    # representation (the gradient embedding of a linear last layer on the features)
    "skactiveml:Badge": Peer("scikit-activeml", _skactiveml("Badge", "clf")),
    # small-text's strategies that run on a scikit-learn model (its others embed with torch)
    "small-text:BreakingTies": Peer("small-text", _small_text("BreakingTies")),
    "small-text:PredictionEntropy": Peer("small-text", _small_text("PredictionEntropy")),
}
# modAL's information density holds an n_unlabeled x n_unlabeled float64 matrix
DENSITY_PEER, DENSITY_MAX_ROWS = "modAL:information_density", 15_000  # 15k rows: 1.8 GB
# Left out: scikit-activeml's BatchBALD and ContrastiveAL (need torch).


# ---- one learning curve per (peer, seed) ----------------------------------------------------


def run_peer_curve(
    problem: Problem, name: str, seed: int, config: BenchmarkConfig
) -> dict[str, Any]:
    """``tasks.loop.simulate``'s loop with a peer's fit and query; same keys as ``run_curve``."""
    pool, test = split(problem, config.test_size, seed)
    X_pool, y_pool = problem.X[pool], problem.y[pool]
    X_test, y_test = problem.X[test], problem.y[test]
    metric = make_metric(config.metric, problem)
    budget = min(config.budget, pool.shape[0])
    session = PEERS[name].build(
        make_model(config.model, problem, seed, config.metric), X_pool, y_pool, seed
    )
    labeled = np.zeros(pool.shape[0], dtype=bool)
    labeled[initial_rows(problem, pool, config.initial, seed)] = True
    labels: list[int] = []
    scores: list[float] = []
    query_seconds = wall_seconds = 0.0
    while True:
        fitted = session.fit(labeled)
        n = int(labeled.sum())
        labels.append(n)
        scores.append(float(metric(y_test, fitted.predict(X_test))))
        if n >= budget or labeled.all():
            break
        want = min(config.batch_size, budget - n)
        cpu, wall = time.process_time(), time.perf_counter()
        picks = session.query(labeled, want)
        query_seconds += time.process_time() - cpu
        wall_seconds += time.perf_counter() - wall
        if picks.shape[0] != want or np.unique(picks).shape[0] != want or labeled[picks].any():
            raise RuntimeError(f"{name}: asked {want} new rows, got {picks.tolist()}")
        labeled[picks] = True
    return {
        "strategy": name,
        "seed": seed,
        "labels": labels,
        "scores": scores,
        "query_seconds": query_seconds,
        "wall_seconds": wall_seconds,
    }


class CpuTimed:
    """Our strategy with the CPU time of its ``select`` calls added up (``simulate`` keeps wall)."""

    def __init__(self, strategy: Any):
        self.strategy = strategy
        self.seconds = 0.0

    def select(self, *args: Any, **kwargs: Any) -> np.ndarray:
        start = time.process_time()
        picks = self.strategy.select(*args, **kwargs)
        self.seconds += time.process_time() - start
        return picks


def run_our_curve(
    problem: Problem, name: str, seed: int, config: BenchmarkConfig
) -> dict[str, Any]:
    """``tasks.benchmark.curves.run_curve`` with CPU-timed queries: ``tasks.loop.simulate`` on our strategy."""
    import strategies

    pool, test = split(problem, config.test_size, seed)
    timed = CpuTimed(strategies.get(name))
    curve = simulate(
        timed,
        make_model(config.model, problem, seed, config.metric),
        problem.X[pool],
        problem.y[pool],
        problem.X[test],
        problem.y[test],
        initial=initial_rows(problem, pool, config.initial, seed),
        batch_size=config.batch_size,
        budget=min(config.budget, pool.shape[0]),
        seed=seed,
        metric=make_metric(config.metric, problem),
    )
    return {
        "strategy": name,
        "seed": seed,
        "labels": curve.labels,
        "scores": curve.scores,
        "query_seconds": timed.seconds,
        "wall_seconds": curve.query_seconds,
    }


def run(problem: Problem, name: str, seed: int, config: BenchmarkConfig) -> dict[str, Any]:
    runner = run_peer_curve if name in PEERS else run_our_curve
    return runner(problem, name, seed, config)


def encoded(problem: Problem) -> Problem:
    """Labels as codes 0..k-1 in sorted-label order: the splits, initial sets and fits are those
    of the string labels, and scikit-activeml can mark unlabeled rows with ``MISSING``."""
    classes, codes = np.unique(problem.y, return_inverse=True)
    minority = None
    if problem.minority is not None:
        minority = int(np.searchsorted(classes, problem.minority))
    return Problem(problem.name, problem.X, codes.astype(np.int64), problem.task, minority)


# ---- the run --------------------------------------------------------------------------------


def per_seed_aulc(info: dict[str, Any]) -> np.ndarray:
    return np.array([aulc(info["labels"], np.array([s])) for s in info["scores"]])


def compare(problem: Problem, config: BenchmarkConfig, peers: list[str]) -> dict[str, Any]:
    """Every strategy, every seed, one after another in this process."""
    warm_up = BenchmarkConfig(**{**vars(config), "budget": config.initial + config.batch_size})
    for name in config.strategies:
        run(problem, name, 0, warm_up)
    runs = [
        run(problem, name, seed, config)
        for seed in range(config.seeds)
        for name in config.strategies
    ]
    results = summarise(
        problem, config, runs, full_data_score(problem, config, range(config.seeds))
    )
    walls = {}
    for r in runs:
        walls.setdefault(r["strategy"], []).append(r["wall_seconds"])
    for name, info in results["strategies"].items():
        rounds = len(info["labels"]) - 1
        info["library"] = PEERS[name].library if name in PEERS else "labelwise"
        info["query_ms_per_round"] = 1000 * info["query_seconds"] / rounds
        info["query_wall_ms_per_round"] = 1000 * float(np.mean(walls[name])) / rounds
    base_ms = results["strategies"][BASELINE]["query_ms_per_round"]
    for info in results["strategies"].values():
        info["query_time_vs_margin"] = info["query_ms_per_round"] / base_ms
    best = max(peers, key=lambda p: results["strategies"][p]["aulc"])
    theirs = per_seed_aulc(results["strategies"][best])
    results["vs_best_peer"] = {}
    for name in (n for n in OURS if n != "random"):
        diff = per_seed_aulc(results["strategies"][name]) - theirs  # paired: same seeds
        se = float(diff.std(ddof=1) / np.sqrt(diff.shape[0])) if diff.shape[0] > 1 else None
        results["vs_best_peer"][name] = {
            "best_peer": best,
            "aulc_difference": float(diff.mean()),
            "paired_standard_error": se,
            "matches": bool(diff.mean() >= 0),
        }
    results["versions"] = {
        package: version(package) for package in ("modAL-python", "scikit-activeml", "scikit-learn")
    }
    return results


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"**{results['dataset']}**: pool {results['n_pool']}, test {results['n_test']}, "
        f"{results['metric']}, {results['model']}, {len(results['strategies'][BASELINE]['scores'])} "
        f"seeds, full-data score {results['full_data_score']:.4f}",
        "",
        "| strategy | library | AULC | labels to 95% | mean query ms (CPU) | query time vs our margin |",
        "|---|---|---|---|---|---|",
    ]
    for name, info in results["strategies"].items():
        to95 = info["labels_to_target"]["0.95"]
        lines.append(
            f"| `{name}` | {info['library']} | {info['aulc']:.4f} | "
            f"{to95 if to95 is not None else '> ' + str(info['labels'][-1])} | "
            f"{info['query_ms_per_round']:.2f} | {info['query_time_vs_margin']:.2f}x |"
        )
    lines.append("")
    for name, verdict in results["vs_best_peer"].items():
        se = verdict["paired_standard_error"]
        lines.append(
            f"`{name}` AULC minus the best peer's (`{verdict['best_peer']}`): "
            f"{verdict['aulc_difference']:+.4f}"
            + (f" (paired SE over seeds {se:.4f})" if se is not None else "")
            + ("" if verdict["matches"] else ", below")
            + "  "
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", action="append", help="repeatable; breast_cancer and digits")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--initial", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=20)
    parser.add_argument("--budget", type=int, default=500)
    parser.add_argument("--model", default="logreg")
    parser.add_argument("--metric", default="accuracy")
    parser.add_argument("--peers", default=",".join(PEERS), help="comma-separated PEERS keys")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    peers = args.peers.split(",")
    unknown = sorted(set(peers) - set(PEERS))
    if unknown:
        parser.error(f"unknown peers {unknown}; choose from {', '.join(PEERS)}")
    args.out.mkdir(parents=True, exist_ok=True)
    # Clue's k-means on a last batch larger than the distinct rows left: expected, not news
    warnings.filterwarnings("ignore", message="Number of distinct clusters")
    for dataset in args.dataset or ["breast_cancer", "digits"]:
        problem = problem_from_dataset(dataset)
        if problem.task != "classification":
            parser.error(f"{dataset}: the peers compared here are classification strategies")
        problem = encoded(problem)
        config = BenchmarkConfig(
            strategies=[*OURS, *peers],
            model=args.model,
            seeds=args.seeds,
            initial=args.initial,
            batch_size=args.batch_size,
            budget=args.budget,
            metric=args.metric,
            n_jobs=1,
        )
        n_pool = problem.y.shape[0] - int(np.ceil(config.test_size * problem.y.shape[0]))
        if DENSITY_PEER in peers and n_pool > DENSITY_MAX_ROWS:
            print(
                f"{dataset}: skipping {DENSITY_PEER} ({n_pool:,} pool rows > {DENSITY_MAX_ROWS:,})"
            )
            config.strategies.remove(DENSITY_PEER)
        start = time.perf_counter()
        with threadpool_limits(limits=1):
            results = compare(problem, config, [p for p in config.strategies if p in PEERS])
        results["wall_seconds"] = time.perf_counter() - start
        path = args.out / f"peers-{dataset}.json"
        path.write_text(json.dumps(results, indent=2))
        print(markdown(results))
        print(f"wrote {path} in {results['wall_seconds']:.0f} s\n")


if __name__ == "__main__":
    main()
