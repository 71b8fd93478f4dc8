"""The CNN of ``model.kind: torch_cnn`` in the loop: random vs margin vs BALD over MC-dropout
passes vs BALD over a seed ensemble, on the same digit images -> docs/torch-cnn.md.

Per dataset and seed: a stratified 75/25 split of the images (grey levels in [0, 1], as the
loop's image featurizer gives them), one initial labeled set (one per class, then random), then
batches selected by each strategy, the CNN refit on the labels after every batch and scored by
test accuracy. Seeds are paired: a seed fixes the split, the initial set and the CNN's seed for
every strategy. Reported: mean accuracy at each labeled-set size; the final accuracy and the
area under the curve against random (paired differences, 95% bootstrap intervals over seeds);
the labels each strategy needed to reach random's final accuracy and the share saved
(:func:`tasks.benchmark.stats.bootstrap_final_savings`).

    python -m benchmarks.torch_cnn                                 # digits and mnist_subset (~6 min)
    python -m benchmarks.torch_cnn --datasets digits --seeds 5 --budget 300
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from tasks.benchmark.curves import initial_rows, split
from tasks.benchmark.problems import Problem
from tasks.benchmark.stats import (
    aulc,
    bootstrap_final_savings,
    bootstrap_mean,
    first_reaching,
    savings_vs_final,
)

#: name -> (strategy, the CNN's committee); bald and bald_ensemble differ only in the committee
STRATEGIES: dict[str, tuple[str, str]] = {
    "random": ("random", "dropout"),
    "margin": ("margin", "dropout"),
    "bald": ("bald", "dropout"),
    "bald_ensemble": ("bald", "ensemble"),
}
DATASETS = ("digits", "mnist_subset")


def load_images(name: str, rows: int | None, seed: int = 0) -> Problem:
    """A bundled image dataset as [0, 1] pixel rows (``rows``: a stratified random subset)."""
    from tasks.data.datasets import load_dataset

    ds = load_dataset(name)
    X = ds.frame[ds.numeric].to_numpy(dtype=np.float32)
    X /= np.float32(X.max())  # digits: 0..16, MNIST: 0..255
    y = ds.frame[ds.target].astype(str).to_numpy()
    if rows is not None and rows < len(y):
        from sklearn.model_selection import train_test_split

        keep, _ = train_test_split(
            np.arange(len(y)), train_size=rows, stratify=y, random_state=seed
        )
        X, y = X[np.sort(keep)], y[np.sort(keep)]
    return Problem(name, X, y)


def run_curve(problem: Problem, name: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    """One strategy, one seed: labeled-set sizes, test accuracies and the query seconds."""
    import strategies
    from tasks.loop.simulate import simulate
    from tasks.model.torch_cnn import TorchCNNClassifier

    strategy_name, committee = STRATEGIES[name]
    pool, test = split(problem, 0.25, seed)
    params: dict[str, Any] = {"n_members": args.members} if strategy_name == "bald" else {}
    model = TorchCNNClassifier(committee=committee, mc_samples=args.mc_samples, random_state=seed)
    curve = simulate(
        strategies.get(strategy_name, **params),
        model,
        problem.X[pool],
        problem.y[pool],
        problem.X[test],
        problem.y[test],
        initial=initial_rows(problem, pool, args.initial, seed),
        batch_size=args.batch,
        budget=args.budget,
        seed=seed,
    )
    return {"labels": curve.labels, "scores": curve.scores, "query_seconds": curve.query_seconds}


def summary_rows(curves: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per strategy: final accuracy and AULC with their paired differences to random, labels to
    random's final accuracy and the saving with its paired bootstrap interval."""
    labels = curves["random"][0]["labels"]
    base = np.array([c["scores"] for c in curves["random"]])
    goal = float(base.mean(axis=0)[-1])
    rows = []
    for name, runs in curves.items():
        scores = np.array([c["scores"] for c in runs])
        per_seed_aulc = np.array([aulc(labels, s[None]) for s in scores])
        base_aulc = np.array([aulc(labels, s[None]) for s in base])
        rows.append(
            {
                "strategy": name,
                "final": float(scores[:, -1].mean()),
                "d_final": bootstrap_mean(scores[:, -1] - base[:, -1]),
                "aulc": float(per_seed_aulc.mean()),
                "d_aulc": bootstrap_mean(per_seed_aulc - base_aulc),
                "labels_to_goal": first_reaching(labels, scores.mean(axis=0), goal, "accuracy"),
                "saving": savings_vs_final(labels, scores, base, "accuracy"),
                "saving_ci": bootstrap_final_savings(labels, scores, base, "accuracy"),
                "query_seconds": float(np.mean([c["query_seconds"] for c in runs])),
            }
        )
    return rows


def _ci(value: tuple[float, float, float]) -> str:
    mean, low, high = value
    return f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]"


def markdown(name: str, curves: dict[str, list[dict[str, Any]]]) -> str:
    """The dataset's two tables: accuracy along the budget, and the summary against random."""
    labels = curves["random"][0]["labels"]
    head = "| strategy | " + " | ".join(str(n) for n in labels) + " |"
    lines = [f"**{name}**: test accuracy (mean over seeds) at each labeled-set size", "", head]
    lines.append("|---|" + "---|" * len(labels))
    for strategy, runs in curves.items():
        mean = np.array([c["scores"] for c in runs]).mean(axis=0)
        lines.append(f"| {strategy} | " + " | ".join(f"{v:.3f}" for v in mean) + " |")
    goal = np.array([c["scores"] for c in curves["random"]]).mean(axis=0)[-1]
    lines += [
        "",
        f"**{name}**: against random (paired by seed; 95% bootstrap intervals over seeds; "
        f"random's final accuracy {goal:.3f} at {labels[-1]} labels)",
        "",
        "| strategy | final accuracy | Δ final vs random | AULC | Δ AULC vs random "
        "| labels to random's final | labels saved [95% CI] | query s / run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in summary_rows(curves):
        first = row["strategy"] == "random"
        low, high = row["saving_ci"]
        saving = "—" if row["saving"] is None else f"{row['saving']:+.0%}"
        interval = "" if low is None or first else f" [{low:+.0%}, {high:+.0%}]"
        lines.append(
            f"| {row['strategy']} | {row['final']:.3f} | {'—' if first else _ci(row['d_final'])} "
            f"| {row['aulc']:.3f} | {'—' if first else _ci(row['d_aulc'])} "
            f"| {row['labels_to_goal'] or '> ' + str(labels[-1])} | {saving}{interval} "
            f"| {row['query_seconds']:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--initial", type=int, default=20)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--budget", type=int, default=200)
    parser.add_argument("--mc-samples", type=int, default=10, help="dropout passes of bald")
    parser.add_argument("--members", type=int, default=5, help="networks of bald_ensemble")
    parser.add_argument(
        "--mnist-rows", type=int, default=2000, help="stratified subset of mnist_subset's 5000"
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the curves as JSON")
    args = parser.parse_args()
    if "random" not in args.strategies:
        parser.error("--strategies must include random (the baseline)")
    warnings.filterwarnings("ignore", category=UserWarning)
    start = time.perf_counter()
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for name in args.datasets:
        problem = load_images(name, args.mnist_rows if name == "mnist_subset" else None)
        results[name] = {
            s: [run_curve(problem, s, seed, args) for seed in range(args.seeds)]
            for s in args.strategies
        }
        print(markdown(name, results[name]), end="\n\n", flush=True)
    print(f"{time.perf_counter() - start:.0f} s")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"args": vars(args) | {"out": str(args.out)}} | results))


if __name__ == "__main__":
    main()
