"""Label-efficiency benchmark runs: simulated active-learning loops with an oracle from known labels.

Every strategy sees, per seed, the same stratified test split, the same initial labeled set and
the same model, so learning curves differ only by what each strategy picks. Results follow the
``results.json`` schema other tools read (see ``tasks.benchmark.stats.summarise``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit

from tasks.benchmark.problems import BenchmarkError, Problem
from tasks.benchmark.report import write_outputs
from tasks.benchmark.stats import summarise
from tasks.model.metrics import METRICS

# the metrics a benchmark scores from predictions; scorers and directions are in METRICS
BENCHMARK_METRICS = ("accuracy", "macro_f1", "minority_recall", "rmse", "token_f1")


@dataclass
class BenchmarkConfig:
    """What to run: the options of ``labelwise benchmark``."""

    strategies: list[str] = field(default_factory=lambda: ["random", "margin", "hybrid"])
    model: str = "logreg"
    seeds: int = 10
    initial: int = 20
    batch_size: int = 20
    budget: int = 500
    test_size: float = 0.25
    metric: str = "accuracy"
    cost_per_label: float | None = None
    n_jobs: int = 2


def make_metric(metric: str, problem: Problem) -> Callable[[Any, Any], float]:
    """``metric``'s scorer on (y_true, y_pred); an error if it is unknown or does not fit."""
    if metric not in BENCHMARK_METRICS:
        raise BenchmarkError(
            f"unknown metric {metric!r}; choose from {', '.join(BENCHMARK_METRICS)}"
        )
    entry = METRICS[metric]
    if entry.task != problem.task:
        raise BenchmarkError(f"metric {metric!r} does not fit a {problem.task} problem")
    if metric == "minority_recall":
        return partial(entry.score, rare_class=problem.minority)
    return entry.score


def make_model(kind: str, problem: Problem, seed: int) -> Any:
    from tasks.model.build import build_model
    from tasks.settings import ModelSettings

    if problem.task == "tokens":
        if kind != "logreg":
            raise BenchmarkError(f"token tagging supports --model logreg only, not {kind!r}")
        from tasks.model.tagger import TokenTagger

        return TokenTagger(random_state=seed)
    dense = not hasattr(problem.X, "tocsr")
    settings = ModelSettings(kind=kind, task=problem.task, scale=dense)
    return build_model(settings, random_state=seed)


def split(problem: Problem, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The seed's test split, stratified for classification."""
    if problem.task == "classification":
        splitter = StratifiedShuffleSplit(1, test_size=test_size, random_state=seed)
    else:
        splitter = ShuffleSplit(1, test_size=test_size, random_state=seed)
    pool, test = next(splitter.split(np.zeros(len(problem.y)), problem.y))
    return pool, test


def initial_rows(problem: Problem, pool: np.ndarray, n: int, seed: int) -> np.ndarray:
    """The seed's initial labeled set (pool-relative indices): one row per class first."""
    from tasks.loop.simulate import initial_labeled_set

    rng = np.random.default_rng(seed)
    if problem.task == "classification":
        return initial_labeled_set(problem.y[pool], n, rng)
    return rng.choice(pool.shape[0], size=min(n, pool.shape[0]), replace=False)


def run_curve(
    problem: Problem, strategy_name: str, seed: int, config: BenchmarkConfig
) -> dict[str, Any]:
    """One strategy, one seed: labels and scores at each round, and the query time."""
    import strategies
    from tasks.loop.simulate import simulate

    pool, test = split(problem, config.test_size, seed)
    X, y = problem.X, problem.y
    init = initial_rows(problem, pool, config.initial, seed)
    if problem.task == "tokens":
        from tasks.benchmark.tokens import token_strategy

        strategy = token_strategy(strategy_name)
    else:
        strategy = strategies.get(strategy_name)
    curve = simulate(
        strategy,
        make_model(config.model, problem, seed),
        X[pool],
        y[pool],
        X[test],
        y[test],
        initial=init,
        batch_size=config.batch_size,
        budget=min(config.budget, pool.shape[0]),
        seed=seed,
        metric=make_metric(config.metric, problem),
    )
    return {
        "strategy": strategy_name,
        "seed": seed,
        "labels": curve.labels,
        "scores": curve.scores,
        "query_seconds": curve.query_seconds,
    }


def full_data_score(problem: Problem, config: BenchmarkConfig, seeds: Iterable[int]) -> float:
    """The model trained on the whole pool, same metric, averaged over the seeds' splits."""
    scores = []
    metric = make_metric(config.metric, problem)
    for seed in seeds:
        pool, test = split(problem, config.test_size, seed)
        model = make_model(config.model, problem, seed).fit(problem.X[pool], problem.y[pool])
        scores.append(metric(problem.y[test], model.predict(problem.X[test])))
    return float(np.mean(scores))


def run_benchmark(
    problem: Problem,
    config: BenchmarkConfig,
    out: Path,
    on_done: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run every (strategy, seed) curve, in parallel across ``n_jobs`` processes; write outputs."""
    from joblib import Parallel, delayed

    make_metric(config.metric, problem)  # fail fast on a metric that does not fit
    unknown = [s for s in config.strategies if s not in _known_strategies(problem.task)]
    if unknown:
        hint = (
            f"choose from {', '.join(_known_strategies('tokens'))}"
            if problem.task == "tokens"
            else "see `labelwise strategies`"
        )
        raise BenchmarkError(f"unknown strategies {unknown} for a {problem.task} problem; {hint}")
    if "random" not in config.strategies:
        config.strategies = ["random", *config.strategies]
    jobs = [(s, seed) for seed in range(config.seeds) for s in config.strategies]
    start = time.perf_counter()
    runs = []
    parallel = Parallel(n_jobs=config.n_jobs, return_as="generator_unordered")
    for run in parallel(delayed(run_curve)(problem, s, seed, config) for s, seed in jobs):
        runs.append(run)
        if on_done is not None:
            on_done(run)
    full = full_data_score(problem, config, range(config.seeds))
    results = summarise(problem, config, runs, full)
    results["wall_seconds"] = time.perf_counter() - start
    write_outputs(results, out, config.cost_per_label)
    return results


def _known_strategies(task: str = "classification") -> list[str]:
    import strategies

    if task == "tokens":
        from tasks.benchmark.tokens import TOKEN_STRATEGIES

        return list(TOKEN_STRATEGIES)
    return strategies.available()
