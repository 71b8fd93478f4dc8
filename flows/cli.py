"""The ``labelwise`` command line."""

from __future__ import annotations

import sys
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


VERBOSE = typer.Option(
    False, "--verbose", "-v", help="also show the run log (and any traceback) in the terminal"
)
MAX_ERROR_LINES = 6


def fail(message: str, hint: str | None = None, *, log: Path | None = None) -> None:
    """Print one clear error (a few lines at most) and a hint, exit 1; ``log``: where the full
    details are."""
    lines = str(message).strip().splitlines() or ["(no message)"]
    shown = "\n".join(lines[:MAX_ERROR_LINES])
    if len(lines) > MAX_ERROR_LINES:
        shown += f"\n... {len(lines) - MAX_ERROR_LINES} more line(s)" + (
            " in the log" if log else ""
        )
    err.print(f"[bold red]error:[/] {shown}", markup=True, highlight=False)
    if hint:
        err.print(f"[dim]hint: {hint}[/]")
    if log is not None:
        err.print(f"[dim]details and traceback: {log}[/]", soft_wrap=True)
    raise typer.Exit(1)


def fail_on(exc: BaseException, hint: str, *, log: Path | None, verbose: bool) -> None:
    """An exception as :func:`fail` shows it: its traceback goes to the run log (and, with
    ``--verbose``, to the terminal); the terminal gets its message and the hint."""
    import logging
    import traceback

    logging.getLogger("labelwise").error("%s", exc, exc_info=(type(exc), exc, exc.__traceback__))
    if verbose:
        traceback.print_exception(exc, file=sys.stderr)
    fail(f"{_name(exc)}{exc}", _hint(exc, hint), log=log)


def _name(exc: BaseException) -> str:
    """The exception's type, where it says more than its message (not for our own errors)."""
    ours = type(exc).__module__.split(".")[0] in ("tasks", "flows", "strategies")
    ours = ours or type(exc).__name__ == "FailedRun"  # a state message, e.g. backend down
    return "" if ours else f"{type(exc).__name__}: "


def _hint(exc: BaseException, default: str) -> str:
    from tasks.annotation.base import AnnotationBackendError
    from tasks.data.validate import ValidationError
    from tasks.rounds import TrackingError

    if isinstance(exc, ValidationError):
        return f"the failing rows and their reasons are in {exc.quarantine}; nothing was lost"
    if isinstance(exc, AnnotationBackendError) or "the annotation backend" in str(exc):
        return "check the annotation backend, then run again: the round continues where it stopped"
    if isinstance(exc, TrackingError):
        return "start the MLflow tracking server (tracking.tracking_uri), then run again"
    return default


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
    rounds: int | None = typer.Option(
        None,
        "--rounds",
        help="run at most N rounds now (default: until a stopping rule fires, loop.max_rounds)",
    ),
    verbose: bool = VERBOSE,
) -> None:
    """The main job: the active-learning loop as Prefect flows, on a local temporary Prefect
    server, MLflow on SQLite and a local DVC remote, all under project.work_dir. A fresh project
    is filled with a bundled real dataset (loop.dataset) labeled by simulated annotators."""
    from flows.environment import setup_environment, setup_run_log

    settings = _settings(params, overrides)
    setup_environment(settings, quiet_logs=True)
    log = setup_run_log(settings, verbose=verbose)
    from tasks.project import seed_project

    with console.status(f"preparing the project ({settings.loop.dataset}, seed labels)"):
        try:
            created = seed_project(settings)
        except Exception as exc:  # a dataset, gate or store problem: one line and a hint
            fail_on(
                exc, "check the loop and data sections of params.yaml", log=log, verbose=verbose
            )
    if created:
        console.print(
            f"new project in {settings.project.data_dir}/: {settings.loop.dataset}, "
            f"{settings.loop.initial_labels} seed labels from the simulated annotators"
        )
    result = _run_loop(settings, rounds, log=log, verbose=verbose)
    if result.status == "skipped":
        fail(result.reason, "run again once it has finished: the loop continues", log=log)
    _print_summary(settings, result)


