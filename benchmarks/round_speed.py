"""One round's wall time by step on a large pool, against its select step.

Pools, generated in a temp dir: texts (TF-IDF, and the sentence embeddings with every text's
embedding already in the cache) and table rows with categorical columns. Each pool is ingested,
seeded with labels, then two rounds run through the plain steps (no Prefect: its own start-up is
not the round's cost); round 1 featurizes the pool (and caches it), round 2 is what every later
round costs. Printed per step, with the ratio of round 2 to its select step (the target: a round
on a 100k-row pool with cached features within 3x its select). ``featurize`` is the part of
the select step that builds the pool's features (computed in round 1, read from the cache
after).

    python benchmarks/round_speed.py                     # 100,000 rows per pool
    python benchmarks/round_speed.py --rows 20000 --pools text-tfidf
    python benchmarks/round_speed.py --models logreg,auto    # + round 2 with auto / with logreg
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from tasks.data import store
from tasks.data.ingest import ingest
from tasks.data.labels import collect_labels
from tasks.data.profile import DataProfile, resolve, write_profile
from tasks.features import space
from tasks.loop import labeling, learning, lifecycle
from tasks.settings import Settings

POOLS = ("text-tfidf", "text-embeddings", "tabular-categorical")
WORDS = np.array(
    "refund invoice password login delivery broken thanks late order account card help price "
    "upgrade cancel shipping box damaged email code app crash slow fast great bad".split()
)
STEPS = [
    ("select", labeling.select),
    ("dispatch", labeling.dispatch),
    ("collect", labeling.collect),
    ("train", learning.train),
    ("evaluate", learning.evaluate),
    ("monitor", learning.monitor),
    ("version", learning.version),
]


def _texts(rng: np.random.Generator, n: int) -> pd.DataFrame:
    picks = rng.integers(0, len(WORDS), size=(n, 12))
    texts = [" ".join(WORDS[row]) + f" #{i}" for i, row in enumerate(picks)]
    labels = np.where(np.isin(picks, [0, 1, 12]).any(axis=1), "billing", "other")
    return pd.DataFrame({"text": texts, "label": labels})


def _table(rng: np.random.Generator, n: int) -> pd.DataFrame:
    frame = pd.DataFrame(rng.normal(size=(n, 10)), columns=[f"x{i}" for i in range(10)])
    for i, levels in enumerate((5, 12, 40)):
        frame[f"c{i}"] = rng.choice([f"level{j}" for j in range(levels)], size=n)
    score = frame["x0"] + (frame["c0"] == "level1") - 0.5 * frame["x1"]
    frame["label"] = np.where(score > 0, "yes", "no")
    return frame


def _prefill_embeddings(settings: Settings, texts: list[str]) -> None:
    """Put an embedding for every text in the cache (what a pool ingested earlier has)."""
    from tasks.features.embeddings import EMBEDDING_DIM, EmbeddingCache, text_key

    cache_dir = Path(settings.project.work_dir) / "embeddings"
    cache = EmbeddingCache(cache_dir)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(len(texts), EMBEDDING_DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    cache.put([text_key(t) for t in texts], vectors)


def project(root: Path, pool: str, rows: int, model: str = "logreg") -> Settings:
    kind = "tabular" if pool.startswith("tabular") else "text"
    settings = Settings.model_validate(
        {
            "project": {
                "name": pool,
                "work_dir": str(root / "work"),
                "data_dir": str(root / "data"),
            },
            "data": {"kind": kind},
            "model": {"task": "classification", "kind": model},
            "features": {
                "text_featurizer": "embeddings" if pool == "text-embeddings" else "tfidf",
            },
            "strategy": {"batch_size": 100},
            "monitor": {"html_reports": False},
            "loop": {"stop_set_size": 200},
        }
    )
    rng = np.random.default_rng(0)
    frame = _texts(rng, rows) if kind == "text" else _table(rng, rows)
    Path(settings.project.data_dir).mkdir(parents=True, exist_ok=True)
    write_profile(settings, DataProfile(kind=kind, task="classification"))
    if pool == "text-embeddings":
        _prefill_embeddings(settings, frame["text"].tolist())
    holdout = frame.sample(2_000, random_state=0)
    items = frame.drop(index=holdout.index)
    items.drop(columns="label").to_parquet(root / "pool.parquet", index=False)
    holdout.to_parquet(root / "holdout.parquet", index=False)
    ingest(root / "pool.parquet", settings)
    ingest(root / "holdout.parquet", settings, holdout=True)
    ids = store.read_pool(settings)["id"].to_numpy()
    seeds = rng.choice(len(ids), size=200, replace=False)
    truth = dict(zip(ids, items["label"].to_numpy(), strict=True))
    collect_labels(
        pd.DataFrame(
            {"id": ids[seeds], "label": items["label"].to_numpy()[seeds], "annotator": "seed"}
        ),
        settings,
        round_=0,
    )
    store.write_parquet_atomic(
        pd.DataFrame({"id": list(truth), "label": list(truth.values())}),
        labeling.truth_path(settings),
    )
    return resolve(settings)


def _timed(function: Callable[..., Any], spent: list[float]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - started)

    return timed


def run_round(settings: Settings, round_: int) -> dict[str, float]:
    """Each step's seconds; ``featurize`` is the part of the select step that builds the pool's
    features (``tasks.features.space.pool_features``: a cache read once the pool was seen)."""
    lifecycle.begin_round(settings, round_)
    times, featurize = {}, []
    original = space.pool_features
    for name, step in STEPS:
        if name == "select":
            space.pool_features = _timed(original, featurize)
        started = time.perf_counter()
        try:
            step(settings, round_)
        finally:
            space.pool_features = original
        times[name] = time.perf_counter() - started
    times["featurize"] = sum(featurize)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--pools", default=",".join(POOLS))
    parser.add_argument("--models", default="logreg", help="model.kind per run, e.g. logreg,auto")
    args = parser.parse_args()
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    console = Console(width=170)
    logging.disable(logging.WARNING)  # MLflow's and Evidently's chatter: the table is the output
    names = [name for name, _ in STEPS]
    names.insert(1, "featurize")
    headers = ["of which featurize" if name == "featurize" else name for name in names]
    table = Table("pool", "model", "round", *headers, "round", "round / select")
    later: dict[tuple[str, str], float] = {}  # (pool, model) -> round 2's seconds
    for pool in [p.strip() for p in args.pools.split(",") if p.strip()]:
        for model in models:
            with tempfile.TemporaryDirectory() as tmp:
                started = time.perf_counter()
                settings = project(Path(tmp), pool, args.rows, model)
                lifecycle.prepare_loop(settings)
                console.print(
                    f"{pool} ({model}): {args.rows} rows ingested and seeded in "
                    f"{time.perf_counter() - started:.1f} s"
                )
                for round_ in (1, 2):
                    times = run_round(settings, round_)
                    total = sum(times[name] for name, _ in STEPS)
                    later[pool, model] = total
                    table.add_row(
                        pool,
                        model,
                        str(round_),
                        *[f"{times[name]:.2f}" for name in names],
                        f"{total:.2f}",
                        f"{total / times['select']:.2f}x",
                    )
    console.print(table)
    for (pool, model), seconds in later.items():
        if model != models[0]:
            base = later[pool, models[0]]
            console.print(f"{pool}: round 2 with {model} / with {models[0]}: {seconds / base:.2f}x")


if __name__ == "__main__":
    main()
