"""`make bench-suite`: the label-efficiency suite over the bundled real datasets -> docs/benchmarks-suite.md.

Each entry runs `labelwise benchmark` (the same code path users run on their data) and the
results are collected into one Markdown page with the command that reproduces each table.

    python benchmarks/suite.py                       # every entry, 10 seeds
    python benchmarks/suite.py --only breast_cancer,digits --seeds 3
    python benchmarks/suite.py --only mnist_subset --rerun-strategies hybrid --n-jobs 1

``--rerun-strategies`` reruns only those strategies (and random) of an entry and keeps the other
strategies' curves from its committed results.json; random's rerun must reproduce its committed
curves (to 1e-9), or nothing is merged (the kept curves would not be comparable).
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
STRATEGIES = "random,margin,entropy,hybrid,density_weighted,coreset"

# (entry name, dataset, extra CLI flags)
SUITE: list[tuple[str, str, list[str]]] = [
    ("breast_cancer", "breast_cancer", []),
    ("wine", "wine", ["--initial", "6", "--batch-size", "5", "--budget", "100"]),
    ("image_segments", "image_segments", []),
    ("adult", "adult", ["--budget", "400"]),
    ("credit_default", "credit_default", ["--metric", "minority_recall", "--budget", "400"]),
    ("credit_default_acc", "credit_default", ["--budget", "400"]),
    ("sms_spam_tfidf", "sms_spam", ["--metric", "macro_f1"]),
    ("sms_spam_embeddings", "sms_spam", ["--metric", "macro_f1", "--embeddings"]),
    (
        "newsgroups_tfidf",
        "newsgroups",
        ["--initial", "40", "--batch-size", "40", "--budget", "600"],
    ),
    (
        "twitter_ner",
        "twitter_ner",
        [
            "--metric",
            "token_f1",
            "--strategies",
            "random,sequence_margin_max,sequence_margin_mean,sequence_margin_sum",
            "--initial",
            "20",
            "--batch-size",
            "20",
            "--budget",
            "400",
        ],
    ),
    ("digits", "digits", []),
    ("mnist_subset", "mnist_subset", ["--budget", "600"]),
    (
        "diabetes",
        "diabetes",
        [
            "--metric",
            "rmse",
            "--strategies",
            "random,variance,hybrid",
            "--budget",
            "200",
            "--batch-size",
            "10",
            "--initial",
            "10",
        ],
    ),
    (
        "abalone",
        "abalone",
        [
            "--metric",
            "rmse",
            "--strategies",
            "random,variance,variance_density,representative,hybrid",
            "--budget",
            "300",
            "--batch-size",
            "10",
            "--initial",
            "10",
        ],
    ),
]


def command(dataset: str, flags: list[str], seeds: int, out: Path) -> list[str]:
    cmd = ["labelwise", "benchmark", "--dataset", dataset, "--seeds", str(seeds), "--out", str(out)]
    if "--strategies" not in flags:
        cmd += ["--strategies", STRATEGIES]
    return cmd + flags


DEFAULT = "hybrid"
# the default's stand-in where it does not apply: regression, and token tagging (sentence items,
# scored by the sequence strategy's default aggregate, max)
STAND_INS = ("variance", "sequence_margin_max")


def headline(entries: list[dict]) -> list[str]:
    """One row per entry: the default strategy against random at 95% of the full-data score."""
    rows = [
        f"| entry | metric | labels to 95%: random | labels to 95%: `{DEFAULT}` (or "
        "`variance`, `sequence_margin_max`) "
        "| saving | AULC random | AULC default |",
        "|---|---|---|---|---|---|---|",
    ]
    for entry in entries:
        path = ROOT / "docs" / "benchmarks" / entry["name"] / "results.json"
        if entry.get("error") or not path.exists():
            continue
        res = json.loads(path.read_text())
        name = next((n for n in (DEFAULT, *STAND_INS) if n in res["strategies"]), None)
        if name is None:
            continue
        ours, base = res["strategies"][name], res["strategies"]["random"]
        n_ours, n_base = ours["labels_to_target"]["0.95"], base["labels_to_target"]["0.95"]
        if n_ours is not None and n_base is not None:
            saved = f"{1 - n_ours / n_base:.0%}"
        elif n_ours is not None:
            saved = f">= {1 - n_ours / base['labels'][-1]:.0%} (random never reaches it)"
        else:
            saved = "-"
        rows.append(
            f"| {entry['name']} | {res['metric']} | {n_base if n_base is not None else '> ' + str(base['labels'][-1])} "
            f"| {n_ours if n_ours is not None else '> ' + str(ours['labels'][-1])} | {saved} "
            f"| {base['aulc']:.4f} | {ours['aulc']:.4f} |"
        )
    return rows


def page(entries: list[dict]) -> str:
    from tasks.benchmark.report import summary_markdown

    lines = [
        "# Label-efficiency benchmarks",
        "",
        "Every number below comes from `make bench-suite` (`python benchmarks/suite.py`); each table",
        "gives the `labelwise benchmark` command that reproduces it. Savings are `1 - labels(strategy)",
        "/ labels(random)` to reach 95% / 99% of the full-data score (the model trained on the whole",
        "pool), with a 95% bootstrap interval over seeds; `>= x%` means random did not reach the",
        "target within the budget, so the saving is at least that. AULC: mean score over the budget",
        "(for rmse, lower is better). Learning curves are on a grid of `--batch-size` labels, so",
        "labels-to-target are multiples of it.",
        "",
        "## Headline",
        "",
        *headline(entries),
        "",
    ]
    for entry in entries:
        lines += [f"## {entry['name']}", "", "```", entry["command"], "```", ""]
        if entry.get("rerun"):
            rerun = ", ".join(f"`{n}`" for n in entry["rerun"])
            words = entry["command"].split()
            seeds = words[words.index("--seeds") + 1] if "--seeds" in words else "10"
            lines += [
                f"Only {rerun} run now (`python benchmarks/suite.py --only {entry['name']} "
                f"--seeds {seeds} --rerun-strategies {','.join(entry['rerun'])} --n-jobs 1`); "
                "`random` was rerun too and reproduced its committed curves (to 1e-9), the other "
                "rows are the committed runs (same code, same seeds). The wall time is the "
                "rerun's.",
                "",
            ]
        if entry.get("error"):
            lines += [f"Not run: {entry['error']}", ""]
            continue
        path = ROOT / "docs" / "benchmarks" / entry["name"] / "results.json"
        summary = (
            summary_markdown(json.loads(path.read_text())) if path.exists() else entry["summary"]
        )
        lines += [summary, f"![learning curves]({entry['plot']})", ""]
        lines += [f"Wall time: {entry['seconds']:.0f} s.", ""]
    for extra in ("peers.md", "targets.md"):  # peers' side-by-side run; where the targets stand
        path = ROOT / "docs" / "benchmarks" / extra
        if path.exists():
            lines += [path.read_text()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--only", default="", help="comma-separated entry names")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks"))
    parser.add_argument("--render-only", action="store_true", help="rebuild the page, run nothing")
    parser.add_argument("--n-jobs", type=int, default=2, help="parallel processes per entry")
    parser.add_argument(
        "--rerun-strategies",
        default="",
        help="comma-separated: rerun only these (and random), keep the others' committed curves",
    )
    args = parser.parse_args()
    rerun = [s for s in args.rerun_strategies.split(",") if s]
    only = {s for s in args.only.split(",") if s}
    out_root = Path(args.out)
    entries = []
    index = out_root / "index.json"
    if index.exists():  # keep earlier entries when re-running some of them
        entries = [e for e in json.loads(index.read_text()) if e["name"] not in only]
    for name, dataset, flags in SUITE:
        if args.render_only or (only and name not in only):
            continue
        out = out_root / name
        cmd = command(
            dataset, flags, args.seeds, out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
        )
        run_cmd = [*cmd, "--n-jobs", str(args.n_jobs)]
        tmp = None
        if rerun:
            tmp = tempfile.TemporaryDirectory()
            run_cmd = with_flag(
                with_flag(run_cmd, "--strategies", ",".join(rerun)), "--out", tmp.name
            )
        print("$", shlex.join(run_cmd), flush=True)
        start = time.perf_counter()
        done = subprocess.run(
            [str(Path(sys.executable).parent / run_cmd[0]), *run_cmd[1:]],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        entry = {"name": name, "command": shlex.join(cmd), "seconds": time.perf_counter() - start}
        if done.returncode == 0 and tmp is not None:
            try:
                merge_rerun(out if out.is_absolute() else ROOT / out, Path(tmp.name), rerun)
                entry["rerun"] = rerun
            except ValueError as err:
                done = subprocess.CompletedProcess(run_cmd, 1, "", str(err))
            finally:
                tmp.cleanup()
        if done.returncode != 0:
            entry["error"] = " ".join((done.stderr or done.stdout).strip().splitlines()[-1:])
            print(done.stdout[-2000:], done.stderr[-2000:])
        else:
            entry["summary"] = (out / "summary.md").read_text()
            entry["plot"] = f"benchmarks/{name}/learning_curves.png"
            entry["results"] = json.loads((out / "results.json").read_text())["savings_vs_random"]
        entries = [e for e in entries if e["name"] != name] + [entry]
        out_root.mkdir(parents=True, exist_ok=True)
        index.write_text(json.dumps(entries, indent=2))
        write_page(entries, out_root)
    write_page(entries, out_root)
    print(f"wrote {out_root.parent / 'benchmarks-suite.md'}")


def with_flag(cmd: list[str], flag: str, value: str) -> list[str]:
    """``cmd`` with ``flag``'s value replaced (or the flag appended)."""
    if flag in cmd:
        i = cmd.index(flag)
        return [*cmd[: i + 1], value, *cmd[i + 2 :]]
    return [*cmd, flag, value]