def _run_loop(settings: Any, rounds: int | None, *, log: Path, verbose: bool) -> Any:
    """Run the loop flow with a rich line per round and a spinner naming the running step."""
    from flows.loop import loop_flow
    from flows.progress import REPORTERS

    status = console.status("starting the local Prefect server (first run: up to a minute)")
    metric = settings.evaluate.metric

    def reporter(event: str, data: dict[str, Any]) -> None:
        if event == "round_start":
            verb = "continuing" if data["continued"] else "running"
            status.update(f"{verb} round {data['round']}")
        elif event == "step":
            status.update(f"round {data['round']}: {data['step']} done")
        elif event == "round_end":
            r = data["result"]
            if r.status == "waiting":
                console.print(
                    f"round {r.round}: [yellow]waiting for labels[/] "
                    f"({(r.labeled_fraction or 0):.0%} of the batch labeled)"
                )
                return
            score = r.metrics.get(metric)
            if score is None:
                console.print(f"round {r.round}: {r.n_labels} labels, {r.training or 'no model'}")
                return
            champion = "[green]new champion[/]" if r.promoted else "champion kept"
            flags = f", [yellow]flags: {', '.join(r.flags)}[/]" if r.flags else ""
            console.print(
                f"round {r.round}: {r.n_labels} labels, {metric} {score:.4f} ({champion}){flags}"
            )

    REPORTERS.append(reporter)
    status.start()
    try:
        state = loop_flow(settings, rounds_this_run=rounds, return_state=True)
    except Exception as exc:  # Prefect could not run the flow at all (its server, say)
        status.stop()
        fail_on(exc, "see the log; run again once the cause is fixed", log=log, verbose=verbose)
    finally:
        status.stop()
        REPORTERS.remove(reporter)
    if state.is_failed() or state.is_crashed():
        try:
            state.result()
        except BaseException as exc:
            fail_on(
                exc,
                "fix the cause and run again: the round continues where it stopped",
                log=log,
                verbose=verbose,
            )
    return state.result()


def _print_summary(settings: Any, result: Any) -> None:
    from tasks.project import random_baseline
    from tasks.rounds import truth_path
    from tasks.tracking import setup_tracking

    work = Path(settings.project.work_dir).resolve()
    bin_dir = Path(sys.executable).parent
    table = Table(title="labelwise run", show_header=False)
    table.add_row("outcome", f"{result.status}: {result.reason}")
    table.add_row("rounds this run", str(len(result.rounds)))
    if not result.rounds and result.status == "stopped":
        table.add_row("to run more", "--rounds N, or --set loop.max_rounds=M (a larger total)")
    table.add_row("labels used", str(result.n_labels))
    if result.score is not None:
        table.add_row(f"champion {result.metric} (holdout)", f"{result.score:.4f}")
    if truth_path(settings).exists() and result.n_labels:
        with console.status("random baseline at the same budget"):
            base = random_baseline(settings, int(result.n_labels))
        table.add_row(
            f"random baseline {base['metric']} at {base['budget']} labels",
            f"{base['score']:.4f} (mean of {base['repeats']} seeds)",
        )
    console.print(table)
    tracking = setup_tracking(settings)
    console.print("open the record:")
    console.print(
        f"  Prefect: PREFECT_HOME={work / 'prefect'} {bin_dir}/prefect server start "
        "--host 127.0.0.1 --port 4200   # then http://127.0.0.1:4200",
        soft_wrap=True,
    )
    console.print(
        f"  MLflow:  {bin_dir}/mlflow ui --backend-store-uri {tracking.tracking_uri} "
        "--host 127.0.0.1 --port 5000   # then http://127.0.0.1:5000",
        soft_wrap=True,
    )


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
        "accuracy", "--metric", help="accuracy | macro_f1 | minority_recall | rmse | token_f1"
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


annotation_app = typer.Typer(help="Annotation: a local Label Studio server.", no_args_is_help=True)
app.add_typer(annotation_app, name="annotation")


