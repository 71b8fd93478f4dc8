"""`make run`'s gain over random, over seeds: the main job as a user runs it, once per seed.

Each seed runs ``labelwise run`` on the default settings (``params.yaml``) in its own temporary
project with ``project.seed`` set, and reads the two numbers ``make run`` prints at the end (from
the run's ``run_summary.json``): the champion's holdout score and the random baseline's at the
same number of labels (random picks from the same seed labels, the same learner and holdout).
The champion is the best round by that same holdout, so the last round's model (chosen by
nothing) is compared too: its gain is the one free of that selection. The gain is their difference per seed,
with a 95% bootstrap interval over seeds; ``--set strategy.name=random`` shows the gain a loop
that picks at random gets (the interval a gain has to clear).

    python benchmarks/run_gain.py                     # 5 seeds of the defaults
    python benchmarks/run_gain.py --seeds 10 --set strategy.name=margin
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tasks.benchmark.stats import bootstrap_mean

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "benchmarks" / "run_gain.json"


def run_seed(seed: int, overrides: list[str]) -> dict[str, float | int | str]:
    """One ``labelwise run`` in a fresh temporary project; its champion and baseline scores."""
    with tempfile.TemporaryDirectory(prefix=f"run-gain-{seed}-") as tmp:
        sets = [
            f"project.work_dir={tmp}/.labelwise", f"project.data_dir={tmp}/data",
            f"project.seed={seed}", *overrides,
        ]  # fmt: skip
        cmd = [str(Path(sys.executable).parent / "labelwise"), "run", "--params"]
        cmd += [str(ROOT / "params.yaml"), *(a for s in sets for a in ("--set", s))]
        start = time.perf_counter()
        run = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        path = Path(tmp) / ".labelwise" / "run_summary.json"
        if run.returncode != 0 or not path.exists():
            raise SystemExit(
                f"seed {seed}: labelwise run failed:\n{run.stdout[-3000:]}{run.stderr[-2000:]}"
            )
        summary = json.loads(path.read_text())
    base = summary["random_baseline"]
    return {
        "seed": seed,
        "metric": summary["metric"],
        "champion": summary["champion_score"],
        "labels": summary["n_labels"],
        "random_baseline": base["score"],
        "last_round": summary["last_round"]["score"],
        "random_repeats": base["repeats"],
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--set", dest="sets", action="append", default=[], help="a setting")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    runs = []
    for seed in range(args.seeds):
        runs.append(run_seed(seed, args.sets))
        r = runs[-1]
        print(
            f"seed {seed}: champion {r['metric']} {r['champion']:.4f}, random "
            f"{r['random_baseline']:.4f} at {r['labels']} labels ({r['seconds']:.0f} s)",
            flush=True,
        )
    summary: dict = {"overrides": args.sets, "runs": runs}
    for key, of in (("gain", "champion"), ("last_round_gain", "last_round")):
        gain = np.array([r[of] - r["random_baseline"] for r in runs])
        mean, low, high = bootstrap_mean(gain)
        summary[key] = {"mean": mean, "interval_95": [low, high], "ahead": int((gain > 0).sum())}
        print(
            f"{of} minus random: {mean:+.4f} [{low:+.4f}, {high:+.4f}] over {len(runs)} seeds "
            f"(ahead on {summary[key]['ahead']} of {len(runs)})"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
