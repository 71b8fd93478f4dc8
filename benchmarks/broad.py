"""`make bench-broad`: one configuration on every offline dataset (the bundled ones and the R
packages' of ``tasks.data.r_datasets``), nothing tuned per dataset -> docs/benchmarks-broad.md.

For each dataset and learner (``--models``), ``labelwise benchmark`` runs the strategies of its
task against random on the same splits and initial sets (paired by seed). Resumable: a dataset
whose results.json holds the same command is not run again.

    python benchmarks/broad.py                          # every dataset, logreg and auto, 5 seeds
    python benchmarks/broad.py --only caravan,hmda --models auto --seeds 10
    python benchmarks/broad.py --render-only            # rebuild the page from the results
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "benchmarks" / "broad"
PAGE = ROOT / "docs" / "benchmarks-broad.md"

STRATEGIES = {
    "classification": "random,margin,hybrid,cluster_margin,auto",
    "regression": "random,variance,igs,hybrid,auto",
}
#: the same for every dataset: a small budget, where the learner and the strategy matter most
CONFIG = ["--initial", "20", "--batch-size", "20", "--budget", "200"]
#: datasets left out, and why
SKIPPED = {"twitter_ner": "token tagging has its own strategies (docs/benchmarks-suite.md)"}


def datasets() -> list[tuple[str, str]]:
    """(name, task) of every installed dataset, in the registry's order."""
    from tasks.data.datasets import DATASETS, available_datasets

    out = []
    for name in available_datasets():
        if name in SKIPPED:
            continue
        out.append((name, "regression" if name in _regression(DATASETS) else "classification"))
    return out


def _regression(registry: dict) -> set[str]:
    from tasks.data.r_datasets import R_DATASETS

    return {"diabetes", "abalone"} | {n for n, s in R_DATASETS.items() if s.kind == "regression"}


def command(name: str, task: str, model: str, seeds: int, out: Path) -> list[str]:
    metric = "rmse" if task == "regression" else "macro_f1"
    return [
        "labelwise", "benchmark", "--dataset", name, "--model", model, "--seeds", str(seeds),
        "--strategies", STRATEGIES[task], "--metric", metric, *CONFIG, "--out", str(out),
    ]  # fmt: skip


