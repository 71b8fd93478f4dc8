"""The ``labelwise`` command line."""

from __future__ import annotations

from pathlib import Path

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


if __name__ == "__main__":
    app()
