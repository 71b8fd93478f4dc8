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
    #: more metrics scored on the same predictions, e.g. ``minority_recall`` beside macro-F1:
    #: their curves and savings vs random go to results.json's ``also``
    also_metrics: list[str] = field(default_factory=list)
    cost_per_label: float | None = None
    n_jobs: int = 2
    #: a module (or .py file) of labeling functions: each strategy also runs as ``<name>+lf``
    #: (trained on their weak labels too), with ``weak_disagreement+lf`` and the functions alone
    labeling_functions: str | None = None
    label_model: str = "dawid_skene"
    weak_weight: float = 0.5
    min_probability: float = 0.5
    #: each strategy also runs as ``<name>+st``: self-trained on its confident pseudo-labels
    #: (:mod:`tasks.model.semi`), compared with ``random+st`` so the two effects stay apart
    semi_supervised: bool = False
    pseudo_threshold: float = 0.9
    pseudo_weight: float = 0.5


#: the suffix of a strategy run that also trains on the labeling functions' weak labels
WEAK = "+lf"
#: the suffix of a strategy run whose model is self-trained on the unlabeled pool
SELF_TRAINED = "+st"
#: separates a strategy's name from its parameters in a benchmark's list of strategies
PARAMETER = ":"


def strategy_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """The strategy name and parameters of ``name:key=value:key=value`` (e.g.
    ``hybrid:prefilter=20:random_fraction=0.1``), values read as YAML scalars; the whole spec
    stays the run's label, so two settings of one strategy can run side by side."""
    import yaml

    name, *pairs = spec.split(PARAMETER)
    params: dict[str, Any] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key:
            raise BenchmarkError(
                f"strategy {spec!r}: {pair!r} is not key=value (write name:key=value:key=value)"
            )
        params[key] = yaml.safe_load(value)
    return name, params


def check_spec(spec: str) -> None:
    """Fail fast, before any curve runs, on a parameter the strategy (or its guards) does not take."""
    import strategies
    from strategies.guards import Guards

    name, params = strategy_spec(spec)
    unknown = set(params) - strategies.parameters(name) - set(Guards.names())
    if unknown:
        raise BenchmarkError(
            f"strategy {spec!r}: {name} has no parameter(s) {sorted(unknown)}; it takes "
            f"{sorted(strategies.parameters(name)) or 'none'} and the guards {list(Guards.names())}"
        )


def strategy_of(spec: str) -> Any:
    """The strategy a spec names (see :func:`strategy_spec`), its parameters checked."""
    import strategies

    name, params = strategy_spec(spec)
    try:
        return strategies.get(name, **params)
    except (TypeError, ValueError) as error:
        raise BenchmarkError(f"strategy {spec!r}: {error}") from None


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


def make_model(kind: str, problem: Problem, seed: int, metric: str | None = None) -> Any:
    """The benchmark's learner; ``kind`` auto searches by ``metric`` as the loop does
    (:func:`tasks.model.auto.scoring_for`)."""
    from tasks.model.build import build_model
    from tasks.settings import ModelSettings

    if problem.task == "tokens":
        if kind != "logreg":
            raise BenchmarkError(f"token tagging supports --model logreg only, not {kind!r}")
        from tasks.model.tagger import TokenTagger

        return TokenTagger(random_state=seed)
    dense = not hasattr(problem.X, "tocsr")
    params = {}
    if kind == "auto" and metric is not None:
        from tasks.model.auto import decision_metric_for, scoring_for

        params["scoring"] = scoring_for(metric, problem.task)
        params["decision_metric"] = decision_metric_for(metric, problem.task)
    settings = ModelSettings(kind=kind, task=problem.task, scale=dense, params=params)
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


