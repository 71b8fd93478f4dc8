"""Speed and peak memory of ``labelwise select`` on a large predictions Parquet against the floor.

The floor: read the same file alone, chunk by chunk, into pandas (what any ranking must at least
do). ``select`` reads the same chunks, validates them, scores them and keeps a running top-k.
Each runs in its own process, so its peak RSS (``VmHWM``) is its own; imports are paid first.

    python benchmarks/select_speed.py                      # 2M rows x 10 classes
    python benchmarks/select_speed.py --rows 10000000 --strategy entropy
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROW_GROUP = 1_000_000


def make_file(path: Path, rows: int, classes: int, seed: int = 0) -> None:
    """``rows`` items with ``classes`` float32 probabilities (rows sum to 1), written one row
    group at a time so generating never holds the whole file."""
    rng = np.random.default_rng(seed)
    names = ["id", *(f"p_{k}" for k in range(classes))]
    schema = pa.schema([("id", pa.int64()), *((n, pa.float32()) for n in names[1:])])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, ROW_GROUP):
            n = min(ROW_GROUP, rows - start)
            p = rng.gamma(0.3, size=(n, classes)) + 1e-9
            p = (p / p.sum(axis=1, keepdims=True)).astype(np.float32)
            columns = [
                pa.array(np.arange(start, start + n)),
                *(pa.array(p[:, k]) for k in range(classes)),
            ]
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB: ``VmHWM`` on Linux (``ru_maxrss`` would
    carry over the parent's peak across fork and exec), else ``ru_maxrss``."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_floor(path: Path, chunk_rows: int) -> dict:
    """Read the file alone, chunk by chunk into pandas: the floor."""
    start = time.perf_counter()
    rows = 0
    reader = pq.ParquetFile(path, pre_buffer=False)  # as select reads it: bounded memory
    for batch in reader.iter_batches(batch_size=chunk_rows):
        rows += len(batch.to_pandas())
    return {"seconds": time.perf_counter() - start, "rows": rows}


def run_select(path: Path, chunk_rows: int, batch_size: int, strategy: str) -> dict:
    """``select_batch`` on the file (what ``labelwise select`` runs, minus writing the batch)."""
    from tasks.external.predictions import SelectOptions, select_batch

    options = SelectOptions(batch_size=batch_size, strategy=strategy, chunk_rows=chunk_rows)
    start = time.perf_counter()
    batch = select_batch(path, options)
    return {"seconds": time.perf_counter() - start, "selected": len(batch)}


def child(args: argparse.Namespace) -> None:
    """One measurement in this process; prints its result as JSON."""
    import pandas  # noqa: F401  (imports are paid before the baseline)

    if args.child == "select":
        import tasks.external.predictions  # noqa: F401
    base = peak_rss_mb()
    if args.child == "floor":
        result = run_floor(args.path, args.chunk_rows)
    else:
        result = run_select(args.path, args.chunk_rows, args.batch_size, args.strategy)
    result.update(peak_rss_mb=peak_rss_mb(), import_rss_mb=base)
    print(json.dumps(result))


def measure(kind: str, args: argparse.Namespace) -> dict:
    """Run ``--repeat`` child processes: the fastest time, the highest peak RSS."""
    runs = [measure_once(kind, args) for _ in range(args.repeat)]
    best = min(runs, key=lambda r: r["seconds"])
    return {**best, "peak_rss_mb": max(r["peak_rss_mb"] for r in runs)}


def measure_once(kind: str, args: argparse.Namespace) -> dict:
    """Run one child process and read its JSON line."""
    cmd = [sys.executable, __file__, "--child", kind, "--path", str(args.path)]
    cmd += ["--chunk-rows", str(args.chunk_rows), "--batch-size", str(args.batch_size)]
    cmd += ["--strategy", args.strategy]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    """Generate the file (unless --path exists), time the floor and select, print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=1_000)
    parser.add_argument("--strategy", default="margin")
    parser.add_argument("--chunk-rows", type=int, default=65_536)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; best time kept")
    parser.add_argument("--path", type=Path, default=None, help="reuse or keep this file")
    parser.add_argument("--child", choices=["floor", "select"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        if args.path is None:
            args.path = Path(tmp) / "predictions.parquet"
        if not args.path.exists():
            start = time.perf_counter()
            make_file(args.path, args.rows, args.classes)
            print(
                f"wrote {args.rows:,} rows x {args.classes} classes in "
                f"{time.perf_counter() - start:.1f}s ({args.path.stat().st_size / 2**20:.0f} MiB)"
            )
        floor, select = measure("floor", args), measure("select", args)
        in_memory = args.rows * (8 + 8 * args.classes) / 2**20
        print(
            f"floor  (read alone): {floor['seconds']:.2f}s, peak RSS {floor['peak_rss_mb']:.0f} MiB"
        )
        print(
            f"select ({args.strategy}, batch {args.batch_size}): {select['seconds']:.2f}s, "
            f"peak RSS {select['peak_rss_mb']:.0f} MiB"
        )
        print(
            f"ratio: time x{select['seconds'] / floor['seconds']:.2f}, "
            f"peak RSS x{select['peak_rss_mb'] / floor['peak_rss_mb']:.2f} "
            f"(whole file as float64 in memory: {in_memory:.0f} MiB; "
            f"after imports: floor {floor['import_rss_mb']:.0f}, select {select['import_rss_mb']:.0f} MiB)"
        )


if __name__ == "__main__":
    main()
