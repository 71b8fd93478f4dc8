"""Strategy demo: the configured strategy against random on the digits images, simulated labels."""

from __future__ import annotations

import numpy as np
from rich.console import Console
from rich.table import Table
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import strategies
from tasks.settings import Settings
from tasks.simulate import initial_labeled_set, simulate


def run_demo(settings: Settings, rounds: int, console: Console) -> dict[str, list[float]]:
    X, y = load_digits(return_X_y=True)
    seed = settings.project.seed
    X_pool, X_test, y_pool, y_test = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=seed
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300))
    batch = settings.strategy.batch_size
    initial = initial_labeled_set(y_pool, 20, np.random.default_rng(seed))
    budget = len(initial) + rounds * batch
    chosen = settings.strategy.build()
    runs = {"random": strategies.get("random"), settings.strategy.name: chosen}
    curves = {}
    for name, strategy in runs.items():
        with console.status(f"simulating {rounds} rounds of {name}"):
            curves[name] = simulate(
                strategy,
                model,
                X_pool,
                y_pool,
                X_test,
                y_test,
                initial=initial,
                batch_size=batch,
                budget=budget,
                seed=seed,
            )
    full = model.fit(X_pool, y_pool).score(X_test, y_test)
    table = Table(
        "labels", *curves, title=f"digits: test accuracy (full pool of {len(y_pool)}: {full:.3f})"
    )
    labels = next(iter(curves.values())).labels
    for i, n in enumerate(labels):
        table.add_row(str(n), *(f"{c.scores[i]:.3f}" for c in curves.values()))
    console.print(table)
    return {name: c.scores for name, c in curves.items()}
