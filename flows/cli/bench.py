"""``labelwise benchmark``: label efficiency of strategies against random on your data."""

from __future__ import annotations

from pathlib import Path

import typer

from flows.cli.common import (
    PARAMS,
    console,
    fail,
    load_or_fail,
)


def benchmark_command(
    data: Path | None = typer.Option(None, "--data", help="a CSV or Parquet file"),
    dataset: str | None = typer.Option(None, "--dataset", help="a bundled real dataset"),
    target: str | None = typer.Option(None, "--target", help="the label column (with --data)"),
    text_column: str | None = typer.Option(
        None, "--text-column", help="featurize this text column"
    ),
    strategies_: str = typer.Option("random,margin,hybrid", "--strategies", help="comma-separated"),
    model: str = typer.Option(
        "auto",
        "--model",
        help="auto (the loop's default: family and regularisation by cross-validation each "
        "round) | logreg | forest | xgboost",
    ),
    seeds: int = typer.Option(10, "--seeds", min=1),
    initial: int = typer.Option(20, "--initial", min=1),
    batch_size: int = typer.Option(20, "--batch-size", min=1),
    budget: int = typer.Option(500, "--budget", min=1),
    test_size: float = typer.Option(0.25, "--test-size", min=0.05, max=0.9),
    metric: str = typer.Option(
        "accuracy", "--metric", help="accuracy | macro_f1 | minority_recall | rmse | token_f1"
    ),
    also_metric: str = typer.Option(
        "",
        "--also-metric",
        help="comma-separated metrics also scored on the same predictions (e.g. "
        "minority_recall beside macro_f1): curves and savings vs random in results.json 'also'",
    ),
    embeddings: bool = typer.Option(False, "--embeddings", help="sentence embeddings for text"),
    cost_per_label: float | None = typer.Option(None, "--cost-per-label", help="cost of one label"),
    n_jobs: int = typer.Option(2, "--n-jobs", help="parallel processes"),
    labeling_functions: str | None = typer.Option(
        None,
        "--labeling-functions",
        help="a module or .py file of labeling functions: each strategy also runs with their "
        "weak labels (<name>+lf), with weak_disagreement+lf and the functions alone",
    ),
    label_model: str = typer.Option(
        "dawid_skene", "--label-model", help="majority | dawid_skene | snorkel"
    ),
    semi_supervised: bool = typer.Option(
        False,
        "--semi-supervised",
        help="each strategy also runs self-trained on its pseudo-labels (<name>+st), measured "
        "against random+st; results.json's self_training: random+st against random",
    ),
    out: Path = typer.Option(..., "--out", help="output directory"),
    mlflow_log: bool = typer.Option(True, "--mlflow/--no-mlflow", help="log the run to MLflow"),
    params: Path = PARAMS,
) -> None:
    """Label efficiency of strategies vs random on your data (or a bundled dataset)."""
    from rich.progress import Progress

    from tasks.benchmark.curves import BenchmarkConfig, run_benchmark
    from tasks.benchmark.problems import BenchmarkError, problem_from_dataset, problem_from_file
    from tasks.benchmark.report import log_to_mlflow
    from tasks.weak.functions import LabelingFunctionError

    if (data is None) == (dataset is None):
        fail("give exactly one of --data PATH or --dataset NAME")
    try:
        if data is not None:
            if target is None:
                fail("--data needs --target COLUMN")
            problem = problem_from_file(data, target, text_column, embeddings)
        else:
            problem = problem_from_dataset(dataset, embeddings)
        config = BenchmarkConfig(
            strategies=[s.strip() for s in strategies_.split(",") if s.strip()],
            model=model,
            seeds=seeds,
            initial=initial,
            batch_size=batch_size,
            budget=budget,
            test_size=test_size,
            metric=metric,
            also_metrics=[m.strip() for m in also_metric.split(",") if m.strip()],
            cost_per_label=cost_per_label,
            n_jobs=n_jobs,
            labeling_functions=labeling_functions,
            label_model=label_model,
            semi_supervised=semi_supervised,
        )
        runs_per_seed = set(config.strategies) | {"random"}
        if labeling_functions:  # each also with the weak labels, and weak_disagreement+lf
            runs_per_seed |= {f"{s}+lf" for s in runs_per_seed} | {"weak_disagreement+lf"}
        if semi_supervised:  # each also self-trained
            runs_per_seed |= {f"{s}+st" for s in runs_per_seed}
        n_jobs_total = seeds * len(runs_per_seed)
        with Progress(console=console) as progress:
            bar = progress.add_task(f"{problem.name}: curves", total=n_jobs_total)
            results = run_benchmark(problem, config, out, on_done=lambda _: progress.advance(bar))
    except (BenchmarkError, LabelingFunctionError, KeyError, ImportError) as exc:
        fail(str(exc).strip("'\""), "see `labelwise benchmark --help`")
    console.print((out / "summary.md").read_text())
    if mlflow_log:
        run_id = log_to_mlflow(
            results, {p.stem: p for p in out.iterdir() if p.is_file()}, load_or_fail(params, [])
        )
        console.print(f"logged to MLflow run {run_id}")
    console.print(
        f"wrote {out / 'results.json'}, {out / 'learning_curves.png'}, {out / 'summary.md'}"
    )