def weak_labels_for(
    votes: Any, pool: np.ndarray, config: BenchmarkConfig, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The label model fit on the pool rows' votes (no label seen): (pool-relative rows with a
    weak label of probability >= ``min_probability``, their labels, their training weights)."""
    from tasks.weak.label_model import confident_labels

    classes = np.asarray(votes.classes, dtype=object)
    _, rows, best, top = confident_labels(
        config.label_model, votes.matrix[pool], len(classes), config.min_probability, seed=seed
    )
    return rows, classes[best].astype(str), config.weak_weight * top


def run_curve(
    problem: Problem, strategy_name: str, seed: int, config: BenchmarkConfig, votes: Any = None
) -> dict[str, Any]:
    """One strategy, one seed: labels and scores at each round, and the query time; a name
    ending in ``+lf`` also trains on the weak labels of ``votes`` (the labeling functions')."""
    import strategies
    from strategies.weak import with_votes
    from tasks.loop.simulate import simulate
    from tasks.model.semi import SelfTraining

    pool, test = split(problem, config.test_size, seed)
    X, y = problem.X, problem.y
    init = initial_rows(problem, pool, config.initial, seed)
    semi = None
    if strategy_name.endswith(SELF_TRAINED):
        semi = SelfTraining(config.pseudo_threshold, config.pseudo_weight)
        strategy_name = strategy_name.removesuffix(SELF_TRAINED)
    base = strategy_name.removesuffix(WEAK)
    weak = None
    if votes is not None and strategy_name.endswith(WEAK):
        weak = weak_labels_for(votes, pool, config, seed)
    if problem.task == "tokens":
        from tasks.benchmark.tokens import token_strategy

        strategy = token_strategy(strategy_name)
    elif votes is not None:
        name, params = strategy_spec(base)
        params = with_votes(name, params, votes.matrix[pool], len(votes.classes))
        strategy = strategies.get(name, **params)
    else:
        strategy = strategy_of(base)
    curve = simulate(
        strategy,
        make_model(config.model, problem, seed, config.metric),
        X[pool],
        y[pool],
        X[test],
        y[test],
        initial=init,
        batch_size=config.batch_size,
        budget=min(config.budget, pool.shape[0]),
        seed=seed,
        metric=make_metric(config.metric, problem),
        weak=weak,
        semi=semi,
        also={name: make_metric(name, problem) for name in config.also_metrics},
    )
    return {
        "strategy": strategy_name + (SELF_TRAINED if semi is not None else ""),
        "seed": seed,
        "labels": curve.labels,
        "scores": curve.scores,
        "also": curve.also,
        "query_seconds": curve.query_seconds,
    }


def full_data_score(problem: Problem, config: BenchmarkConfig, seeds: Iterable[int]) -> float:
    """The model trained on the whole pool, same metric, averaged over the seeds' splits."""
    scores = []
    metric = make_metric(config.metric, problem)
    for seed in seeds:
        pool, test = split(problem, config.test_size, seed)
        model = make_model(config.model, problem, seed, config.metric).fit(
            problem.X[pool], problem.y[pool]
        )
        scores.append(metric(problem.y[test], model.predict(problem.X[test])))
    return float(np.mean(scores))


def functions_alone(
    problem: Problem, config: BenchmarkConfig, votes: Any, seeds: Iterable[int]
) -> dict[str, Any]:
    """The labeling functions without active learning: per seed, the model trained on their
    weak labels and the initial labeled set; with the weak labels' coverage and accuracy."""
    from tasks.loop.simulate import fit_labeled

    metric = make_metric(config.metric, problem)
    scores, coverage, accuracy = [], [], []
    for seed in seeds:
        pool, test = split(problem, config.test_size, seed)
        labeled = np.zeros(pool.shape[0], dtype=bool)
        labeled[initial_rows(problem, pool, config.initial, seed)] = True
        weak = weak_labels_for(votes, pool, config, seed)
        model = make_model(config.model, problem, seed, config.metric)
        fitted = fit_labeled(model, problem.X[pool], problem.y[pool], labeled, weak)
        scores.append(float(metric(problem.y[test], fitted.predict(problem.X[test]))))
        coverage.append(weak[0].shape[0] / pool.shape[0])
        accuracy.append(
            float(np.mean(weak[1] == problem.y[pool][weak[0]])) if len(weak[0]) else 0.0
        )
    return {
        "module": config.labeling_functions,
        "functions": list(votes.functions),
        "label_model": config.label_model,
        "weak_weight": config.weak_weight,
        "initial_labels": config.initial,
        "scores": scores,
        "score": float(np.mean(scores)),
        "weak_label_coverage": float(np.mean(coverage)),
        "weak_label_accuracy": float(np.mean(accuracy)),
    }


def problem_votes(problem: Problem, module: str) -> Any:
    """The labeling functions of ``module`` applied to every item of ``problem``."""
    from tasks.weak.functions import apply_functions, load_functions

    if problem.raw is None or problem.task != "classification":
        raise BenchmarkError(
            f"{problem.name}: labeling functions need a classification problem with its items"
        )
    classes = sorted({str(c) for c in problem.y})
    return apply_functions(load_functions(module, root=Path.cwd()), problem.raw, classes)


def run_benchmark(
    problem: Problem,
    config: BenchmarkConfig,
    out: Path,
    on_done: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run every (strategy, seed) curve, in parallel across ``n_jobs`` processes; write outputs."""
    from joblib import Parallel, delayed

    for metric in (config.metric, *config.also_metrics):
        make_metric(metric, problem)  # fail fast on a metric that does not fit
    known = _known_strategies(problem.task)
    names = {s: s.removesuffix(SELF_TRAINED).removesuffix(WEAK) for s in config.strategies}
    unknown = [s for s, base in names.items() if strategy_spec(base)[0] not in known]
    if unknown:
        hint = (
            f"choose from {', '.join(_known_strategies('tokens'))}"
            if problem.task == "tokens"
            else "see `labelwise strategies`"
        )
        raise BenchmarkError(f"unknown strategies {unknown} for a {problem.task} problem; {hint}")
    if problem.task != "tokens":
        for base in names.values():
            check_spec(base)
    if "random" not in config.strategies:
        config.strategies = ["random", *config.strategies]
    votes = None
    if config.labeling_functions:
        votes = problem_votes(problem, config.labeling_functions)
        plain = [s for s in config.strategies if not s.endswith(WEAK)]
        weak_runs = [f"{s}{WEAK}" for s in plain] + [f"weak_disagreement{WEAK}"]
        config.strategies = list(dict.fromkeys([*plain, *weak_runs]))
    if config.semi_supervised:
        if problem.task != "classification":
            raise BenchmarkError("--semi-supervised self-trains a classifier: not for this problem")
        plain = [s for s in config.strategies if not s.endswith(SELF_TRAINED)]
        trained = [f"{s}{SELF_TRAINED}" for s in plain]
        config.strategies = list(dict.fromkeys([*plain, *trained]))
    jobs = [(s, seed) for seed in range(config.seeds) for s in config.strategies]
    start = time.perf_counter()
    runs = []
    parallel = Parallel(n_jobs=config.n_jobs, return_as="generator_unordered")
    curves = (delayed(run_curve)(problem, s, seed, config, votes) for s, seed in jobs)
    for run in parallel(curves):
        runs.append(run)
        if on_done is not None:
            on_done(run)
    full = full_data_score(problem, config, range(config.seeds))
    results = summarise(problem, config, runs, full)
    if votes is not None:
        results["labeling_functions"] = functions_alone(problem, config, votes, range(config.seeds))
    results["wall_seconds"] = time.perf_counter() - start
    write_outputs(results, out, config.cost_per_label)
    return results


def _known_strategies(task: str = "classification") -> list[str]:
    import strategies

    if task == "tokens":
        from tasks.benchmark.tokens import TOKEN_STRATEGIES

        return list(TOKEN_STRATEGIES)
    return strategies.available()
