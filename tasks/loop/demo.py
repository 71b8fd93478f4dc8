"""The demo project of ``labelwise run``: a bundled real dataset as pool and holdout, its known
labels for the simulated annotators, a seed set of labels; and the random baseline at a budget."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.data import store
from tasks.data.profile import DataProfile, write_profile
from tasks.failpoints import failpoint
from tasks.settings import Settings


def seeded_marker(settings: Settings) -> Path:
    """Written once the demo project is complete; until then a rerun continues the seeding."""
    return Path(settings.project.work_dir) / "demo" / "seeded.json"


#: a bundled dataset's kind -> the project's (data kind, task)
DATASET_PROFILES = {
    "tabular": ("tabular", "classification"),
    "image": ("tabular", "classification"),  # pixel columns, one row per image
    "text": ("text", "classification"),
    "tokens": ("tokens", "ner"),
    "regression": ("tabular", "regression"),
}


def dataset_items(dataset: Any, settings: Settings) -> tuple[pd.DataFrame, DataProfile]:
    """A bundled dataset as a project's items (its columns renamed to ``data.text_column`` and
    ``data.label_column``; token lists and tag lists as JSON text) and its profile. Identical
    items would share a content id: one of them is kept."""
    kind, task = DATASET_PROFILES[dataset.kind]
    label = settings.data.label_column
    if kind in ("text", "tokens"):
        frame = dataset.frame[[dataset.text, dataset.target]].rename(
            columns={dataset.text: settings.data.text_column, dataset.target: label}
        )
        columns = [settings.data.text_column]
    else:
        columns = [*dataset.numeric, *dataset.categorical]
        frame = dataset.frame[[*columns, dataset.target]].rename(columns={dataset.target: label})
    if kind == "tokens":
        for column in (settings.data.text_column, label):
            frame[column] = frame[column].map(lambda v: json.dumps([str(t) for t in v]))
    frame = frame.dropna(subset=[label]).drop_duplicates(subset=columns).reset_index(drop=True)
    frame[label] = frame[label].astype(str)
    profile = DataProfile(kind=kind, task=task, source=f"dataset {dataset.name} ({dataset.kind})")
    return frame, profile


def seed_project(
    settings: Settings, items: tuple[pd.DataFrame, DataProfile, str] | None = None
) -> bool:
    """Fill an empty data dir from ``loop.dataset``; returns False if there was nothing to do
    (a project whose pool the user ingested, or a demo project seeded before).

    ``items``: (frame, profile, source) of the user's own labeled file instead of the dataset
    (``labelwise run --data``; columns already named as ``data:`` says). The holdout keeps its
    labels; the pool's labels go to ``<work_dir>/demo/truth.parquet`` (the simulated
    annotators' answers: the label column is hidden from the strategy). ``loop.initial_labels`` rows (one per class first; 0: a cold
    project) are sent to the annotators as round 0 and their labels collected through the label
    gate. Every step is idempotent, so a run killed while seeding continues where it stopped.
    """
    from sklearn.model_selection import train_test_split

    from tasks.data.datasets import load_dataset
    from tasks.data.ingest import ingest
    from tasks.data.labels import collect_labels, new_annotations
    from tasks.loop.labeling import make_backend, truth_path
    from tasks.loop.simulate import initial_labeled_set

    work = Path(settings.project.work_dir) / "demo"
    if seeded_marker(settings).exists():
        return False
    if store.data_paths(settings).pool.exists() and not work.exists():
        return False  # the user's own pool
    loop, seed = settings.loop, settings.project.seed
    if items is None:
        frame, profile = dataset_items(load_dataset(loop.dataset), settings)
        source = loop.dataset
    else:
        frame, profile, source = items
    label = settings.data.label_column
    stratify = frame[label] if profile.task == "classification" else None
    if loop.demo_rows is not None and loop.demo_rows < len(frame):
        frame, _ = train_test_split(
            frame, train_size=loop.demo_rows, random_state=seed, stratify=stratify
        )
        stratify = frame[label] if profile.task == "classification" else None
    pool, holdout = train_test_split(
        frame, test_size=loop.holdout_fraction, random_state=seed, stratify=stratify
    )
    write_profile(settings, profile)
    # a dataset's own missing values are data, not errors: the featurizer imputes them
    missing = [c for c in frame.columns if c != label and frame[c].isna().any()]
    if missing:
        data = settings.data.model_copy(
            update={"nullable_columns": sorted({*settings.data.nullable_columns, *missing})}
        )
        settings = settings.model_copy(update={"data": data})
    work.mkdir(parents=True, exist_ok=True)
    pool = pool.reset_index(drop=True)
    pool.drop(columns=[label]).to_parquet(work / "pool.parquet", index=False)
    holdout.to_parquet(work / "holdout.parquet", index=False)
    ingest(work / "pool.parquet", settings, round_=0)  # rows already present are skipped
    failpoint("during:seed")
    ingest(work / "holdout.parquet", settings, holdout=True, round_=0)
    ids = store.read_pool(settings)["id"].astype(str).reset_index(drop=True)
    if len(ids) != len(pool):
        raise RuntimeError(f"ingest kept {len(ids)} of {len(pool)} demo rows")
    truth = pd.DataFrame({"id": ids, "label": pool[label].to_numpy()})
    store.write_parquet_atomic(truth, truth_path(settings))

    if loop.initial_labels:
        picks = initial_labeled_set(
            truth["label"].to_numpy(), loop.initial_labels, settings.project.rng("seed_labels")
        )
        seed_ids = truth["id"].iloc[picks].tolist()
        store.write_manifest(
            settings, 0, seed_ids, [None] * len(seed_ids), strategy="seed", source="seed"
        )
        # the demo's seed labels come from its oracle, whatever backend the rounds use
        oracle = settings.annotation.model_copy(update={"backend": "simulated"})
        backend = make_backend(settings.model_copy(update={"annotation": oracle}))
        batch = pd.DataFrame({"id": seed_ids, "round": 0, "rank": range(1, len(seed_ids) + 1)})
        backend.dispatch(batch.assign(score=None), 0)  # ids sent before are skipped
        fresh = new_annotations(settings, backend.collect(0))
        if len(fresh):
            collect_labels(fresh, settings, round_=0, file="seed labels")
    store.write_json_atomic({"dataset": source}, seeded_marker(settings))
    return True


def random_baseline(settings: Settings, budget: int, repeats: int = 3) -> dict[str, Any]:
    """Random sampling from the same seed labels to ``budget`` labels (the oracle's answers),
    with the loop's own model and featurizer, scored on the holdout by ``evaluate.metric``; the
    mean over ``repeats`` seeds (batches drawn at random add up to one random draw)."""
    from tasks.data.profile import resolve
    from tasks.loop.labeling import truth_path
    from tasks.loop.learning import holdout_metrics
    from tasks.loop.training_data import fit_round_model

    settings = resolve(settings)
    pool = store.read_pool(settings)
    truth = pd.read_parquet(truth_path(settings))
    frame = pool.merge(truth, on="id", how="inner")
    holdout = store.read_holdout(settings)
    seeded = frame["id"].isin(set(store.read_labels(settings).query("round == 0")["id"]))
    metric = settings.evaluate.metric
    scores = []
    for i in range(repeats):
        rng = settings.project.rng("random_baseline", i)
        rest = np.flatnonzero(~seeded.to_numpy())
        extra = rng.choice(
            rest, size=min(len(rest), max(0, budget - int(seeded.sum()))), replace=False
        )
        chosen = frame.iloc[np.sort(np.concatenate([np.flatnonzero(seeded.to_numpy()), extra]))]
        if settings.model.task == "classification" and chosen["label"].nunique() < 2:
            continue  # a cold project's random draw of one class: no model to score
        model = fit_round_model(settings, pool, chosen)
        scores.append(holdout_metrics(settings, model, holdout)[metric])
    score = float(np.mean(scores)) if scores else float("nan")
    return {"metric": metric, "score": score, "budget": budget, "repeats": len(scores)}