@annotation_app.command("up")
def annotation_up(
    port: int = typer.Option(8080, "--port", help="port to serve on (must be free)"),
    venv: Path | None = typer.Option(
        None, "--venv", help="Label Studio's own venv (default: <work_dir>/label-studio-venv)"
    ),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="its database and uploads (default: <work_dir>/label-studio)"
    ),
    params: Path = PARAMS,
    overrides: list[str] = SETS,
) -> None:
    """Install Label Studio in its own venv (first time: a few minutes), start it headless and
    print its URL, login and the environment variables the label_studio backend reads."""
    import signal
    import sys
    import time

    from tasks.annotation.server import LABEL_STUDIO_VERSION, ServerError, install, local_server

    settings = _settings(params, overrides)
    work_dir = Path(settings.project.work_dir).resolve()
    venv = venv or work_dir / "label-studio-venv"
    data_dir = data_dir or work_dir / "label-studio"
    try:
        console.print(f"installing label-studio=={LABEL_STUDIO_VERSION} into {venv} (if needed)")
        install(venv)
        server = local_server(venv, data_dir, port)
        console.print("starting Label Studio (first start: 1-2 min of database migrations)")
        server.start()
    except ServerError as exc:
        fail(str(exc), "check network access to PyPI, or pick a free port with --port")
    console.print(f"[bold green]Label Studio is up:[/] {server.url}")
    console.print(f"login: {server.username} / {server.password}")
    creds = data_dir / "labelwise-credentials.json"
    console.print(  # the token stays in its mode-600 file, out of terminal logs
        f"export LABEL_STUDIO_URL={server.url}\n"
        f'export LABEL_STUDIO_API_KEY=$(sed -E \'s/.*"token": "([^"]+)".*/\\1/\' {creds})',
        soft_wrap=True,
        markup=False,
    )
    console.print("[dim]Ctrl-C (or SIGTERM) stops it[/]")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # run the `finally` below
    try:
        while server.process is not None and server.process.poll() is None:
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


secret_app = typer.Typer(
    help="Credentials as Prefect Secret blocks (an environment variable of the same name wins).",
    no_args_is_help=True,
)
app.add_typer(secret_app, name="secret")


def _stdin_is_tty() -> bool:
    return sys.stdin.isatty()


@secret_app.command("set")
def secret_set(
    name: str = typer.Argument(
        ..., help="its environment variable, e.g. LABEL_STUDIO_API_KEY or AWS_SECRET_ACCESS_KEY"
    ),
    params: Path = PARAMS,
) -> None:
    """Store a credential as the Prefect Secret block labelwise-<name> (on PREFECT_API_URL, or
    the project's local Prefect store). The value is read from standard input when it is piped,
    else from a hidden prompt; never from the command line."""
    import os

    from flows.environment import setup_environment
    from tasks.secrets import KNOWN, SecretError, block_for, store_secret

    name = name.upper()
    try:
        block = block_for(name)
    except SecretError as exc:
        fail(str(exc))
    setup_environment(_settings(params, []), quiet_logs=True)
    if _stdin_is_tty():
        value = typer.prompt(name, hide_input=True, confirmation_prompt=True)
    else:
        value = sys.stdin.read().rstrip("\r\n")
    if not value:
        fail(
            f"no value given for {name}: nothing stored", f"echo ... | labelwise secret set {name}"
        )
    try:
        store_secret(name, value)
    except Exception as exc:  # the Prefect API is down or refuses: never echo the value
        fail(
            f"could not store the Prefect Secret block {block!r}: "
            f"{type(exc).__name__}: {str(exc).replace(value, '***')}",
            "check PREFECT_API_URL (unset: the project's local Prefect store is used)",
        )
    from prefect.settings import PREFECT_API_URL

    where = PREFECT_API_URL.value() or f"local store, PREFECT_HOME={os.environ['PREFECT_HOME']}"
    console.print(f"stored {name} as the Prefect Secret block {block!r} ({where})")
    if name not in KNOWN:
        console.print(f"[yellow]note: labelwise reads {', '.join(KNOWN)}; not {name}[/]")
    if os.environ.get(name):
        console.print(f"[yellow]note: the environment variable {name} is set and wins[/]")


