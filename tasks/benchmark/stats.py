"""Benchmark statistics: pure functions of the learning curves.

Labels to reach 95%/99% of the full-data score, savings against random with paired bootstrap
intervals over seeds, the area under the learning curve, and :func:`summarise`, which builds the
``results.json`` other tools read. Directions come from ``tasks.model.metrics``.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import numpy as np

from tasks.model.metrics import higher_is_better

if TYPE_CHECKING:
    from tasks.benchmark.curves import BenchmarkConfig
    from tasks.benchmark.problems import Problem

TARGETS = ("0.95", "0.99")


def reached(score: float, target: float, metric: str) -> bool:
    return score >= target if higher_is_better(metric) else score <= target


def target_value(full: float, fraction: float, metric: str) -> float:
    """``fraction`` of the full-data score; for a lower-is-better metric, full / fraction."""
    return fraction * full if higher_is_better(metric) else full / fraction


def labels_to_target(
    labels: list[int], mean_scores: np.ndarray, full: float, fraction: float, metric: str
) -> int | None:
    """First labeled-set size at which the seed-mean score reaches the target, else None."""
    return first_reaching(labels, mean_scores, target_value(full, fraction, metric), metric)


def first_reaching(
    labels: list[int], mean_scores: np.ndarray, goal: float, metric: str
) -> int | None:
    """First labeled-set size at which ``mean_scores`` reaches ``goal``, else None."""
    for n, score in zip(labels, mean_scores, strict=True):
        if reached(float(score), goal, metric):
            return int(n)
    return None


def savings_vs_final(
    labels: list[int], scores: np.ndarray, random_scores: np.ndarray, metric: str
) -> float | None:
    """The saving against random of reaching random's final (seed-mean) score at the budget:
    ``1 - n_strategy / n_random``, each the first labeled-set size whose seed-mean reaches it."""
    random_mean = random_scores.mean(axis=0)
    goal = float(random_mean[-1])
    return saving(
        first_reaching(labels, scores.mean(axis=0), goal, metric),
        first_reaching(labels, random_mean, goal, metric),
    )


def bootstrap_final_savings(
    labels: list[int],
    scores: np.ndarray,
    random_scores: np.ndarray,
    metric: str,
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[float | None, float | None]:
    """95% paired bootstrap interval (resampling seeds) of :func:`savings_vs_final`; a resample
    where the strategy never reaches random's final score counts as a saving of 0 (it needed
    the whole budget or more)."""
    rng = np.random.default_rng(seed)
    n = scores.shape[0]
    values = []
    for _ in range(n_boot):
        pick = rng.integers(0, n, n)
        value = savings_vs_final(labels, scores[pick], random_scores[pick], metric)
        values.append(0.0 if value is None else min(value, 1.0))
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def bootstrap_mean(
    values: np.ndarray, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """The mean of ``values`` (e.g. paired per-seed differences) and its 95% percentile
    bootstrap interval, resampling the values."""
    values = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.shape[0], (n_boot, values.shape[0]))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(values.mean()), float(low), float(high)


def aulc(labels: list[int], scores: np.ndarray) -> float:
    """Mean over seeds of the area under the curve divided by the label range (a mean score)."""
    x = np.asarray(labels, dtype=float)
    if x.shape[0] < 2 or x[-1] == x[0]:
        return float(np.mean(scores))
    areas = np.trapezoid(np.asarray(scores, dtype=float), x, axis=-1) / (x[-1] - x[0])
    return float(np.mean(areas))


def saving(strategy_labels: int | None, random_labels: int | None) -> float | None:
    if strategy_labels is None or random_labels is None or random_labels == 0:
        return None
    return 1.0 - strategy_labels / random_labels


def bootstrap_savings(
    labels: list[int],
    scores: np.ndarray,
    random_scores: np.ndarray,
    full: float,
    fraction: float,
    metric: str,
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[float | None, float | None]:
    """95% percentile interval of the saving vs random, resampling seeds (paired: a seed's split
    and initial set are shared by both strategies). Resamples where either curve never reaches
    the target are left out."""
    rng = np.random.default_rng(seed)
    n = scores.shape[0]
    values = []
    for _ in range(n_boot):
        pick = rng.integers(0, n, n)
        ours = labels_to_target(labels, scores[pick].mean(0), full, fraction, metric)
        theirs = labels_to_target(labels, random_scores[pick].mean(0), full, fraction, metric)
        value = saving(ours, theirs)
        if value is not None:
            values.append(value)
    if len(values) < n_boot // 2:
        return None, None
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def summarise(
    problem: Problem,
    config: BenchmarkConfig,
    runs: list[dict[str, Any]],
    full: float,
) -> dict[str, Any]:
    """``results.json``: curves per strategy, AULC, labels to 95%/99% of full, savings vs random."""
    by_strategy: dict[str, list[dict[str, Any]]] = {}
    for run in sorted(runs, key=lambda r: (r["strategy"], r["seed"])):
        by_strategy.setdefault(run["strategy"], []).append(run)
    out_strategies: dict[str, Any] = {}
    for name in config.strategies:
        seed_runs = by_strategy.get(name, [])
        labels = seed_runs[0]["labels"]
        scores = np.array([r["scores"] for r in seed_runs], dtype=float)
        mean = scores.mean(axis=0)
        out_strategies[name] = {
            "labels": [int(n) for n in labels],
            "scores": scores.tolist(),
            "aulc": aulc(labels, scores),
            "labels_to_target": {
                t: labels_to_target(labels, mean, full, float(t), config.metric) for t in TARGETS
            },
            "query_seconds": float(np.mean([r["query_seconds"] for r in seed_runs])),
        }
        for metric in config.also_metrics:
            also = np.array([r["also"][metric] for r in seed_runs], dtype=float)
            out_strategies[name].setdefault("also", {})[metric] = {
                "scores": also.tolist(),
                "aulc": aulc(labels, also),
            }
    savings: dict[str, Any] = {}
    intervals: dict[str, Any] = {}
    final: dict[str, Any] = {}
    if "random" in out_strategies:
        for name, info in out_strategies.items():
            # a self-trained run (+st) against random self-trained the same way: the strategy's
            # effect alone (self-training's own: random+st against random, ``self_training``)
            base = out_strategies[baseline_of(name, out_strategies)]
            base_scores = np.array(base["scores"])
            savings[name] = {
                t: saving(info["labels_to_target"][t], base["labels_to_target"][t]) for t in TARGETS
            }
            ours = np.array(info["scores"])
            final[name] = {
                "saving": savings_vs_final(info["labels"], ours, base_scores, config.metric),
                "interval_95": bootstrap_final_savings(
                    info["labels"], ours, base_scores, config.metric
                ),
            }
            intervals[name] = {
                t: bootstrap_savings(
                    info["labels"],
                    np.array(info["scores"]),
                    base_scores,
                    full,
                    float(t),
                    config.metric,
                )
                for t in TARGETS
            }
    extra: dict[str, Any] = {}
    if "random+st" in out_strategies and "random" in out_strategies:
        alone = out_strategies["random+st"]
        plain = np.array(out_strategies["random"]["scores"])
        ours = np.array(alone["scores"])
        extra["self_training"] = {
            "baseline": "random",
            "saving": savings_vs_final(alone["labels"], ours, plain, config.metric),
            "interval_95": bootstrap_final_savings(alone["labels"], ours, plain, config.metric),
            "final_score_gain": float(ours[:, -1].mean() - plain[:, -1].mean()),
        }
    if config.also_metrics and "random" in out_strategies:
        extra["also"] = {m: also_savings(out_strategies, m) for m in config.also_metrics}
    if problem.task == "classification":  # what makes a rare-class set
        _, counts = np.unique(np.asarray(problem.y), return_counts=True)
        extra["rarest_class_share"] = float(counts.min() / counts.sum())
        extra["n_classes"] = len(counts)
    pool_size = len(problem.y) - math.ceil(config.test_size * len(problem.y))
    return {
        "dataset": problem.name,
        "n_pool": int(pool_size),
        "n_test": int(len(problem.y) - pool_size),
        "metric": config.metric,
        "model": config.model,
        "full_data_score": full,
        "strategies": out_strategies,
        "savings_vs_random": savings,
        "savings_interval_95": intervals,
        "savings_vs_random_final": final,
        **extra,
        "config": asdict(config),
    }


def also_savings(strategies: dict[str, Any], metric: str) -> dict[str, Any]:
    """For an extra metric: random's final (seed-mean) score and, per strategy, the saving
    against random of reaching it, with its paired bootstrap interval."""
    out: dict[str, Any] = {}
    for name, info in strategies.items():
        base = np.array(strategies[baseline_of(name, strategies)]["also"][metric]["scores"])
        ours = np.array(info["also"][metric]["scores"])
        out[name] = {
            "random_final": float(base[:, -1].mean()),
            "final": float(ours[:, -1].mean()),
            "saving": savings_vs_final(info["labels"], ours, base, metric),
            "interval_95": bootstrap_final_savings(info["labels"], ours, base, metric),
        }
    return {"savings_vs_random_final": out}


def baseline_of(name: str, strategies: dict[str, Any]) -> str:
    """The run a strategy's savings are measured against: ``random``, or ``random+st`` for a
    self-trained run when there is one."""
    if name.endswith("+st") and "random+st" in strategies:
        return "random+st"
    return "random"
