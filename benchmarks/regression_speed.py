"""Time of every regression strategy's ``select`` against the floor, on pools of growing size.

The floor, measured in the same run on the same pool: ``model.predict`` + ``np.argpartition``
(what any score-based regression sampler must at least do). Models: a ridge and labelwise's
``auto`` learner fit on the labeled rows (what the loop queries with); times are printed as
ratios to the floor, the machines being noisy. Strategies as ``labelwise benchmark`` takes
them (``name:key=value``).

    python benchmarks/regression_speed.py                       # 10k and 100k rows
    python benchmarks/regression_speed.py --sizes 10000 --models ridge
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from sklearn.linear_model import Ridge

from tasks.benchmark.curves import strategy_of

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.strategy_speed import select_call, timed

N_FEATURES, BATCH, N_LABELED = 20, 20, 200
#: ``hybrid:informativeness=variance`` is hybrid's regression batch before variance_reduction
DEFAULT_STRATEGIES = [
    "random",
    "variance",
    "variance_density",
    "igs",
    "variance_reduction",
    "hybrid",
    "hybrid:informativeness=variance",
]


def make_problem(n_pool: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A non-linear regression problem: ``N_LABELED`` labeled rows and a pool of ``n_pool``."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N_LABELED + n_pool, N_FEATURES))
    y = X[:, :5] @ rng.normal(size=5) + np.sin(2 * X[:, 5]) + rng.normal(0, 0.3, X.shape[0])
    return X[N_LABELED:], X[:N_LABELED], y[:N_LABELED]


def fitted(kind: str, X: np.ndarray, y: np.ndarray) -> Any:
    if kind == "ridge":
        return Ridge().fit(X, y)
    from tasks.model.auto import AutoModel

    return AutoModel(task="regression", random_state=0).fit(X, y)


def floor(model: Any, X_pool: np.ndarray) -> np.ndarray:
    scores = np.asarray(model.predict(X_pool))
    return np.argpartition(-scores, BATCH)[:BATCH]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--models", default="ridge,auto")
    parser.add_argument("--strategies", default=",".join(DEFAULT_STRATEGIES))
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    table = Table(title=f"regression select, batch {BATCH}, {N_LABELED} labeled rows")
    for column in ("rows", "model", "strategy", "seconds", "x floor"):
        table.add_column(column, justify="right")
    for n in (int(s) for s in args.sizes.split(",")):
        X_pool, X_lab, y_lab = make_problem(n)
        for kind in args.models.split(","):
            model = fitted(kind, X_lab, y_lab)
            base = timed(partial(floor, model, X_pool), args.repeats)
            table.add_row(str(n), kind, "floor (predict + top-k)", f"{base:.3f}", "1.0")
            for name in args.strategies.split(","):
                run = select_call(strategy_of(name), model, X_pool, X_lab, y_lab, BATCH)
                seconds = timed(run, args.repeats)
                table.add_row(str(n), kind, name, f"{seconds:.3f}", f"{seconds / base:.1f}")
    Console().print(table)


if __name__ == "__main__":
    main()
