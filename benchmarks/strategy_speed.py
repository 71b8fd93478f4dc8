"""Speed and memory of every classification strategy's ``select`` against the floor.

The floor, measured in the same run on the same pool: ``model.predict_proba`` + margin +
``np.argpartition`` (what any uncertainty sampler must at least do). Each strategy's time and
extra peak memory are printed as ratios to the floor and to the probability matrix's size.

    python benchmarks/strategy_speed.py                     # 10k, 100k, 1M rows (make bench-speed)
    python benchmarks/strategy_speed.py --sizes 10000 --repeats 1
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import time
import tracemalloc
from functools import partial
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from sklearn.linear_model import LogisticRegression

import strategies

N_FEATURES, N_CLASSES, BATCH, N_LABELED = 50, 10, 100, 2000
DEFAULT_STRATEGIES = [
    "random",
    "least_confidence",
    "margin",
    "entropy",
    "density_weighted",
    "hybrid",
    "cluster_margin",
    "auto",
    "coreset",
    "qbc_vote_entropy",
    "qbc_kl",
    "bald",
    "expected_error_reduction",
]


def make_problem(n_pool: int, seed: int = 0):
    """A 10-class linear problem: labeled set, fitted LogisticRegression, pool of ``n_pool`` rows."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1.0, size=(N_CLASSES, N_FEATURES))
    y_lab = rng.integers(0, N_CLASSES, N_LABELED)
    X_lab = centres[y_lab] + rng.normal(0, 1.5, size=(N_LABELED, N_FEATURES))
    model = LogisticRegression(max_iter=300).fit(X_lab, y_lab)
    y_pool = rng.integers(0, N_CLASSES, n_pool)
    X_pool = centres[y_pool] + rng.normal(0, 1.5, size=(n_pool, N_FEATURES))
    return model, X_pool, X_lab, y_lab


def floor(model, X_pool, batch: int) -> np.ndarray:
    proba = model.predict_proba(X_pool)
    part = np.partition(proba, N_CLASSES - 2, axis=1)
    m = part[:, -1] - part[:, -2]
    return np.argpartition(m, batch)[:batch]


def select_call(strategy, model, X_pool, X_lab, y_lab, batch: int = BATCH) -> partial:
    """``strategy.select`` on the pool with the labeled rows and a fixed seed, ready to time."""
    return partial(
        strategy.select, model, X_pool, batch, X_labeled=X_lab, y_labeled=y_lab, random_state=0
    )


def timed(fn, repeats: int) -> float:
    """The median wall time of ``repeats`` calls (after a garbage collection each)."""
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _peak_bytes(fn) -> int:
    gc.collect()
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def run(sizes: list[int], names: list[str], repeats: int) -> list[dict]:
    rows = []
    console = Console()
    for n in sizes:
        model, X_pool, X_lab, y_lab = make_problem(n)
        proba_bytes = n * N_CLASSES * 8
        base_call = partial(floor, model, X_pool, BATCH)
        base_time = timed(base_call, repeats)
        base_mem = _peak_bytes(base_call)
        console.print(f"n={n:,}: floor {base_time:.3f} s, peak {base_mem / 2**20:.1f} MiB")
        for name in names:
            call = select_call(strategies.get(name), model, X_pool, X_lab, y_lab)
            t = timed(call, repeats)
            mem = _peak_bytes(call)
            rows.append(
                {
                    "n_pool": n,
                    "strategy": name,
                    "seconds": t,
                    "floor_seconds": base_time,
                    "time_ratio": t / base_time,
                    "peak_bytes": mem,
                    "floor_peak_bytes": base_mem,
                    "proba_bytes": proba_bytes,
                    "peak_vs_proba": mem / proba_bytes,
                }
            )
            console.print(
                f"  {name:26s} {t:8.3f} s  {t / base_time:6.2f}x floor  "
                f"peak {mem / 2**20:8.1f} MiB ({mem / proba_bytes:.2f}x probas)"
            )
        del X_pool, base_call, call
        gc.collect()
    return rows


def print_table(rows: list[dict]) -> str:
    sizes = sorted({r["n_pool"] for r in rows})
    names = list(dict.fromkeys(r["strategy"] for r in rows))
    by = {(r["strategy"], r["n_pool"]): r for r in rows}
    head = (
        "| strategy | "
        + " | ".join(f"{n:,} rows: time / floor" for n in sizes)
        + " | extra peak memory at "
        + f"{sizes[-1]:,} / proba matrix |"
    )
    lines = [head, "|" + "---|" * (len(sizes) + 2)]
    for name in names:
        cells = [f"{by[name, n]['time_ratio']:.2f}x" for n in sizes]
        lines.append(
            f"| `{name}` | "
            + " | ".join(cells)
            + f" | {by[name, sizes[-1]]['peak_vs_proba']:.2f}x |"
        )
    floors = " | ".join(f"{by[names[0], n]['floor_seconds']:.3f} s" for n in sizes)
    lines.append(f"| floor (predict_proba + argpartition) | {floors} | - |")
    table = "\n".join(lines)
    Console().print(Table.grid())
    print(table)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--strategies", default=",".join(DEFAULT_STRATEGIES))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/strategy_speed.json")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = run(sizes, args.strategies.split(","), args.repeats)
    table = print_table(rows)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"machine": platform.platform(), "rows": rows, "table": table}, indent=2)
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
