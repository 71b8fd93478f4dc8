"""``labelwise export`` and ``labelwise register-model``: the labels collected up to a round out
to your own training job, and the model it trained back into the project's registry."""

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


def register_model_command(
    uri: str = typer.Option(
        ..., "--uri", help="where your model's artifacts are (s3://..., runs:/..., a path)"
    ),
    round_: int | None = typer.Option(
        None, "--round", help="the round whose labels trained it (labelwise export --round)"
    ),
    name: str | None = typer.Option(None, "--name", help="your own name for this version"),
    description: str | None = typer.Option(None, "--description", help="a note on the version"),
    params: Path = PARAMS,
    overrides: list[str] = SETS,
) -> None:
    """Record a version of your own model (model.kind external) as the project's champion."""
    from tasks.model.registry import register_external
    from tasks.tracking.runs import setup_tracking

    settings = load_or_fail(params, overrides)
    if settings.model.kind != "external":
        fail(
            f"model.kind is {settings.model.kind}: labelwise registers its own models each round",
            "register-model is for your own model (model.kind: external)",
        )
    tracking = setup_tracking(settings)
    version = register_external(
        tracking, uri, trained_on_round=round_, name=name, description=description
    )
    console.print(
        f"registered {uri} as {tracking.registered_model} v{version} "
        f"(alias {tracking.champion_alias}); the next rounds log it",
        highlight=False,
    )
