"""`make bench`: the default configuration on every offline dataset -> docs/benchmarks.md.

One configuration for all of them, nothing tuned per dataset: the loop's defaults (learner
``auto``, strategy ``hybrid``) against random, 10 seeds paired by seed (same split, same initial
labels), 20 initial labels, batches of 20, a budget of 200; macro-F1 for classes (with the rarest
class's recall scored on the same predictions), RMSE for numbers, entity-token F1 for token
tagging. Peers (scikit-activeml, modAL) run on the same splits, initial sets and learner.

Unattended and resumable by dataset: a dataset whose results hold the same command is not run
again, so an interrupted run picks up where it stopped.

    python benchmarks/bench.py                       # everything (hours on 2 cores)
    python benchmarks/bench.py --only wine,caravan   # some datasets
    python benchmarks/bench.py --no-peers            # labelwise only
    python benchmarks/bench.py --render-only         # rebuild the page from the results
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.broad import datasets

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "benchmarks" / "headline"
PAGE = ROOT / "docs" / "benchmarks.md"

#: the loop's defaults (params.yaml): the strategy and learner a new project gets
DEFAULT_STRATEGY, DEFAULT_MODEL = "hybrid", "auto"
SEEDS = 10
CONFIG = ["--initial", "20", "--batch-size", "20", "--budget", "200"]
#: token tagging: sentences labeled whole; its strategies and learner are its own
TOKENS = {"twitter_ner": ("sequence_margin_max", "logreg")}
#: the peers run beside the default on classification sets, on fewer seeds (they cost as much
#: as ours per curve): the best two of the earlier peers runs (docs/benchmarks/peers.md), then
#: scikit-activeml's diversity and cold-start methods on our learner
PEERS = (
    "skactiveml:Falcun",
    "modAL:uncertainty_batch_sampling",
    "skactiveml:CoreSet",
    "skactiveml:TypiClust",
    "skactiveml:ProbCover",
    "skactiveml:Badge",
)
#: ... and on the text sets (TF-IDF rows), small-text's strategies for a scikit-learn model
TEXT_PEERS = ("small-text:BreakingTies", "small-text:PredictionEntropy")
PEER_SEEDS = 5
METRIC = {"classification": "macro_f1", "regression": "rmse", "tokens": "token_f1"}


def suite() -> list[tuple[str, str]]:
    """(name, task) of every dataset of the suite."""
    return [*datasets(), *((name, "tokens") for name in TOKENS)]


def command(name: str, task: str, seeds: int = SEEDS) -> list[str]:
    strategy, model = TOKENS.get(name, (DEFAULT_STRATEGY, DEFAULT_MODEL))
    also = ["--also-metric", "minority_recall"] if task == "classification" else []
    return [
        "labelwise", "benchmark", "--dataset", name, "--model", model, "--seeds", str(seeds),
        "--strategies", f"random,{strategy}", "--metric", METRIC[task], *also, *CONFIG,
        "--out", str((OUT / name).relative_to(ROOT)), "--no-mlflow",
    ]  # fmt: skip


def run_ours(name: str, task: str, seeds: int, n_jobs: int, console: Any) -> None:
    out = OUT / name
    cmd = command(name, task, seeds)
    record = out / "command.txt"
    if record.exists() and record.read_text().strip() == shlex.join(cmd):
        if (out / "results.json").exists():
            return
    console.print("$", shlex.join(cmd))
    start = time.perf_counter()
    run = subprocess.run(
        [str(Path(sys.executable).parent / cmd[0]), *cmd[1:], "--n-jobs", str(n_jobs)],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    if run.returncode != 0:
        console.print(f"[red]{name} failed[/red]: {run.stderr[-1500:]}")
        return
    record.write_text(shlex.join(cmd) + "\n")
    console.print(f"{name}: {time.perf_counter() - start:.0f} s")


def run_peers(name: str, seeds: int, n_jobs: int, console: Any) -> None:
    """The peers on ``name`` with our learner, splits and initial sets -> peers.json."""
    from joblib import Parallel, delayed

    from benchmarks.peers import encoded, run_peer_curve
    from tasks.benchmark.curves import BenchmarkConfig
    from tasks.benchmark.problems import problem_from_dataset

    path = OUT / name / "peers.json"
    key = {"seeds": seeds, "config": CONFIG, "model": DEFAULT_MODEL}
    out: dict[str, Any] = {"key": key, "strategies": {}, "failed": {}}
    if path.exists():  # resumable by peer: keep the peers this configuration already ran
        kept = json.loads(path.read_text())
        if kept.get("key") == key:
            out["strategies"] = kept.get("strategies", {})
            out["failed"] = kept.get("failed", {})
            out["wall_seconds"] = kept.get("wall_seconds", 0.0)
    problem = encoded(problem_from_dataset(name))
    peers = [*PEERS, *(TEXT_PEERS if sp.issparse(problem.X) else ())]
    todo = [p for p in peers if p not in out["strategies"] and p not in out["failed"]]
    if not todo:
        return
    config = BenchmarkConfig(
        strategies=peers, model=DEFAULT_MODEL, seeds=seeds, initial=20, batch_size=20,
        budget=200, metric="macro_f1", n_jobs=n_jobs,
    )  # fmt: skip
    console.print(f"{name}: peers {', '.join(todo)} x {seeds} seeds")
    start = time.perf_counter()
    for peer in todo:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                runs = Parallel(n_jobs=n_jobs)(
                    delayed(run_peer_curve)(problem, peer, seed, config) for seed in range(seeds)
                )
        except ImportError:  # not installed: no result to keep (`make bench` installs them)
            raise
        except Exception as exc:  # a peer that cannot run here: say so on the page
            out["failed"][peer] = f"{type(exc).__name__}: {str(exc)[:200]}"
            continue
        runs = sorted(runs, key=lambda r: r["seed"])
        out["strategies"][peer] = {
            "labels": runs[0]["labels"],
            "scores": [r["scores"] for r in runs],
            "query_seconds": float(np.mean([r["query_seconds"] for r in runs])),
        }
        path.write_text(json.dumps(out, indent=1))  # each peer kept as it ends
    out["wall_seconds"] = out.get("wall_seconds", 0.0) + time.perf_counter() - start
    path.write_text(json.dumps(out, indent=1))
    console.print(f"{name}: peers {out['wall_seconds']:.0f} s")


def main() -> None:
    from rich.console import Console
    from rich.progress import Progress

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=SEEDS)
    parser.add_argument("--peer-seeds", type=int, default=PEER_SEEDS)
    parser.add_argument("--only", default="", help="comma-separated dataset names")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--render-only", action="store_true")
    args = parser.parse_args()
    only = {s for s in args.only.split(",") if s}
    jobs = [(n, t) for n, t in suite() if not only or n in only]
    peer_jobs = [] if args.no_peers else [(n, t) for n, t in jobs if t == "classification"]
    if peer_jobs and not args.render_only:
        try:
            import modAL  # noqa: F401
            import skactiveml  # noqa: F401
            import small_text  # noqa: F401
        except ImportError as exc:
            parser.error(
                f"{exc}: the peers need pip install -e '.[peers]' (make does it), or --no-peers"
            )
    console = Console()
    if not args.render_only:
        with Progress(console=console) as progress:
            bar = progress.add_task("datasets", total=len(jobs) + len(peer_jobs))
            for name, task in jobs:  # ours first: the headline does not wait for the peers
                (OUT / name).mkdir(parents=True, exist_ok=True)
                run_ours(name, task, args.seeds, args.n_jobs, progress.console)
                progress.advance(bar)
            for name, _task in peer_jobs:
                run_peers(name, args.peer_seeds, args.n_jobs, progress.console)
                progress.advance(bar)
    from benchmarks.bench_page import page

    PAGE.write_text(page(suite(), OUT))
    print(f"wrote {PAGE}")


if __name__ == "__main__":
    main()
