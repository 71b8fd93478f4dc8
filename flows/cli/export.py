"""``labelwise export``: the labels collected up to a round, for your own training job."""

from __future__ import annotations

from pathlib import Path

import typer

from flows.cli.common import PARAMS, SETS, console, fail, load_or_fail


def export_command(
    round_: int | None = typer.Option(
        None, "--round", help="labels collected up to this round (default: the newest)"
    ),
    format_: str = typer.Option(
        "csv", "--format", help="csv (one label per item) | coco | yolo (box answers)"
    ),
    out: Path = typer.Option(
        ..., "--out", help="csv: a .csv or .parquet file; coco: a .json file; yolo: a folder"
    ),
    include_holdout: bool = typer.Option(
        False, "--include-holdout", help="add the holdout's labels (the loop's evaluation set)"
    ),
    params: Path = PARAMS,
    overrides: list[str] = SETS,
) -> None:
    """Write the consensus labels of rounds <= --round with each item's raw columns."""
    from tasks.data.export import FORMATS, ExportError, export, last_round
    from tasks.data.profile import resolve

    if format_ not in FORMATS:
        fail(f"--format {format_!r}: one of {', '.join(FORMATS)}", "csv is the default")
    settings = resolve(load_or_fail(params, overrides))
    try:
        round_ = last_round(settings) if round_ is None else round_
        written, n = export(settings, round_, format_, out, include_holdout)
    except ExportError as exc:
        fail(str(exc), "run a round first, or pick a round the log holds")
    console.print(
        f"exported {n} labeled item(s) up to round {round_} as {format_} -> {written}",
        highlight=False,
    )
