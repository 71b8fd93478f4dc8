"""Label-efficiency benchmark: simulated active-learning loops with an oracle from known labels.

Every strategy sees, per seed, the same stratified test split, the same initial labeled set and
the same model, so learning curves differ only by what each strategy picks. Results follow the
``results.json`` schema other tools read (see :func:`summarise`).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score, mean_squared_error, recall_score
from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit

TARGETS = ("0.95", "0.99")
METRICS = ("accuracy", "macro_f1", "minority_recall", "rmse", "token_f1")
LOWER_IS_BETTER = {"rmse"}
EMBEDDINGS_CACHE = Path(".labelwise") / "embeddings"


class BenchmarkError(ValueError):
    """The benchmark cannot run as asked (bad column, too few rows, unknown metric...)."""


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


@dataclass
class Problem:
    """A featurized dataset: X (dense or sparse), y, and what kind of learning task it is."""

    name: str
    X: Any
    y: np.ndarray
    task: str = "classification"  # or "regression", or "tokens" (X: sentences, y: tag lists)
    minority: Any = None  # the least frequent class (minority_recall)


# ---- data -----------------------------------------------------------------------------------


def problem_from_frame(
    name: str,
    frame: pd.DataFrame,
    target: str,
    *,
    text_column: str | None = None,
    embeddings: bool = False,
    task: str | None = None,
) -> Problem:
    """Featurize ``frame`` as the pipeline does: TF-IDF (or sentence embeddings) for a text
    column, else numeric + one-hot categorical columns. The featurizers are unsupervised, so
    they are fit once on all rows."""
    if target not in frame.columns:
        raise BenchmarkError(f"{name}: no target column {target!r}; columns: {list(frame.columns)}")
    frame = frame.dropna(subset=[target]).reset_index(drop=True)
    y = frame[target].to_numpy()
    features = frame.drop(columns=[target])
    if text_column is not None:
        if text_column not in features.columns:
            raise BenchmarkError(f"{name}: no text column {text_column!r}")
        from tasks.features.text import make_text_featurizer

        if embeddings:  # cached by text hash under the project's work dir: computed once ever
            featurizer = make_text_featurizer("embeddings", cache_dir=str(EMBEDDINGS_CACHE))
        else:
            featurizer = make_text_featurizer("tfidf")
        X = featurizer.fit_transform(features[text_column].astype(str).tolist())
    else:
        from tasks.features.tabular import infer_column_types, make_tabular_featurizer

        types = infer_column_types(features)
        X = make_tabular_featurizer(types.numeric, types.categorical).fit_transform(features)
    if task is None:
        numeric_target = pd.api.types.is_float_dtype(frame[target])
        task = "regression" if numeric_target and frame[target].nunique() > 20 else "classification"
    minority = None
    if task == "classification":
        values, counts = np.unique(y.astype(str), return_counts=True)
        minority = values[np.argmin(counts)]
        y = y.astype(str)
    return Problem(name, X, y, task, minority)


def problem_from_dataset(name: str, embeddings: bool = False) -> Problem:
    """A bundled real dataset (``tasks.data.datasets``) as a benchmark problem."""
    from tasks.data.datasets import load_dataset

    ds = load_dataset(name)
    if ds.kind == "tokens":  # items are sentences, labeled whole
        from tasks.benchmark.tokens import as_items

        return Problem(name, as_items(ds.frame[ds.text]), as_items(ds.frame[ds.target]), "tokens")
    frame = ds.frame[[*ds.features, ds.target]]
    task = "regression" if ds.kind == "regression" else "classification"
    problem = problem_from_frame(
        name, frame, ds.target, text_column=ds.text, embeddings=embeddings, task=task
    )
    if ds.positive_label is not None:
        problem.minority = str(ds.positive_label)
    return problem


def problem_from_file(
    path: Path, target: str, text_column: str | None = None, embeddings: bool = False
) -> Problem:
    """A user's CSV or Parquet file as a benchmark problem."""
    if not path.exists():
        raise BenchmarkError(f"{path}: no such file")
    if path.suffix.lower() == ".csv":
        frame = pd.read_csv(path)
    elif path.suffix.lower() in (".parquet", ".pq"):
        frame = pd.read_parquet(path)
    else:
        raise BenchmarkError(f"{path}: expected a .csv or .parquet file")
    return problem_from_frame(
        path.stem, frame, target, text_column=text_column, embeddings=embeddings
    )


