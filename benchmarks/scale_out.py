"""Scale-out benchmark: select a batch from a large memory-mapped pool on a 2-worker Dask cluster.

The pool (default 10M rows x 50 float32 features, ~2 GB, 10 classes) is written as a ``.npy``
under a temporary directory; a LogisticRegression is fitted on 2,000 labeled rows. Two runs, same
strategy (margin), same batch (100), same pool file:

- baseline: the in-process chunked ``strategy.query`` on ``np.load(..., mmap_mode="r")``, in a
  fresh process so its peak RSS is its own;
- distributed: ``flows.scale.distributed_select`` on a LocalCluster (2 worker processes, 1 thread
  each); each worker reads its own chunks; peak RSS is ``ru_maxrss`` inside each worker.

The two selections must be identical. Prints a table and writes ``benchmarks/results/scale_out.json``.

    .venv/bin/python -m benchmarks.scale_out --rows 10000000
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing as mp
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results" / "scale_out.json"
MB = 1024 * 1024


def make_pool(path: Path, rows: int, features: int, classes: int, dtype: str, seed: int) -> Any:
    """Gaussian classes around random centres, written chunk by chunk; returns (centres, rng)."""
    from numpy.lib.format import open_memmap

    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=1.5, size=(classes, features)).astype(dtype)
    pool = open_memmap(path, mode="w+", dtype=dtype, shape=(rows, features))
    step = 1_000_000
    for start in range(0, rows, step):
        n = min(step, rows - start)
        labels = rng.integers(classes, size=n)
        block = rng.standard_normal((n, features), dtype=np.float32).astype(dtype, copy=False)
        block += centres[labels]
        pool[start : start + n] = block
    pool.flush()
    del pool
    return centres, rng


def fit_model(centres: np.ndarray, rng: np.random.Generator, n_labeled: int, dtype: str) -> Any:
    from sklearn.linear_model import LogisticRegression

    labels = rng.integers(centres.shape[0], size=n_labeled)
    X = (rng.standard_normal((n_labeled, centres.shape[1])) + centres[labels]).astype(dtype)
    return LogisticRegression(max_iter=300).fit(X, labels)


def _baseline(path: str, model: Any, strategy: str, batch: int, chunk_size: int, out: Any) -> None:
    import strategies
    from tasks.data.sources import peak_rss_bytes

    pool = np.load(path, mmap_mode="r")
    started = time.perf_counter()
    selection = strategies.get(strategy).query(model, pool, batch, chunk_size=chunk_size)
    seconds = time.perf_counter() - started
    peak = peak_rss_bytes()
    out.put((selection.indices, seconds, peak))


def run_baseline(path: Path, model: Any, strategy: str, batch: int, chunk_size: int) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    started = time.perf_counter()
    proc = ctx.Process(
        target=_baseline, args=(str(path), model, strategy, batch, chunk_size, queue)
    )
    proc.start()
    indices, seconds, peak = queue.get()
    proc.join()
    return {
        "indices": indices,
        "seconds": seconds,
        "seconds_with_process_start": time.perf_counter() - started,
        "peak_rss_bytes": peak,
    }


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _import_flow() -> None:
    import flows.scale  # noqa: F401


def run_distributed(
    path: Path, model: Any, strategy: str, batch: int, chunk_size: int, workers: int
) -> dict:
    from distributed import Client, LocalCluster

    from flows.scale import select_at_scale
    from tasks.settings import ScaleSettings

    started = time.perf_counter()
    cluster = LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    logging.getLogger("distributed").setLevel(logging.WARNING)  # one line per worker event
    cluster_seconds = time.perf_counter() - started
    scale = ScaleSettings(
        executor="dask", dask_address=cluster.scheduler_address, chunk_size=chunk_size
    )
    try:
        # Warm-up on a tiny pool (a chunk per worker at least): starts Prefect's temporary
        # server and does the imports on every worker, so neither is timed.
        with Client(cluster.scheduler_address) as client:
            client.run(_import_flow)
        tiny = np.load(path, mmap_mode="r")[: 1000 * 4 * workers]
        select_at_scale(scale, strategy, model, tiny, batch, chunk_size=1000)
        with Client(cluster.scheduler_address) as client:
            idle = client.run(_rss)
        started = time.perf_counter()
        result = select_at_scale(scale, strategy, model, path, batch)
        seconds = time.perf_counter() - started
    finally:
        cluster.close()
    return {
        "indices": result.indices,
        "seconds": seconds,
        "cluster_start_seconds": cluster_seconds,
        "n_chunks": result.n_chunks,
        "workers": result.workers,
        "idle_rss_bytes": list(idle.values()),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--features", type=int, default=50)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--strategy", default="margin")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--chunk-size", type=int, default=250_000, help="rows per Dask task")
    parser.add_argument("--baseline-chunk-size", type=int, default=65_536)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="labelwise-scale-") as tmp:
        os.environ.setdefault("PREFECT_HOME", str(Path(tmp) / "prefect"))
        os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
        os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        os.environ.setdefault("DO_NOT_TRACK", "1")
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
        path = Path(tmp) / "pool.npy"
        t0 = time.perf_counter()
        centres, rng = make_pool(
            path, args.rows, args.features, args.classes, args.dtype, args.seed
        )
        model = fit_model(centres, rng, 2_000, args.dtype)
        setup_seconds = time.perf_counter() - t0
        base = run_baseline(path, model, args.strategy, args.batch, args.baseline_chunk_size)
        dist = run_distributed(
            path, model, args.strategy, args.batch, args.chunk_size, args.workers
        )
        pool_bytes = path.stat().st_size

    identical = bool(np.array_equal(base["indices"], dist["indices"]))
    worker_peaks = [w["peak_rss_bytes"] for w in dist["workers"].values()]
    report = {
        "rows": args.rows,
        "features": args.features,
        "classes": args.classes,
        "dtype": args.dtype,
        "pool_bytes": pool_bytes,
        "strategy": args.strategy,
        "batch": args.batch,
        "setup_seconds": round(setup_seconds, 2),
        "identical_selection": identical,
        "baseline": {
            "what": "in-process strategy.query on the memmap",
            "chunk_size": args.baseline_chunk_size,
            "seconds": round(base["seconds"], 2),
            "rows_per_second": round(args.rows / base["seconds"]),
            "peak_rss_mb": round(base["peak_rss_bytes"] / MB, 1),
        },
        "distributed": {
            "what": f"distributed_select on a {args.workers}-worker LocalCluster",
            "chunk_size": args.chunk_size,
            "n_chunks": dist["n_chunks"],
            "seconds": round(dist["seconds"], 2),
            "rows_per_second": round(args.rows / dist["seconds"]),
            "cluster_start_seconds": round(dist["cluster_start_seconds"], 2),
            "peak_rss_mb_per_worker": [round(p / MB, 1) for p in worker_peaks],
            "idle_rss_mb_per_worker": [round(p / MB, 1) for p in dist["idle_rss_bytes"]],
            "workers": {
                k: {**v, "peak_rss_bytes": int(v["peak_rss_bytes"])}
                for k, v in dist["workers"].items()
            },
        },
        "speedup": round(base["seconds"] / dist["seconds"], 2),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "platform": platform.platform(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    _print_table(report)
    return report


def _print_table(r: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    b, d = r["baseline"], r["distributed"]
    table = Table(
        "run",
        "seconds",
        "rows/s",
        "peak RSS (MB)",
        title=f"{r['rows']:,} rows x {r['features']} {r['dtype']} ({r['pool_bytes'] / 1e9:.2f} GB), "
        f"{r['strategy']}, batch {r['batch']}",
    )
    table.add_row(
        "baseline (in-process memmap)",
        f"{b['seconds']:.2f}",
        f"{b['rows_per_second']:,}",
        f"{b['peak_rss_mb']:.0f}",
    )
    peaks = " / ".join(f"{p:.0f}" for p in d["peak_rss_mb_per_worker"])
    idle = " / ".join(f"{p:.0f}" for p in d["idle_rss_mb_per_worker"])
    table.add_row(
        f"distributed ({len(d['peak_rss_mb_per_worker'])} workers, {d['n_chunks']} chunks)",
        f"{d['seconds']:.2f}",
        f"{d['rows_per_second']:,}",
        f"{peaks} (idle {idle})",
    )
    Console().print(table)
    print(f"speedup {r['speedup']}x; identical selection: {r['identical_selection']}")


if __name__ == "__main__":
    main()
