"""The demo project of ``labelwise run``: a bundled real dataset as pool and holdout, its known
labels for the simulated annotators, a seed set of labels; and the random baseline at a budget."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.data import store
from tasks.failpoints import failpoint
from tasks.settings import Settings


def seeded_marker(settings: Settings) -> Path:
    """Written once the demo project is complete; until then a rerun continues the seeding."""
    return Path(settings.project.work_dir) / "demo" / "seeded.json"


def seed_project(settings: Settings) -> bool:
    """Fill an empty data dir from ``loop.dataset``; returns False if there was nothing to do
    (a project whose pool the user ingested, or a demo project seeded before).

    The holdout keeps its labels; the pool's labels go to ``<work_dir>/demo/truth.parquet`` (the
    simulated annotators' answers). ``loop.initial_labels`` rows (one per class first; 0: a cold
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
    dataset = load_dataset(loop.dataset)
    if dataset.kind in ("text", "tokens", "regression") or dataset.categorical:
        raise ValueError(
            f"dataset {loop.dataset!r} ({dataset.kind}) needs a featurizer; the loop's demo "
            "runs numeric datasets (digits, wine, breast_cancer)"
        )
    label = settings.data.label_column
    frame = dataset.frame[[*dataset.numeric, dataset.target]].rename(
        columns={dataset.target: label}
    )
    # identical rows would share a content id: keep one, so pool and holdout stay disjoint
    frame = frame.drop_duplicates(subset=dataset.numeric).reset_index(drop=True)
    frame[label] = frame[label].astype(str)
    if loop.demo_rows is not None and loop.demo_rows < len(frame):
        frame, _ = train_test_split(
            frame, train_size=loop.demo_rows, random_state=seed, stratify=frame[label]
        )
    pool, holdout = train_test_split(
        frame, test_size=loop.holdout_fraction, random_state=seed, stratify=frame[label]
    )
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
            truth["label"].to_numpy(), loop.initial_labels, np.random.default_rng(seed)
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
    store.write_json_atomic({"dataset": loop.dataset}, seeded_marker(settings))
    return True


def _scorer(metric: str) -> tuple[str, Any]:
    from sklearn.metrics import accuracy_score, f1_score

    if metric == "macro_f1":
        return metric, lambda y, p: f1_score(y, p, average="macro")
    return "accuracy", accuracy_score


def random_baseline(settings: Settings, budget: int, repeats: int = 3) -> dict[str, Any]:
    """Random sampling from the same seed labels to ``budget`` labels (the oracle's answers),
    scored on the holdout; the mean over ``repeats`` seeds. Metric: macro_f1 or accuracy."""
    import strategies
    from tasks.loop.labeling import truth_path
    from tasks.loop.simulate import initial_labeled_set, simulate
    from tasks.loop.training_data import feature_columns
    from tasks.model.build import build_model

    pool = store.read_pool(settings)
    truth = pd.read_parquet(truth_path(settings))
    frame = pool.merge(truth, on="id", how="inner")
    columns = feature_columns(pool, settings)
    holdout = store.read_holdout(settings)
    seed_ids = set(store.read_labels(settings).query("round == 0")["id"])
    initial = np.flatnonzero(frame["id"].isin(seed_ids).to_numpy())
    if np.unique(frame["label"].to_numpy()[initial]).shape[0] < 2:  # a cold project
        y = frame["label"].astype(str).to_numpy()
        size = min(settings.strategy.batch_size, budget)
        initial = initial_labeled_set(y, max(size, 2), np.random.default_rng(settings.project.seed))
    name, scorer = _scorer(settings.evaluate.metric)
    scores = []
    for i in range(repeats):
        curve = simulate(
            strategies.get("random"),
            build_model(settings.model, random_state=settings.project.seed),
            frame[columns].to_numpy(dtype=np.float64),
            frame["label"].astype(str).to_numpy(),
            holdout[columns].to_numpy(dtype=np.float64),
            holdout[settings.data.label_column].astype(str).to_numpy(),
            initial=initial,
            batch_size=settings.strategy.batch_size,
            budget=budget,
            seed=settings.project.seed + 1000 + i,
            metric=scorer,
        )
        scores.append(curve.scores[-1])
    return {"metric": name, "score": float(np.mean(scores)), "budget": budget, "repeats": repeats}