# ---- one learning curve ---------------------------------------------------------------------


def make_metric(metric: str, problem: Problem) -> Callable[[np.ndarray, np.ndarray], float]:
    if metric not in METRICS:
        raise BenchmarkError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
    fits = {"rmse": "regression", "token_f1": "tokens"}.get(metric, "classification")
    if fits != problem.task:
        raise BenchmarkError(f"metric {metric!r} does not fit a {problem.task} problem")
    if metric == "token_f1":
        from tasks.benchmark.tokens import token_f1

        return token_f1
    if metric == "accuracy":
        return accuracy_score
    if metric == "macro_f1":
        return lambda y, p: f1_score(y, p, average="macro", zero_division=0)
    if metric == "minority_recall":
        minority = problem.minority
        return lambda y, p: recall_score(y, p, labels=[minority], average="macro", zero_division=0)
    return lambda y, p: float(np.sqrt(mean_squared_error(y, p)))


def make_model(kind: str, problem: Problem, seed: int) -> Any:
    from tasks.model.build import build_model
    from tasks.settings import ModelSettings

    if problem.task == "tokens":
        if kind != "logreg":
            raise BenchmarkError(f"token tagging supports --model logreg only, not {kind!r}")
        from tasks.benchmark.tokens import TokenTagger

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


# ---- summaries ------------------------------------------------------------------------------


def reached(score: float, target: float, metric: str) -> bool:
    return score <= target if metric in LOWER_IS_BETTER else score >= target


def target_value(full: float, fraction: float, metric: str) -> float:
    """``fraction`` of the full-data score; for a lower-is-better metric, full / fraction."""
    return full / fraction if metric in LOWER_IS_BETTER else fraction * full


def labels_to_target(
    labels: list[int], mean_scores: np.ndarray, full: float, fraction: float, metric: str
) -> int | None:
    """First labeled-set size at which the seed-mean score reaches the target, else None."""
    goal = target_value(full, fraction, metric)
    for n, score in zip(labels, mean_scores, strict=True):
        if reached(float(score), goal, metric):
            return int(n)
    return None


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
    savings: dict[str, Any] = {}
    intervals: dict[str, Any] = {}
    if "random" in out_strategies:
        base = out_strategies["random"]
        base_scores = np.array(base["scores"])
        for name, info in out_strategies.items():
            savings[name] = {
                t: saving(info["labels_to_target"][t], base["labels_to_target"][t]) for t in TARGETS
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
        "config": asdict(config),
    }


# ---- outputs --------------------------------------------------------------------------------


