"""The ``labelwise`` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="labelwise: an active-learning pipeline.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)

PARAMS = typer.Option(Path("params.yaml"), "--params", help="settings file")
SETS = typer.Option(None, "--set", help="override a setting, e.g. strategy.batch_size=50")


def fail(message: str, hint: str | None = None) -> None:
    """Print one clear error line (and a hint), exit 1."""
    err.print(f"[bold red]error:[/] {message}")
    if hint:
        err.print(f"[dim]hint: {hint}[/]")
    raise typer.Exit(1)


@app.command("strategies")
def list_strategies() -> None:
    """List the query strategies with what each costs per query."""
    import strategies

    table = Table("name", "what it does", "cost per query")
    for name, info in strategies.describe().items():
        table.add_row(name, info["summary"], info["cost"])
    console.print(table)


@app.command()
def run(
    params: Path = PARAMS,
    overrides: list[str] = SETS,
    rounds: int = typer.Option(10, "--rounds", help="rounds to run"),
) -> None:
    """The main job. Until the Prefect flows land: a strategy demo on a real bundled dataset
    (scikit-learn's digits) with a simulated annotator, against the random baseline."""
    from flows.demo import run_demo
    from tasks.settings import SettingsError, load_settings

    try:
        settings = load_settings(params, overrides or [])
    except SettingsError as exc:
        fail(str(exc), "fix the key named above in params.yaml or in --set")
    run_demo(settings, rounds=rounds, console=console)


@app.command("history")
def history(
    params: Path = PARAMS,
    overrides: list[str] = SETS,
    loop: str | None = typer.Option(None, "--loop", help="loop (parent) run id; default: latest"),
    metrics: str = typer.Option(
        "accuracy,macro_f1,rare_class_recall,log_loss,ece_top_label",
        "--metrics",
        help="comma-separated holdout metrics to show",
    ),
) -> None:
    """The rounds of a loop, read from MLflow: labels, metrics, champion changes, drift flags."""
    from tasks.history import round_history
    from tasks.settings import SettingsError, load_settings
    from tasks.tracking import setup_tracking

    try:
        settings = load_settings(params, overrides or [])
    except SettingsError as exc:
        fail(str(exc), "fix the key named above in params.yaml or in --set")
    names = [name.strip() for name in metrics.split(",") if name.strip()]
    tracking = setup_tracking(settings)
    frame = round_history(tracking, loop, names)
    if frame.empty:
        fail(
            f"no rounds recorded in experiment {tracking.experiment_name!r}",
            f"tracking URI {tracking.tracking_uri}; run a loop first or pass --loop RUN_ID",
        )
    table = Table("round", "labels", *names, "champion", "flags", title="labelwise history")
    for row in frame.itertuples(index=False):
        values = row._asdict()
        cells = [f"{values[n]:.4f}" if values[n] is not None else "-" for n in names]
        champion = f"v{values['champion']}" + (" [green](new)[/]" if values["promoted"] else "")
        flags = values["flags"] if values["flags"] not in ("", "none") else "-"
        labels = "-" if values["n_labels"] is None else str(values["n_labels"])
        table.add_row(str(values["round"]), labels, *cells, champion, f"[yellow]{flags}[/]")
    console.print(table)


def _settings(params: Path, overrides: list[str] | None) -> Any:
    from tasks.settings import SettingsError, load_settings

    try:
        return load_settings(params, overrides or [])
    except SettingsError as exc:
        fail(str(exc), "fix the key named above in params.yaml or in --set")


@app.command("ingest")
def ingest_command(
    path: Path = typer.Argument(..., help="CSV, Parquet or JSONL file, or a folder of text/images"),
    holdout: bool = typer.Option(False, "--holdout", help="add to the holdout set (needs labels)"),
    params: Path = PARAMS,
    overrides: list[str] = SETS,
) -> None:
    """Add a file or folder to the pool as a new ingest batch (after the ingest gate)."""
    from tasks.data.ingest import ingest
    from tasks.data.store import StoreError
    from tasks.data.validate import ValidationError

    settings = _settings(params, overrides)
    try:
        result = ingest(path, settings, holdout=holdout)
    except ValidationError as exc:
        fail(
            exc.message,
            f"nothing was added; every failing row and its reason is in {exc.quarantine}",
        )
    except StoreError as exc:
        fail(str(exc), "nothing was added")
    console.print(
        f"ingest batch {result.batch}: {result.added} new row(s) added to the {result.target}, "
        f"{result.duplicates_in_file} duplicate(s) in the file and "
        f"{result.already_present} already present skipped"
    )


@app.command("checkout")
def checkout_command(
    round_: int = typer.Argument(..., metavar="ROUND", help="round whose data to restore"),
    force: bool = typer.Option(False, "--force", help="discard data changes not yet committed"),
    params: Path = PARAMS,
    overrides: list[str] = SETS,
) -> None:
    """Restore the pool, labels, holdout and manifests of round ROUND exactly (DVC)."""
    from tasks.data.versioning import VersioningError, checkout

    settings = _settings(params, overrides)
    try:
        tag = checkout(settings, round_, force=force)
    except VersioningError as exc:
        fail(str(exc), "`git -C <data_dir> tag` lists the committed rounds")
    console.print(f"{settings.project.data_dir} restored to {tag}")


@app.command("benchmark")
def benchmark_command(
    data: Path | None = typer.Option(None, "--data", help="a CSV or Parquet file"),
    dataset: str | None = typer.Option(None, "--dataset", help="a bundled real dataset"),
    target: str | None = typer.Option(None, "--target", help="the label column (with --data)"),
    text_column: str | None = typer.Option(
        None, "--text-column", help="featurize this text column"
    ),
    strategies_: str = typer.Option("random,margin,hybrid", "--strategies", help="comma-separated"),
    model: str = typer.Option("logreg", "--model", help="logreg | forest | xgboost"),
    seeds: int = typer.Option(10, "--seeds", min=1),
    initial: int = typer.Option(20, "--initial", min=1),
    batch_size: int = typer.Option(20, "--batch-size", min=1),
    budget: int = typer.Option(500, "--budget", min=1),
    test_size: float = typer.Option(0.25, "--test-size", min=0.05, max=0.9),
    metric: str = typer.Option(
        "accuracy", "--metric", help="accuracy | macro_f1 | minority_recall | rmse"
    ),
    embeddings: bool = typer.Option(False, "--embeddings", help="sentence embeddings for text"),
    cost_per_label: float | None = typer.Option(None, "--cost-per-label", help="cost of one label"),
    n_jobs: int = typer.Option(2, "--n-jobs", help="parallel processes"),
    out: Path = typer.Option(..., "--out", help="output directory"),
    mlflow_log: bool = typer.Option(True, "--mlflow/--no-mlflow", help="log the run to MLflow"),
    params: Path = PARAMS,
) -> None:
    """Label efficiency of strategies vs random on your data (or a bundled dataset)."""
    from rich.progress import Progress

    from tasks.benchmark import (
        BenchmarkConfig,
        BenchmarkError,
        log_to_mlflow,
        problem_from_dataset,
        problem_from_file,
        run_benchmark,
    )

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
            cost_per_label=cost_per_label,
            n_jobs=n_jobs,
        )
        n_jobs_total = seeds * len(set(config.strategies) | {"random"})
        with Progress(console=console) as progress:
            bar = progress.add_task(f"{problem.name}: curves", total=n_jobs_total)
            results = run_benchmark(problem, config, out, on_done=lambda _: progress.advance(bar))
    except (BenchmarkError, KeyError, ImportError) as exc:
        fail(str(exc).strip("'\""), "see `labelwise benchmark --help`")
    console.print((out / "summary.md").read_text())
    if mlflow_log:
        run_id = log_to_mlflow(
            results, {p.stem: p for p in out.iterdir() if p.is_file()}, _settings(params, [])
        )
        console.print(f"logged to MLflow run {run_id}")
    console.print(
        f"wrote {out / 'results.json'}, {out / 'learning_curves.png'}, {out / 'summary.md'}"
    )


if __name__ == "__main__":
    app()
