"""``labelwise init``: a project from your own file or folder."""

from __future__ import annotations

from pathlib import Path

import typer

from flows.cli.common import PARAMS, console, fail


def init_command(
    data: Path = typer.Option(..., "--data", help="a CSV/Parquet/JSONL file or a folder"),
    text_column: str | None = typer.Option(None, "--text-column", help="the text column"),
    image_column: str | None = typer.Option(
        None, "--image-column", help="the column of image file paths"
    ),
    label_column: str | None = typer.Option(
        None, "--label-column", help="the column of labels some items already have"
    ),
    task: str | None = typer.Option(
        None, "--task", help="classification | regression | ner (default: detected)"
    ),
    classes: str | None = typer.Option(None, "--classes", help="the label set, e.g. a,b,c"),
    holdout: Path | None = typer.Option(
        None, "--holdout", help="labeled items kept for evaluation (default: split off)"
    ),
    params: Path = PARAMS,
    force: bool = typer.Option(False, "--force", help="overwrite an existing params.yaml"),
) -> None:
    """Make a project from your own data: detect what the items and labels are (and say so),
    write params.yaml, ingest the items, keep the labels they have as seed labels, set a
    holdout aside; then print the next command."""
    from tasks.data import store
    from tasks.data.gates import ValidationError
    from tasks.data.onboard import (
        OnboardError,
        create_project,
        plan_project,
        project_params,
        read_items,
        split_holdout,
        write_params,
    )
    from tasks.settings import Settings, SettingsError, load_settings

    if task not in (None, "classification", "regression", "ner"):
        fail(f"--task {task!r}: use classification, regression or ner")
    if params.exists() and not force:
        fail(f"{params} exists already", "pass --force to overwrite it, or --params another.yaml")
    base = Settings()  # the defaults, until init writes params.yaml
    if store.data_paths(base).pool.exists():
        fail(f"{base.project.data_dir}/ holds a project already", "run init in a new directory")
    try:
        frame = read_items(data, base)
        plan = plan_project(
            frame,
            data,
            base,
            text_column=text_column,
            image_column=image_column,
            label_column=label_column,
            task=task,
            classes=[c.strip() for c in classes.split(",") if c.strip()] if classes else None,
        )
        held = read_items(holdout, base) if holdout is not None else None
        items, held = split_holdout(frame, plan, base.project.seed, held)
    except (OnboardError, SettingsError) as exc:
        fail(str(exc), "see `labelwise init --help`")
    except ValidationError as exc:
        fail(exc.message, f"nothing was made; every failing row is in {exc.quarantine}")
    made = [p for p in (Path(base.project.data_dir), Path(base.project.work_dir)) if not p.exists()]
    try:
        write_params(params, project_params(plan, _name(data)), plan)
        settings = load_settings(params)
        counts = create_project(settings, items, held, plan)
    except (OnboardError, SettingsError, ValidationError) as exc:
        kept = _quarantine(exc)  # the reasons survive the undo
        _undo(params, made)
        message = exc.message if isinstance(exc, ValidationError) else str(exc)
        fail(message, f"nothing was made (params.yaml and data/ removed again){kept}")
    console.print(plan.describe())
    console.print(
        f"project: {counts['items']} items in {settings.project.data_dir}/, "
        f"{counts['seed_labels']} seed labels, {counts['holdout']} holdout items; "
        f"settings in {params}"
    )
    inbox = Path(settings.project.work_dir) / "annotation" / "inbox"
    console.print(
        "annotators: the files backend (batches in .labelwise/annotation/outbox, answers as "
        f"CSV id,label,annotator into {inbox}); or set annotation.backend: label_studio"
    )
    console.print("next: [bold]labelwise run[/]")


def _name(data: Path) -> str:
    stem = data.stem if data.is_file() else data.name
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in stem.lower()) or "project"


def _quarantine(exc: Exception) -> str:
    """Copy a gate's quarantine file out of the data dir the undo removes; its new place."""
    import shutil

    source = getattr(exc, "quarantine", None)
    if not source or not Path(source).exists():
        return ""
    target = Path.cwd() / f"init-{Path(source).name}"
    shutil.copy(source, target)
    return f"; the failing rows and their reasons: {target}"


def _undo(params: Path, made: list[Path]) -> None:
    """Remove what a failed init wrote: params.yaml and the folders it created."""
    import shutil

    params.unlink(missing_ok=True)
    for folder in made:
        shutil.rmtree(folder, ignore_errors=True)
