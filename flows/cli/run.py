"""``labelwise run`` (the main job), ``labelwise history`` and ``labelwise strategies``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from flows.cli.common import (
    PARAMS,
    SETS,
    VERBOSE,
    console,
    fail,
    fail_on,
    load_or_fail,
)


def list_strategies() -> None:
    """List the query strategies with what each costs per query."""
    import strategies

    table = Table("name", "what it does", "cost per query")
    for name, info in strategies.describe().items():
        table.add_row(name, info["summary"], info["cost"])
    console.print(table)


def run(
    params: Path = PARAMS,
    overrides: list[str] = SETS,
    rounds: int | None = typer.Option(
        None,
        "--rounds",
        help="run at most N rounds now (default: until a stopping rule fires, loop.max_rounds)",
    ),
    data: Path | None = typer.Option(
        None,
        "--data",
        help="try the loop on your own labeled file: its --target column answers the simulated "
        "annotators (hidden from the strategy)",
    ),
    target: str | None = typer.Option(None, "--target", help="the label column of --data"),
    text_column: str | None = typer.Option(
        None, "--text-column", help="the text column of --data (default: detected)"
    ),
    verbose: bool = VERBOSE,
) -> None:
    """The main job: the active-learning loop as Prefect flows, on a local temporary Prefect
    server, MLflow on SQLite and a local DVC remote, all under project.work_dir. A fresh project
    is filled with a bundled real dataset (loop.dataset), or with --data, labeled by simulated
    annotators; a project made by `labelwise init` goes to its annotators."""
    from flows.runtime.environment import setup_environment, setup_run_log

    settings = load_or_fail(params, overrides)
    setup_environment(settings, quiet_logs=True)
    log = setup_run_log(settings, verbose=verbose)
    from tasks.loop.demo import seed_project

    if (data is None) != (target is None):
        fail("--data and --target go together", "labelwise run --data FILE --target COLUMN")
    source = str(data) if data is not None else settings.loop.dataset
    with console.status(f"preparing the project ({source})"):
        try:
            items = None if data is None else own_items(settings, data, target, text_column)
            created = seed_project(settings, items)
        except Exception as exc:  # a dataset, gate or store problem: one line and a hint
            fail_on(
                exc, "check the loop and data sections of params.yaml", log=log, verbose=verbose
            )
    if created:
        console.print(
            f"new project in {settings.project.data_dir}/: {source}, "
            f"{settings.loop.initial_labels} seed labels from the simulated annotators"
        )
    from tasks.data.profile import resolve

    settings = resolve(settings)  # what the data is: kind, task and metric where they are auto
    result = _run_loop(settings, rounds, log=log, verbose=verbose)
    if result.status == "skipped":
        fail(result.reason, "run again once it has finished: the loop continues", log=log)
    _print_summary(settings, result)


def own_items(settings: Any, data: Path, target: str, text_column: str | None) -> Any:
    """The user's labeled file as a demo project's items: (frame, profile, source), its columns
    named as ``data:`` says; a project that exists already is refused."""
    from tasks.data import store
    from tasks.data.onboard import OnboardError, plan_project, read_items
    from tasks.data.profile import DataProfile

    if store.data_paths(settings).pool.exists():
        raise OnboardError(
            f"{settings.project.data_dir}/ holds a project already: run --data in a new "
            "directory, or set project.data_dir and project.work_dir"
        )
    frame = read_items(data, settings)
    plan = plan_project(frame, data, settings, text_column=text_column, label_column=target)
    renames = {target: settings.data.label_column}
    if plan.text_column:
        renames[plan.text_column] = settings.data.text_column
    if plan.image_column:
        renames[plan.image_column] = settings.data.image_column
    frame = frame.rename(columns=renames)
    labeled = frame[settings.data.label_column].notna()
    frame = frame[labeled].drop(columns=["source_path", "__row_hash"], errors="ignore")
    if plan.kind == "tokens":
        from tasks.data.onboard import as_items

        plan.text_column, plan.label_column = settings.data.text_column, settings.data.label_column
        frame = as_items(frame, plan)
    frame[settings.data.label_column] = frame[settings.data.label_column].astype(str)
    columns = [c for c in frame.columns if c != settings.data.label_column]
    frame = frame.drop_duplicates(subset=columns).reset_index(drop=True)
    profile = DataProfile(kind=plan.kind, task=plan.task, source=f"labelwise run --data {data}")
    return frame, profile, str(data)


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
    from tasks.loop.demo import random_baseline
    from tasks.loop.labeling import truth_path
    from tasks.tracking.runs import setup_tracking

    work = Path(settings.project.work_dir).resolve()
    bin_dir = Path(sys.executable).parent
    table = Table(title="labelwise run", show_header=False)
    table.add_row("outcome", f"{result.status}: {result.reason}")
    table.add_row("rounds this run", str(len(result.rounds)))
    if not result.rounds and result.status == "stopped":
        table.add_row("to run more", "--rounds N, or --set loop.max_rounds=M (a larger total)")
    table.add_row("labels used", str(result.n_labels))
    summary: dict[str, Any] = {
        "status": result.status, "reason": result.reason, "rule": result.rule,
        "rounds_this_run": len(result.rounds), "mlflow_run_id": result.mlflow_run_id,
        "n_labels": result.n_labels, "metric": result.metric, "champion_score": result.score,
        "random_baseline": None,
    }  # fmt: skip
    scored = [r for r in result.rounds if r.metrics.get(result.metric) is not None]
    if scored:  # the last model trained, unselected: the champion is the best by the holdout
        summary["last_round"] = {
            "round": scored[-1].round, "n_labels": scored[-1].n_labels,
            "score": scored[-1].metrics[result.metric],
        }  # fmt: skip
    if result.score is not None:
        table.add_row(f"champion {result.metric} (holdout)", f"{result.score:.4f}")
    if truth_path(settings).exists() and result.n_labels:
        with console.status("random baseline at the same budget"):
            base = random_baseline(settings, int(result.n_labels))
        summary["random_baseline"] = base
        table.add_row(
            f"random baseline {base['metric']} at {base['budget']} labels",
            f"{base['score']:.4f} (mean of {base['repeats']} seeds)",
        )
    console.print(table)
    # the same numbers for scripts (benchmarks/run_gain.py): the table is for people
    (work / "run_summary.json").write_text(json.dumps(summary, indent=1, default=str))
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
    from tasks.tracking.history import round_history
    from tasks.tracking.runs import setup_tracking

    settings = load_or_fail(params, overrides)
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
