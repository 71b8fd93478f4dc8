"""Speed of ``labelwise ingest`` on a numeric Parquet file against the floor.

The floor, measured in the same run on the same file: read it with pyarrow, sha256 every row's
bytes, check every value is finite and in range (numpy), write it back with an id column; what any
ingest must at least do. Ingest does the same with its real gates (great-expectations schema,
types, nulls, unique ids, value ranges) into a fresh project, after one small ingest has paid for
importing great-expectations (printed apart: once per process).

    python benchmarks/ingest_speed.py                  # 200k rows x 64 columns (make bench-ingest)
    python benchmarks/ingest_speed.py --rows 1000000
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from tasks.data.ingest import ingest
from tasks.settings import Settings

LOW, HIGH = 0.0, 1.0


def make_file(path: Path, rows: int, columns: int, seed: int = 0) -> list[str]:
    """``rows`` x ``columns`` uniform floats in [LOW, HIGH) as Parquet; returns the names."""
    rng = np.random.default_rng(seed)
    names = [f"f{i:02d}" for i in range(columns)]
    values = rng.uniform(LOW, HIGH, size=(rows, columns))
    pq.write_table(pa.table({n: values[:, i] for i, n in enumerate(names)}), path)
    return names


def floor(src: Path, dst: Path) -> int:
    """Read, hash each row (sha256 of its bytes), check the values, write: rows kept."""
    df = pq.read_table(src).to_pandas()
    values = np.ascontiguousarray(df.to_numpy(dtype=np.float64))
    width = values.shape[1] * values.itemsize
    data = memoryview(values).cast("B")
    sha256 = hashlib.sha256
    ids = [sha256(data[i : i + width]).hexdigest()[:32] for i in range(0, len(data), width)]
    ok = (
        np.isfinite(values).all(axis=1) & (values >= LOW).all(axis=1) & (values <= HIGH).all(axis=1)
    )
    out = df[ok]
    out.insert(0, "id", np.asarray(ids, dtype=object)[ok])
    pq.write_table(pa.Table.from_pandas(out, preserve_index=False), dst)
    return int(ok.sum())


def project(root: Path, names: list[str]) -> Settings:
    """A fresh project under ``root`` whose gates check every column of the file."""
    return Settings.model_validate(
        {
            "project": {"work_dir": str(root / ".labelwise"), "data_dir": str(root / "data")},
            "data": {
                "feature_columns": names,
                "value_ranges": {n: [LOW, HIGH] for n in names},
            },
        }
    )


def _timed(fn) -> float:
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--columns", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=1, help="runs of each (median shown)")
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory(prefix="ingest-speed-") as tmp:
        root = Path(tmp)
        names = make_file(root / "input.parquet", args.rows, args.columns)
        make_file(root / "warm.parquet", 10, args.columns, seed=1)
        setup = _timed(lambda: ingest(root / "warm.parquet", project(root / "warm", names)))

        floors, ingests = [], []
        for run in range(args.repeats):
            floors.append(_timed(lambda: floor(root / "input.parquet", root / "floor.parquet")))
            settings = project(root / f"run-{run}", names)
            ingests.append(_timed(lambda s=settings: ingest(root / "input.parquet", s)))
            added = len(pd.read_parquet(Path(settings.project.data_dir) / "pool.parquet"))
            assert added == args.rows, f"ingest added {added} of {args.rows} rows"
        base, took = statistics.median(floors), statistics.median(ingests)

    table = Table(title=f"ingest of {args.rows:,} rows x {args.columns} float columns (Parquet)")
    table.add_column("")
    table.add_column("seconds", justify="right")
    table.add_column("x floor", justify="right")
    table.add_row("floor: read + sha256 per row + value check + write", f"{base:.2f}", "1.0")
    table.add_row("tasks.data.ingest.ingest", f"{took:.2f}", f"{took / base:.1f}")
    table.add_row("first ingest in a process (imports great-expectations)", f"{setup:.2f}", "")
    console.print(table)
    console.print(f"ratio ingest / floor: {took / base:.2f}")


if __name__ == "__main__":
    main()
