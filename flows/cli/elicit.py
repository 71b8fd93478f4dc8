"""``labelwise elicit``: which items a new user should rate first (recommendation cold start)."""

from __future__ import annotations

from pathlib import Path

import typer

from flows.cli.common import console, fail


def elicit_command(
    ratings: Path = typer.Option(
        ..., "--ratings", help="the catalog: CSV, Parquet or JSONL with user, item, rating"
    ),
    user_ratings: Path = typer.Option(
        ...,
        "--user-ratings",
        help="the new user's ratings so far (same columns; a header only for none yet)",
    ),
    k: int = typer.Option(10, "--k", min=1, help="items to ask"),
    strategy: str = typer.Option(
        "pop_entropy",
        "--strategy",
        help="popularity | entropy | pop_entropy | variance | factor_uncertainty | random",
    ),
    user: str | None = typer.Option(
        None, "--user", help="the user's id in --user-ratings (needed when it holds several)"
    ),
    scale: str | None = typer.Option(
        None, "--scale", help="MIN,MAX of the rating scale (default: the catalog's min..max)"
    ),
    rank: int = typer.Option(10, "--rank", min=1, help="factors of the model (factor_uncertainty)"),
    reg: float = typer.Option(10.0, "--reg", help="L2 regularisation of the model (> 0)"),
    seed: int = typer.Option(0, "--seed", help="random seed (random, the model's start)"),
    out: Path | None = typer.Option(
        None, "--out", help="also write item, rank, score, strategy to .csv, .parquet or .jsonl"
    ),
) -> None:
    """Rank the items a new user has not rated by how much their answer should teach us."""
    from rich.table import Table

    from tasks.ratings.questions import ElicitOptions, next_questions, write_questions
    from tasks.ratings.reader import RatingsError, file_format, parse_scale

    hint = "fix the file (or the option) named above; see docs/elicit.md"
    if reg <= 0:
        fail(f"--reg {reg:g}: must be positive", "the prior precision of a user's vector")
    try:
        if out is not None:
            file_format(out)
        options = ElicitOptions(
            k=k, strategy=strategy, user=user, scale=parse_scale(scale), rank=rank,
            reg=reg, seed=seed,
        )  # fmt: skip
        questions = next_questions(ratings, user_ratings, options)
    except RatingsError as exc:
        fail(str(exc), hint)
    table = Table(title=f"next {len(questions)} item(s) to ask, by {strategy}")
    for column in ("rank", "item", "score"):
        table.add_column(column, justify="right" if column != "item" else "left")
    for row in questions.itertuples(index=False):
        table.add_row(str(row.rank), str(row.item), f"{row.score:.4g}")
    console.print(table)
    if len(questions) < k:
        console.print(f"only {len(questions)} unrated item(s) in the catalog", highlight=False)
    if out is not None:
        write_questions(questions, out)
        console.print(f"wrote {len(questions)} item(s) -> {out}", highlight=False)
