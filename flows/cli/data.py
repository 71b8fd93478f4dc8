"""``labelwise ingest`` and ``labelwise checkout``: data into the pool, and back to a round."""

from __future__ import annotations

from pathlib import Path

import typer

from flows.cli.common import (
    PARAMS,
    SETS,
    console,
    fail,
    load_or_fail,
)


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

    settings = load_or_fail(params, overrides)
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


def checkout_command(
    round_: int = typer.Argument(..., metavar="ROUND", help="round whose data to restore"),
    force: bool = typer.Option(False, "--force", help="discard data changes not yet committed"),
    params: Path = PARAMS,
    overrides: list[str] = SETS,
) -> None:
    """Restore the pool, labels, holdout and manifests of round ROUND exactly (DVC)."""
    from tasks.data.versioning import VersioningError, checkout

    settings = load_or_fail(params, overrides)
    try:
        tag = checkout(settings, round_, force=force)
    except VersioningError as exc:
        fail(str(exc), "`git -C <data_dir> tag` lists the committed rounds")
    console.print(f"{settings.project.data_dir} restored to {tag}")