@secret_app.command("status")
def secret_status(params: Path = PARAMS) -> None:
    """Where each credential labelwise reads comes from: the environment, a Prefect Secret block,
    or nowhere (values are never shown)."""
    from flows.environment import setup_environment
    from tasks.secrets import KNOWN, SecretError, block_for, secret_source

    setup_environment(_settings(params, []), quiet_logs=True)
    try:
        for name, purpose in KNOWN.items():
            source = secret_source(name)
            if source == "missing":
                source = f"missing (the variable, or the block {block_for(name)})"
            console.print(f"{name}: {source}  [dim]{purpose}[/]", soft_wrap=True)
    except SecretError as exc:
        fail(str(exc), "check PREFECT_API_URL")


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@app.command("ui")
def ui_command(
    params: Path = PARAMS,
    overrides: list[str] = SETS,
    prefect_port: int = typer.Option(4200, "--prefect-port", help="Prefect server port"),
    mlflow_port: int = typer.Option(5000, "--mlflow-port", help="MLflow UI port"),
    timeout: float = typer.Option(180.0, "--timeout", help="seconds to wait for both to be up"),
) -> None:
    """Start the Prefect server and the MLflow UI on localhost (project stores); Ctrl-C stops both."""
    import signal
    import time

    from tasks.services import ServiceError, ui_services

    settings = _settings(params, overrides)
    # Ctrl-C (and SIGTERM, e.g. from a supervisor) stop both services, even where the shell
    # started this process with SIGINT ignored.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    console.print("starting the Prefect server and the MLflow UI (up to a minute)...")
    try:
        with ui_services(settings, prefect_port, mlflow_port, timeout) as services:
            for service in services:
                console.print(f"{service.name:8} {service.url}   [dim]log: {service.log}[/]")
            console.print("[dim]Ctrl-C stops both[/]")
            while all(service.alive() for service in services):
                time.sleep(1)
            dead = [s for s in services if not s.alive()]
            fail(f"{dead[0].name} stopped unexpectedly", f"see {dead[0].log}")
    except ServiceError as exc:
        fail(str(exc), "pick free ports with --prefect-port / --mlflow-port")
    except KeyboardInterrupt:
        console.print("stopped both services")


@app.command("serve")
def serve_command(
    params: Path = PARAMS,
    overrides: list[str] = SETS,
    prefect_port: int = typer.Option(
        4200,
        "--prefect-port",
        help="port of the Prefect server started when PREFECT_API_URL is unset",
    ),
    timeout: float = typer.Option(180.0, "--timeout", help="seconds to wait for that server"),
) -> None:
    """Serve the loop (or round) flow as a Prefect deployment on serve.cron, runnable from the
    Prefect UI, API or CLI with parameter overrides; Ctrl-C stops it. Without PREFECT_API_URL, a
    Prefect server on the project's store (PREFECT_HOME under project.work_dir) is started too."""
    import os
    import signal

    from flows.environment import setup_environment
    from tasks.services import ServiceError, start_prefect, stop, wait_healthy

    settings = _settings(params, overrides)
    setup_environment(settings)
    from tasks.project import seed_project

    try:  # as `labelwise run`: a fresh project gets the demo dataset and its seed labels
        if seed_project(settings):
            console.print(f"new project in {settings.project.data_dir}/: {settings.loop.dataset}")
    except Exception as exc:
        fail(f"{type(exc).__name__}: {exc}", "check the loop and data sections of params.yaml")
    signal.signal(signal.SIGINT, _interrupt)  # also where the shell started us ignoring SIGINT
    signal.signal(signal.SIGTERM, _interrupt)
    server = None
    try:
        if not os.environ.get("PREFECT_API_URL"):
            console.print("starting the Prefect server (up to a minute)...")
            try:
                server = start_prefect(Path(settings.project.work_dir), prefect_port)
                wait_healthy([server], timeout)
            except ServiceError as exc:
                fail(str(exc), "pick a free port with --prefect-port, or set PREFECT_API_URL")
            os.environ["PREFECT_API_URL"] = f"{server.url}/api"
        from flows.deploy import deployment_name, serve

        name = f"labelwise-{settings.serve.flow}/{deployment_name(settings)}"
        schedule = f"cron {settings.serve.cron!r}" if settings.serve.cron else "no schedule"
        console.print(f"serving {name} ({schedule}) on {os.environ['PREFECT_API_URL']}")
        if server is not None:
            console.print(f"Prefect UI: {server.url}   [dim]log: {server.log}[/]")
        console.print(
            f"run it now: PREFECT_API_URL={os.environ['PREFECT_API_URL']} "
            f"{Path(sys.executable).parent}/prefect deployment run '{name}'"
            + (" --param rounds_this_run=1" if settings.serve.flow == "loop" else ""),
            soft_wrap=True,
            markup=False,
        )
        console.print("[dim]Ctrl-C stops it[/]")
        serve(settings)
    except KeyboardInterrupt:
        pass
    finally:
        if server is not None:
            stop(server)
    console.print("stopped serving")


if __name__ == "__main__":
    app()
