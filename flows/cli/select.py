"""``labelwise select``: a ranked batch from the user's own model predictions (no training)."""

from __future__ import annotations

from pathlib import Path

import typer

from flows.cli.common import console, fail


def select_command(
    predictions: Path = typer.Option(
        ..., "--predictions", help="Parquet, CSV or JSONL of model outputs (id, p_<class>...)"
    ),
    batch_size: int = typer.Option(..., "--batch-size", min=1, help="items to select"),
    strategy: str = typer.Option(
        "margin",
        "--strategy",
        help="least_confidence | margin | entropy | bald | vote_entropy | random | coreset | "
        "cluster_margin",
    ),
    aggregate: str = typer.Option(
        "max", "--aggregate", help="max | mean | sum: box uncertainty per image"
    ),
    rare_classes: str | None = typer.Option(
        None, "--rare-classes", help="comma-separated classes: +1 per box whose top class is one"
    ),
    exclude: Path | None = typer.Option(
        None, "--exclude", help="labeled ids to skip: txt (one per line), or CSV/Parquet with id"
    ),
    pool: Path | None = typer.Option(
        None,
        "--pool",
        help="the pool's ids (txt, or CSV/Parquet with id): a prediction for any other id fails",
    ),
    prefilter: int = typer.Option(
        10, "--prefilter", min=1, help="coreset/cluster_margin: candidates per batch item"
    ),
    seed: int = typer.Option(0, "--seed", help="random seed (random, cluster_margin)"),
    chunk_rows: int = typer.Option(65_536, "--chunk-rows", min=1, help="rows read at a time"),
    out: Path = typer.Option(
        ..., "--out", help="output .parquet or .csv (id, rank, score, source)"
    ),
) -> None:
    """Rank the most informative items of a predictions file and write the batch."""
    from tasks.external.predictions import (
        PredictionsError,
        SelectOptions,
        load_exclude,
        select_batch,
        write_batch,
    )

    options = SelectOptions(
        batch_size=batch_size,
        strategy=strategy,
        aggregate=aggregate,
        rare_classes=tuple(c.strip() for c in (rare_classes or "").split(",") if c.strip()),
        prefilter=prefilter,
        seed=seed,
        chunk_rows=chunk_rows,
    )
    try:
        if exclude is not None and not exclude.exists():
            fail(f"{exclude}: no such file", "--exclude takes a file of labeled ids")
        skip = load_exclude(exclude) if exclude is not None else None
        if pool is not None and not pool.exists():
            fail(f"{pool}: no such file", "--pool takes a file of the pool's ids")
        pool_ids = (pool, load_exclude(pool)) if pool is not None else None
        batch = select_batch(predictions, options, skip, pool_ids)
    except PredictionsError as exc:
        fail(str(exc), "fix the file (or the option) named above; see docs/select.md")
    write_batch(batch, out)
    console.print(f"selected {len(batch)} item(s) by {strategy} -> {out}", highlight=False)
