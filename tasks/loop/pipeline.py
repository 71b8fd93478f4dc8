"""The ``dvc.yaml`` stages: ``python -m tasks.loop.pipeline prepare|train|evaluate [params.yaml]``.

prepare: one label per pooled id as the loop trains on it (the latest, or the
``annotation.aggregation`` of several annotators' answers) -> ``artifacts/pipeline/train.parquet``
(after the training gate) and the holdout -> ``artifacts/pipeline/holdout.parquet``. With no pool
yet (a fresh clone) it first seeds ``data/`` with scikit-learn's bundled digits so the pipeline
runs end to end.
train: the configured model (``tasks.model.build``) on the numeric feature columns.
evaluate: holdout metrics (``tasks.model.metrics``) -> ``artifacts/pipeline/metrics.json``.
"""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.data import store

OUT = Path("artifacts/pipeline")


def prepare(settings: Any) -> dict[str, int]:
    """The training set, the pool and the holdout as the loop sees them (a fresh project is
    seeded first, as ``labelwise run`` seeds it: ``loop.dataset``)."""
    from tasks.data.profile import resolve
    from tasks.data.validate import validate_training
    from tasks.loop.demo import seed_project
    from tasks.loop.training_data import training_labels

    seed_project(settings)
    settings = resolve(settings)
    pool = store.read_pool(settings)
    labels = training_labels(settings)  # the loop's labels: aggregated where several answered
    validate_training(labels, settings)
    train = labels[["id", "label"]].merge(pool, on="id", how="inner")
    holdout = store.read_holdout(settings)
    OUT.mkdir(parents=True, exist_ok=True)
    train.to_parquet(OUT / "train.parquet", index=False)
    pool.to_parquet(OUT / "pool.parquet", index=False)
    holdout.to_parquet(OUT / "holdout.parquet", index=False)
    return {"train": len(train), "pool": len(pool), "holdout": len(holdout)}


def train(settings: Any) -> dict[str, Any]:
    """The round's model (featurizer and estimator, raw items in) on the prepared training set."""
    from tasks.data.profile import resolve
    from tasks.loop.training_data import fit_round_model

    settings = resolve(settings)
    labeled = pd.read_parquet(OUT / "train.parquet")
    model = fit_round_model(settings, pd.read_parquet(OUT / "pool.parquet"), labeled)
    with open(OUT / "model.pkl", "wb") as handle:
        pickle.dump(model, handle)
    return {"rows": len(labeled), "columns": len(model.columns)}


def evaluate(settings: Any) -> dict[str, float]:
    """Holdout metrics of the trained model (those of the loop's task)."""
    from tasks.data.profile import resolve
    from tasks.loop.learning import holdout_metrics

    with open(OUT / "model.pkl", "rb") as handle:
        model = pickle.load(handle)
    metrics = holdout_metrics(resolve(settings), model, pd.read_parquet(OUT / "holdout.parquet"))
    (OUT / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return metrics


STAGES = {"prepare": prepare, "train": train, "evaluate": evaluate}


def main(argv: list[str] | None = None) -> int:
    from tasks.settings import load_settings

    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in STAGES:
        print(f"usage: python -m tasks.loop.pipeline {{{'|'.join(STAGES)}}} [params.yaml]")
        return 2
    settings = load_settings(args[1] if len(args) > 1 else "params.yaml")
    print(json.dumps({args[0]: STAGES[args[0]](settings)}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