def merge_rerun(out: Path, fresh_dir: Path, rerun: list[str]) -> None:
    """Replace ``rerun``'s curves in ``out/results.json`` with the fresh run's and recompute the
    summary; refuses unless the fresh random curves equal the committed ones to 1e-9."""
    import numpy as np

    from tasks.benchmark.curves import BenchmarkConfig
    from tasks.benchmark.report import write_outputs
    from tasks.benchmark.stats import summarise

    old = json.loads((out / "results.json").read_text())
    new = json.loads((fresh_dir / "results.json").read_text())
    if not np.allclose(  # rmse curves differ in the last bits between BLAS runs
        old["strategies"]["random"]["scores"],
        new["strategies"]["random"]["scores"],
        rtol=0,
        atol=1e-9,
    ):
        raise ValueError(f"{out.name}: random did not reproduce its committed curves; rerun all")
    if not np.isclose(old["full_data_score"], new["full_data_score"]):
        raise ValueError(f"{out.name}: full-data score changed; rerun all")
    config = BenchmarkConfig(**old["config"])
    config.strategies = [*config.strategies, *(s for s in rerun if s not in config.strategies)]
    runs = []
    for name in config.strategies:
        info = new["strategies"][name] if name in rerun else old["strategies"][name]
        for seed, scores in enumerate(info["scores"]):
            runs.append(
                {
                    "strategy": name,
                    "seed": seed,
                    "labels": info["labels"],
                    "scores": scores,
                    "query_seconds": info["query_seconds"],
                }
            )
    problem = SimpleNamespace(name=old["dataset"], y=np.empty(old["n_pool"] + old["n_test"]))
    results = summarise(problem, config, runs, old["full_data_score"])
    results["wall_seconds"] = new.get("wall_seconds")
    write_outputs(results, out, config.cost_per_label)


def write_page(entries: list[dict], out_root: Path) -> None:
    order = {n: i for i, (n, _, _) in enumerate(SUITE)}
    entries.sort(key=lambda e: order.get(e["name"], 99))
    (out_root.parent / "benchmarks-suite.md").write_text(page(entries))


if __name__ == "__main__":
    main()
