"""Does self-training help? `labelwise benchmark --semi-supervised` on the broad suite's
classification datasets, one configuration for all -> docs/benchmarks-self-training.md.

Each dataset runs random, margin and auto with and without self-training (``+st``) on the same
splits and initial sets (paired by seed), so the two effects stay apart: self-training alone is
``random+st`` against ``random``; the strategies' effect with it on is ``margin+st`` /
``auto+st`` against ``random+st``; and what turning it on would give a user is ``auto+st``
against ``random``. Resumable: a dataset whose results.json holds the same command is skipped.

    python benchmarks/self_training.py --models logreg --seeds 5
    python benchmarks/self_training.py --only breast_cancer,wine --models auto
    python benchmarks/self_training.py --render-only
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from broad import CONFIG, datasets, paired_interval, seed_aulc, verdict

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "benchmarks" / "self_training"
PAGE = ROOT / "docs" / "benchmarks-self-training.md"
STRATEGIES = "random,margin,auto"
#: (label, run, baseline) of each comparison in the table
PAIRS = [
    ("self-training alone", "random+st", "random"),
    ("margin", "margin", "random"),
    ("margin, self-trained", "margin+st", "random+st"),
    ("auto", "auto", "random"),
    ("auto, self-trained", "auto+st", "random+st"),
    ("auto+st vs plain random", "auto+st", "random"),
]


def command(name: str, model: str, seeds: int, out: Path) -> list[str]:
    return [
        "labelwise", "benchmark", "--dataset", name, "--model", model, "--seeds", str(seeds),
        "--strategies", STRATEGIES, "--metric", "macro_f1", *CONFIG, "--semi-supervised",
        "--no-mlflow", "--out", str(out),
    ]  # fmt: skip


def run(names: list[str], models: list[str], seeds: int) -> None:
    for model in models:
        for name in names:
            out = OUT / model / name
            cmd = command(name, model, seeds, out)
            done = out / "results.json"
            if done.exists() and json.loads(done.read_text()).get("command") == shlex.join(cmd):
                continue
            start = time.perf_counter()
            exe = [sys.executable, "-m", "flows.cli", *cmd[1:]]
            result = subprocess.run(exe, cwd=ROOT, capture_output=True, text=True)
            if result.returncode != 0:
                print(f"{model}/{name}: failed\n{result.stdout[-800:]}{result.stderr[-800:]}")
                continue
            results = json.loads(done.read_text())
            results["command"] = shlex.join(cmd)
            done.write_text(json.dumps(results))
            print(f"{model}/{name}: {time.perf_counter() - start:.0f} s", flush=True)


def final_scores(info: dict) -> np.ndarray:
    return np.asarray(info["scores"], dtype=float)[:, -1]


def comparisons(results: dict) -> dict[str, dict]:
    """Per pair: final macro-F1 and AULC differences (paired over seeds) and their verdicts."""
    runs = results["strategies"]
    out = {}
    for label, ours, base in PAIRS:
        if ours not in runs or base not in runs:
            continue
        final = paired_interval(final_scores(runs[ours]), final_scores(runs[base]))
        area = paired_interval(seed_aulc(runs[ours]), seed_aulc(runs[base]))
        out[label] = {
            "final": final,
            "aulc": area,
            "verdict": verdict(area[1], area[2], True),
        }
    return out


def render(models: list[str]) -> str:
    lines = [
        "# Self-training: does the unlabeled pool help?",
        "",
        "`model.semi_supervised: self_training` refits each round's classifier with its own",
        "predictions of probability >= 0.9 on (up to 5,000) unlabeled pool rows, each weighted",
        "0.5 x its probability (`tasks/model/semi.py`). Measured with",
        "`python benchmarks/self_training.py` on the broad suite's classification datasets:",
        f"strategies {STRATEGIES} each with and without self-training (`+st`), macro-F1, 20",
        "initial labels, batches of 20 to 200 labels, paired by seed. Cells: AULC difference",
        "(mean over seeds, 95% paired bootstrap interval) and the verdict (win / tie / loss:",
        "the interval above, across or below 0); `final` is the macro-F1 difference at 200.",
        "",
    ]
    for model in models:
        folder = OUT / model
        entries = sorted(p for p in folder.glob("*/results.json")) if folder.exists() else []
        if not entries:
            continue
        table: dict[str, dict] = {}
        seeds = set()
        for path in entries:
            results = json.loads(path.read_text())
            table[path.parent.name] = comparisons(results)
            seeds.add(results["config"]["seeds"])
        lines += [f"## model `{model}` ({len(table)} datasets, {sorted(seeds)} seeds)", ""]
        lines += headline(table)
        alone = [row["self-training alone"]["verdict"] for row in table.values()]
        wins, losses = alone.count("win"), alone.count("loss")
        keep = (
            "it loses at least as often as it wins"
            if wins <= losses
            else "it wins more often than it loses here; the default stays off until the whole "
            "suite with this learner agrees"
        )
        lines += [
            f"Self-training alone (random+st against random) wins on {wins}, ties on "
            f"{alone.count('tie')} and loses on {losses} of {len(alone)} datasets by AULC: "
            f"{keep} (`model.semi_supervised: null` by default).",
            "",
        ]
        labels = [label for label, _, _ in PAIRS]
        lines += ["| dataset | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
        for name, row in table.items():
            cells = []
            for label in labels:
                cell = row.get(label)
                if cell is None:
                    cells.append("-")
                    continue
                mean, low, high = cell["aulc"]
                fmean = cell["final"][0]
                cells.append(
                    f"{mean:+.3f} [{low:+.3f}, {high:+.3f}] {cell['verdict']}; final {fmean:+.3f}"
                )
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def headline(table: dict[str, dict]) -> list[str]:
    """Win/tie/loss counts and the median AULC difference of each comparison."""
    out = ["| comparison | median AULC diff | median final diff | win / tie / loss |"]
    out.append("|---|---|---|---|")
    for label, _, _ in PAIRS:
        cells = [row[label] for row in table.values() if label in row]
        if not cells:
            continue
        verdicts = [c["verdict"] for c in cells]
        counts = " / ".join(str(verdicts.count(v)) for v in ("win", "tie", "loss"))
        area = float(np.median([c["aulc"][0] for c in cells]))
        final = float(np.median([c["final"][0] for c in cells]))
        out.append(f"| {label} | {area:+.4f} | {final:+.4f} | {counts} |")
    return [*out, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--models", default="logreg", help="comma-separated learners")
    parser.add_argument("--only", default="", help="comma-separated dataset names")
    parser.add_argument("--render-only", action="store_true")
    args = parser.parse_args()
    models = [m for m in args.models.split(",") if m]
    names = [n for n, task in datasets() if task == "classification"]
    if args.only:
        names = [n for n in names if n in set(args.only.split(","))]
    if not args.render_only:
        run(names, models, args.seeds)
    PAGE.write_text(render(models))
    print(f"wrote {PAGE}")


if __name__ == "__main__":
    main()
