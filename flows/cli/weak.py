"""``labelwise lf-report``: how the project's labeling functions do, on the pool and on the
human labels (coverage, overlaps, conflicts, accuracy, errors, kept or not)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from flows.cli.common import PARAMS, SETS, console, fail, load_or_fail


def lf_report_command(
    params: Path = PARAMS,
    overrides: list[str] = SETS,
    json_out: Path | None = typer.Option(None, "--json", help="also write the report as JSON"),
) -> None:
    """Per labeling function: coverage, overlaps, conflicts, accuracy on the human labels and
    on the holdout, errors (with row ids), and whether the project keeps it."""
    from rich.table import Table

    from tasks.data import store
    from tasks.data.profile import resolve
    from tasks.loop.training_data import training_labels
    from tasks.weak import rounds as weak
    from tasks.weak.functions import LabelingFunctionError

    settings = load_or_fail(params, overrides)
    if not settings.weak.module:
        fail("weak.module is not set", "name the module of your labeling functions in params.yaml")
    try:
        settings = resolve(settings)
        pool, human = store.read_pool(settings), training_labels(settings)
        if pool.empty:
            fail(f"{settings.project.data_dir}: the pool is empty", "ingest data first")
        voted = weak.weak_votes(settings, pool, human)
        labels, accuracies = weak.weak_labels(settings, voted.votes, human, round_=-1)
    except LabelingFunctionError as exc:
        fail(str(exc), "fix the labeling function named above; nothing labeled is touched")
    summary = weak.summary(voted, labels, accuracies)
    table = Table(title=f"labeling functions: {settings.weak.module}")
    table.add_column("function", no_wrap=True)
    for header in ("votes", "coverage", "overlaps", "conflicts", "acc. human", "acc. holdout",
                   "label model", "errors", "kept"):  # fmt: skip
        table.add_column(header)
    for row in summary["functions"]:
        table.add_row(
            row["function"],
            row["polarity"] or "-",
            f"{row['coverage']:.3f}",
            f"{row['overlaps']:.3f}",
            f"{row['conflicts']:.3f}",
            _accuracy(row["accuracy_human"], row["n_human"]),
            _accuracy(row["accuracy_holdout"], row["n_holdout"]),
            "-" if row["label_model_accuracy"] is None else f"{row['label_model_accuracy']:.3f}",
            str(row["n_errors"]),
            "yes" if row["kept"] else f"[yellow]no[/]: {row['why']}",
        )
    console.print(table)
    console.print(
        f"{summary['coverage']:.1%} of {len(pool)} pool items have a vote; "
        f"{summary['n_weak_labels']} weak labels ({settings.weak.label_model}, probability >= "
        f"{settings.weak.min_probability}) on items no human labeled"
    )
    for error in summary["errors"][:10]:
        console.print(
            f"[yellow]{error['function']}[/] raised on item {error['id']!r}: {error['error']}"
        )
    if json_out is not None:
        json_out.write_text(json.dumps(summary, indent=2))
        console.print(f"wrote {json_out}")


def _accuracy(value: float | None, n: int) -> str:
    return "-" if value is None else f"{value:.3f} (n={n})"