def paired_interval(a: np.ndarray, b: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple:
    """Mean of ``a - b`` over seeds with a 95% paired bootstrap interval."""
    diff = np.asarray(a) - np.asarray(b)
    rng = np.random.default_rng(seed)
    boots = diff[rng.integers(0, diff.shape[0], (n_boot, diff.shape[0]))].mean(axis=1)
    low, high = np.percentile(boots, [2.5, 97.5])
    return float(diff.mean()), float(low), float(high)


def seed_aulc(info: dict) -> np.ndarray:
    x = np.asarray(info["labels"], dtype=float)
    y = np.asarray(info["scores"], dtype=float)
    return np.trapezoid(y, x, axis=1) / (x[-1] - x[0])


def verdict(low: float, high: float, higher_is_better: bool) -> str:
    if low > 0:
        return "win" if higher_is_better else "loss"
    if high < 0:
        return "loss" if higher_is_better else "win"
    return "tie"


def rows_for(results: dict) -> list[dict]:
    """Per strategy: saving vs random's final score (with its interval), AULC minus random's
    (paired interval over seeds) and its verdict."""
    from tasks.model.metrics import higher_is_better

    better = higher_is_better(results["metric"])
    base = seed_aulc(results["strategies"]["random"])
    out = []
    for name, info in results["strategies"].items():
        if name == "random":
            continue
        final = results.get("savings_vs_random_final", {}).get(name, {})
        mean, low, high = paired_interval(seed_aulc(info), base)
        out.append(
            {
                "strategy": name,
                "saving": final.get("saving"),
                "saving_interval": final.get("interval_95"),
                "aulc_diff": (mean, low, high),
                "verdict": verdict(low, high, better),
            }
        )
    return out


def _pct(value: float | None) -> str:
    return "never" if value is None else f"{value:.0%}"


def page(done: list[tuple[str, str, str]]) -> str:
    lines = [
        "# Label efficiency on a broad suite",
        "",
        "One configuration for every dataset, nothing tuned per dataset (`python "
        "benchmarks/broad.py`, i.e. `make bench-broad`): 20 initial labels, batches of 20, a "
        "budget of 200, macro-F1 (classes) or RMSE (numbers), the strategies of the task against "
        "random on the same splits and initial sets. *saving*: labels saved against random to "
        "reach random's final score at the budget (`savings_vs_random_final` in results.json; "
        "*never*: not reached within the budget), with its 95% paired bootstrap interval over "
        "seeds. *AULC diff*: the strategy's area under the learning curve minus random's, mean "
        "over seeds [95% paired interval]; *win/loss* when the interval excludes 0.",
        "",
    ]
    for model in sorted({m for _, _, m in done}):
        lines += [f"## Learner: `{model}`", ""]
        tally: dict[str, dict[str, int]] = {}
        savings: dict[str, list[float]] = {}
        table = [
            "| dataset | metric | full data | strategy | saving [95%] | AULC diff [95%] | |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, _task, m in done:
            if m != model:
                continue
            results = json.loads((OUT / model / name / "results.json").read_text())
            for row in rows_for(results):
                interval = row["saving_interval"] or [None, None]
                mean, low, high = row["aulc_diff"]
                table.append(
                    f"| {name} | {results['metric']} | {results['full_data_score']:.3f} "
                    f"| `{row['strategy']}` | {_pct(row['saving'])} [{_pct(interval[0])}, "
                    f"{_pct(interval[1])}] | {mean:+.4f} [{low:+.4f}, {high:+.4f}] | {row['verdict']} |"
                )
                tally.setdefault(row["strategy"], {"win": 0, "tie": 0, "loss": 0})[
                    row["verdict"]
                ] += 1
                savings.setdefault(row["strategy"], []).append(
                    0.0 if row["saving"] is None else row["saving"]
                )
        lines += [
            "| strategy | datasets | AULC win / tie / loss vs random | median saving (never = 0) |",
            "|---|---|---|---|",
        ]
        for strategy, counts in tally.items():
            n = sum(counts.values())
            lines.append(
                f"| `{strategy}` | {n} | {counts['win']} / {counts['tie']} / {counts['loss']} "
                f"| {np.median(savings[strategy]):.0%} |"
            )
        lines += ["", *table, ""]
    lines += learner_section(done)
    lines += ["Left out: " + "; ".join(f"{k} ({v})" for k, v in SKIPPED.items()), ""]
    return "\n".join(lines)


def learner_section(
    done: list[tuple[str, str, str]], new: str = "auto", old: str = "logreg"
) -> list[str]:
    """The learner against the learner: per dataset, the AULC of ``random`` and of ``hybrid``
    with ``new`` minus with ``old`` (paired by seed: same splits, same initial sets)."""
    from tasks.model.metrics import higher_is_better

    names = [name for name, _, m in done if m == new and (name, _, old) in done]
    if not names:
        return []
    tally = {s: {"win": 0, "tie": 0, "loss": 0} for s in ("random", "hybrid")}
    table = [
        f"| dataset | full data `{old}` | full data `{new}` | `random`: AULC diff [95%] | "
        "`hybrid`: AULC diff [95%] |",
        "|---|---|---|---|---|",
    ]
    for name in names:
        a, b = (json.loads((OUT / m / name / "results.json").read_text()) for m in (new, old))
        cells = []
        for strategy in tally:
            mean, low, high = paired_interval(
                seed_aulc(a["strategies"][strategy]), seed_aulc(b["strategies"][strategy])
            )
            verdict_ = verdict(low, high, higher_is_better(a["metric"]))
            tally[strategy][verdict_] += 1
            cells.append(f"{mean:+.4f} [{low:+.4f}, {high:+.4f}] {verdict_}")
        table.append(
            f"| {name} | {b['full_data_score']:.3f} | {a['full_data_score']:.3f} | "
            + " | ".join(cells)
            + " |"
        )
    counts = "; ".join(f"`{s}` {c['win']} / {c['tie']} / {c['loss']}" for s, c in tally.items())
    return [
        f"## The learner: `{new}` against `{old}`",
        "",
        f"The same strategy with the learner `{new}` minus with `{old}`, AULC paired by seed; "
        f"win / tie / loss for `{new}` over {len(names)} datasets: {counts}.",
        "",
        *table,
        "",
    ]


def main() -> None:
    from rich.progress import Progress

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--models", default="logreg,auto")
    parser.add_argument("--only", default="", help="comma-separated dataset names")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--render-only", action="store_true")
    args = parser.parse_args()
    only = {s for s in args.only.split(",") if s}
    jobs = [
        (name, task, model)
        for model in args.models.split(",")
        for name, task in datasets()
        if not only or name in only
    ]
    done = []
    with Progress() as progress:
        bar = progress.add_task("datasets", total=len(jobs))
        for name, task, model in jobs:
            out = OUT / model / name
            cmd = command(name, task, model, args.seeds, out.relative_to(ROOT))
            record = out / "command.txt"
            fresh = record.exists() and record.read_text().strip() == shlex.join(cmd)
            if not args.render_only and not (fresh and (out / "results.json").exists()):
                progress.console.print("$", shlex.join(cmd))
                start = time.perf_counter()
                run = subprocess.run(
                    [str(Path(sys.executable).parent / cmd[0]), *cmd[1:], "--n-jobs", str(args.n_jobs)],
                    cwd=ROOT, capture_output=True, text=True,
                )  # fmt: skip
                if run.returncode != 0:
                    progress.console.print(f"{name} ({model}) failed: {run.stderr[-1500:]}")
                else:
                    record.write_text(shlex.join(cmd) + "\n")
                    progress.console.print(f"{name} ({model}): {time.perf_counter() - start:.0f} s")
            if (out / "results.json").exists():
                done.append((name, task, model))
            progress.advance(bar)
    PAGE.write_text(page(done))
    print(f"wrote {PAGE}")


if __name__ == "__main__":
    main()