def plot_curves(results: dict[str, Any], path: Path) -> Path:
    """Mean and 95% band (over seeds) per strategy, with the full-data line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, info in results["strategies"].items():
        x = np.array(info["labels"])
        s = np.array(info["scores"])
        mean = s.mean(0)
        half = 1.96 * s.std(0, ddof=1) / np.sqrt(s.shape[0]) if s.shape[0] > 1 else 0 * mean
        ax.plot(x, mean, label=name, lw=2 if name == "random" else 1.5)
        ax.fill_between(x, mean - half, mean + half, alpha=0.15)
    ax.axhline(results["full_data_score"], color="k", ls="--", lw=1, label="full data")
    ax.set_xlabel("labeled examples")
    ax.set_ylabel(results["metric"])
    ax.set_title(f"{results['dataset']} ({results['model']}, {len(s)} seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _fmt_saving(value: float | None, interval: tuple[float | None, float | None]) -> str:
    if value is None:
        return "-"
    low, high = interval
    band = f" [{low:.0%}, {high:.0%}]" if low is not None else ""
    return f"{value:.0%}{band}"


def summary_markdown(results: dict[str, Any], cost_per_label: float | None = None) -> str:
    """The summary table: labels to 95%/99%, savings with bootstrap intervals, AULC, cost saved."""
    head = "| strategy | labels to 95% | labels to 99% | saving @95% [95% CI] | saving @99% [95% CI] | AULC |"
    sep = "|---|---|---|---|---|---|"
    if cost_per_label is not None:
        head += " cost saved @95% |"
        sep += "---|"
    lines = [
        f"**{results['dataset']}**: pool {results['n_pool']}, test {results['n_test']}, "
        f"metric {results['metric']}, model {results['model']}, full-data score "
        f"{results['full_data_score']:.4f}",
        "",
        head,
        sep,
    ]
    savings = results.get("savings_vs_random", {})
    intervals = results.get("savings_interval_95", {})
    base = results["strategies"].get("random", {}).get("labels_to_target", {})
    last = max(info["labels"][-1] for info in results["strategies"].values())
    for name, info in results["strategies"].items():
        ltt = info["labels_to_target"]
        at_least = {  # reached by the strategy, never by random within the budget: a lower bound
            t: f">= {1 - ltt[t] / last:.0%}"
            for t in TARGETS
            if ltt[t] is not None and base.get(t) is None and name != "random"
        }
        row = [
            f"`{name}`",
            str(ltt["0.95"] if ltt["0.95"] is not None else f"> {info['labels'][-1]}"),
            str(ltt["0.99"] if ltt["0.99"] is not None else f"> {info['labels'][-1]}"),
            at_least.get("0.95")
            or _fmt_saving(
                savings.get(name, {}).get("0.95"), intervals.get(name, {}).get("0.95", (None, None))
            ),
            at_least.get("0.99")
            or _fmt_saving(
                savings.get(name, {}).get("0.99"), intervals.get(name, {}).get("0.99", (None, None))
            ),
            f"{info['aulc']:.4f}",
        ]
        if cost_per_label is not None:
            if ltt["0.95"] is not None and base.get("0.95") is not None:
                row.append(f"{(base['0.95'] - ltt['0.95']) * cost_per_label:,.2f}")
            else:
                row.append("-")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def write_outputs(
    results: dict[str, Any], out: Path, cost_per_label: float | None = None
) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "results": out / "results.json",
        "plot": out / "learning_curves.png",
        "summary": out / "summary.md",
    }
    paths["results"].write_text(json.dumps(results, indent=2))
    plot_curves(results, paths["plot"])
    paths["summary"].write_text(summary_markdown(results, cost_per_label))
    return paths


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


def log_to_mlflow(results: dict[str, Any], paths: dict[str, Path], settings: Any) -> str:
    """One MLflow run per benchmark in the ``<project>-benchmarks`` experiment; returns its id."""
    import mlflow

    from tasks.tracking.runs import setup_tracking

    settings = settings.model_copy(deep=True)
    settings.tracking.experiment = f"{settings.project.name}-benchmarks"
    setup_tracking(settings)
    with mlflow.start_run(run_name=f"benchmark-{results['dataset']}") as run:
        mlflow.log_params({k: v for k, v in results["config"].items() if k != "strategies"})
        mlflow.log_params(
            {"dataset": results["dataset"], "strategies": ",".join(results["strategies"])}
        )
        mlflow.log_metric("full_data_score", results["full_data_score"])
        for name, info in results["strategies"].items():
            mlflow.log_metric(f"aulc.{name}", info["aulc"])
            for t, n in info["labels_to_target"].items():
                if n is not None:
                    mlflow.log_metric(f"labels_to_{t}.{name}", n)
            mean = np.mean(info["scores"], axis=0)
            for n, score in zip(info["labels"], mean, strict=True):
                mlflow.log_metric(f"curve.{name}", float(score), step=int(n))
        for path in paths.values():
            mlflow.log_artifact(str(path))
        return run.info.run_id
