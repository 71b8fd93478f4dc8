"""The ``dvc.yaml`` stages: ``python -m tasks.pipeline prepare|train|evaluate [params.yaml]``.

prepare: one label per pooled id as the loop trains on it (the latest, or the
``annotation.aggregation`` of several annotators' answers) -> ``artifacts/pipeline/train.parquet``
(after the training gate) and the holdout -> ``artifacts/pipeline/holdout.parquet``. With no pool
yet (a fresh clone) it first seeds ``data/`` with scikit-learn's bundled digits so the pipeline
runs end to end.
train: the configured model (``tasks.models``) on the numeric feature columns.
evaluate: holdout metrics (``tasks.evaluate``) -> ``artifacts/pipeline/metrics.json``.
"""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.data import store

OUT = Path("artifacts/pipeline")
NON_FEATURES = {"id", "ingest_batch", "first_seen", "label", "source_path"}


def feature_columns(df: pd.DataFrame, settings: Any) -> list[str]:
    """``data.feature_columns``, or every numeric column that is not bookkeeping."""
    if settings.data.feature_columns:
        return list(settings.data.feature_columns)
    return [c for c in df.columns if c not in NON_FEATURES and pd.api.types.is_numeric_dtype(df[c])]


def seed_demo(settings: Any, n_initial_per_class: int = 2) -> None:
    """Fill an empty data dir: digits as pool and holdout, a few simulated labels (round 0)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from tasks.data.ingest import ingest
    from tasks.data.labels import collect_labels

    digits = load_digits(as_frame=True)
    frame = digits.frame.rename(columns={"target": "label"})
    # identical images would share a content id: keep one, so pool and holdout stay disjoint
    frame = frame.drop_duplicates(subset=list(digits.feature_names)).reset_index(drop=True)
    pool, holdout = train_test_split(
        frame, test_size=0.2, random_state=settings.project.seed, stratify=frame["label"]
    )
    work = Path(settings.project.work_dir) / "demo"
    work.mkdir(parents=True, exist_ok=True)
    holdout.to_parquet(work / "holdout.parquet", index=False)
    truth = pool["label"].astype(str).reset_index(drop=True)
    pool.drop(columns=["label"]).to_parquet(work / "pool.parquet", index=False)
    ingest(work / "pool.parquet", settings)
    ingest(work / "holdout.parquet", settings, holdout=True)
    ids = store.read_pool(settings)["id"]
    picks = truth.groupby(truth).head(n_initial_per_class).index
    first = pd.DataFrame(
        {"id": ids.iloc[picks].to_numpy(), "label": truth.iloc[picks].to_numpy()}
    ).assign(annotator="simulated", source="simulated")
    collect_labels(first, settings, round_=0, file="demo seed labels")


def prepare(settings: Any) -> dict[str, int]:
    if not store.data_paths(settings).pool.exists():
        seed_demo(settings)
    from tasks.data.validate import validate_training
    from tasks.rounds import training_labels

    pool = store.read_pool(settings)
    labels = training_labels(settings)  # the loop's labels: aggregated where several answered
    validate_training(labels, settings)
    train = labels[["id", "label"]].merge(pool, on="id", how="inner")
    holdout = store.read_holdout(settings)
    OUT.mkdir(parents=True, exist_ok=True)
    train.to_parquet(OUT / "train.parquet", index=False)
    holdout.to_parquet(OUT / "holdout.parquet", index=False)
    return {"train": len(train), "holdout": len(holdout)}


def train(settings: Any) -> dict[str, Any]:
    from tasks.models import build_model, fit_model

    df = pd.read_parquet(OUT / "train.parquet")
    columns = feature_columns(df, settings)
    model = fit_model(
        build_model(settings.model, random_state=settings.project.seed),
        df[columns].to_numpy(dtype=np.float64),
        df["label"].astype(str).to_numpy(),
    )
    with open(OUT / "model.pkl", "wb") as handle:
        pickle.dump({"model": model, "columns": columns}, handle)
    return {"rows": len(df), "features": len(columns)}


def evaluate(settings: Any) -> dict[str, float]:
    from tasks.evaluate import evaluate_classifier

    with open(OUT / "model.pkl", "rb") as handle:
        saved = pickle.load(handle)
    model, columns = saved["model"], saved["columns"]
    holdout = pd.read_parquet(OUT / "holdout.parquet")
    probas = model.predict_proba(holdout[columns].to_numpy(dtype=np.float64))
    metrics = evaluate_classifier(
        holdout["label"].astype(str).to_numpy(),
        probas,
        [str(c) for c in model.classes_],
        n_bins=settings.evaluate.ece_bins,
        rare_class=settings.evaluate.rare_class,
    )
    (OUT / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return metrics


STAGES = {"prepare": prepare, "train": train, "evaluate": evaluate}


def main(argv: list[str] | None = None) -> int:
    from tasks.settings import load_settings

    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in STAGES:
        print(f"usage: python -m tasks.pipeline {{{'|'.join(STAGES)}}} [params.yaml]")
        return 2
    settings = load_settings(args[1] if len(args) > 1 else "params.yaml")
    print(json.dumps({args[0]: STAGES[args[0]](settings)}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
