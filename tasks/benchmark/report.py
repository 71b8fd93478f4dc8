"""Benchmark report: learning-curve plot, Markdown summary, the output files and the MLflow run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from tasks.benchmark.stats import TARGETS


def plot_curves(results: dict[str, Any], path: Path) -> Path:
    """Mean and 95% band (over seeds) per strategy, with the full-data line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, info in results["strategies"].items():
        x = np.array(info["labels"])
        s = np.array(info["scores"])
        mean = s.mean(0)
        half = 1.96 * s.std(0, ddof=1) / np.sqrt(s.shape[0]) if s.shape[0] > 1 else 0 * mean
        ax.plot(x, mean, label=name, lw=2 if name == "random" else 1.5)
        ax.fill_between(x, mean - half, mean + half, alpha=0.15)
    ax.axhline(results["full_data_score"], color="k", ls="--", lw=1, label="full data")
    ax.set_xlabel("labeled examples")
    ax.set_ylabel(results["metric"])
    ax.set_title(f"{results['dataset']} ({results['model']}, {len(s)} seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _fmt_saving(value: float | None, interval: tuple[float | None, float | None]) -> str:
    if value is None:
        return "-"
    low, high = interval
    band = f" [{low:.0%}, {high:.0%}]" if low is not None else ""
    return f"{value:.0%}{band}"


def summary_markdown(results: dict[str, Any], cost_per_label: float | None = None) -> str:
    """The summary table: labels to 95%/99%, savings with bootstrap intervals, AULC, cost saved."""
    head = "| strategy | labels to 95% | labels to 99% | saving @95% [95% CI] | saving @99% [95% CI] | AULC |"
    sep = "|---|---|---|---|---|---|"
    if cost_per_label is not None:
        head += " cost saved @95% |"
        sep += "---|"
    lines = [
        f"**{results['dataset']}**: pool {results['n_pool']}, test {results['n_test']}, "
        f"metric {results['metric']}, model {results['model']}, full-data score "
        f"{results['full_data_score']:.4f}",
        "",
        head,
        sep,
    ]
    savings = results.get("savings_vs_random", {})
    intervals = results.get("savings_interval_95", {})
    base = results["strategies"].get("random", {}).get("labels_to_target", {})
    last = max(info["labels"][-1] for info in results["strategies"].values())
    for name, info in results["strategies"].items():
        ltt = info["labels_to_target"]
        at_least = {  # reached by the strategy, never by random within the budget: a lower bound
            t: f">= {1 - ltt[t] / last:.0%}"
            for t in TARGETS
            if ltt[t] is not None and base.get(t) is None and name != "random"
        }
        row = [
            f"`{name}`",
            str(ltt["0.95"] if ltt["0.95"] is not None else f"> {info['labels'][-1]}"),
            str(ltt["0.99"] if ltt["0.99"] is not None else f"> {info['labels'][-1]}"),
            at_least.get("0.95")
            or _fmt_saving(
                savings.get(name, {}).get("0.95"), intervals.get(name, {}).get("0.95", (None, None))
            ),
            at_least.get("0.99")
            or _fmt_saving(
                savings.get(name, {}).get("0.99"), intervals.get(name, {}).get("0.99", (None, None))
            ),
            f"{info['aulc']:.4f}",
        ]
        if cost_per_label is not None:
            if ltt["0.95"] is not None and base.get("0.95") is not None:
                row.append(f"{(base['0.95'] - ltt['0.95']) * cost_per_label:,.2f}")
            else:
                row.append("-")
        lines.append("| " + " | ".join(row) + " |")
    if "labeling_functions" in results:
        lines += weak_markdown(results)
    if "self_training" in results:
        st = results["self_training"]
        low, high = st["interval_95"] or (None, None)

        def pct(value: float | None) -> str:
            return "-" if value is None else f"{value:.0%}"

        lines += [
            "",
            "Rows ending in `+st` are self-trained on their own confident pseudo-labels and "
            "measured against `random+st`: the strategy's effect with self-training on. "
            f"Self-training alone (`random+st` against `random`): final score "
            f"{st['final_score_gain']:+.4f}, labels saved to reach random's final score "
            f"{pct(st['saving'])} [{pct(low)}, {pct(high)}].",
        ]
    return "\n".join(lines) + "\n"


def weak_markdown(results: dict[str, Any]) -> list[str]:
    """Active learning alone, the labeling functions alone and the two together: each run's
    final score and the human labels it needs to reach random's final score (with that saving
    vs random) and 99% of the full-data score; whether the functions alone reach either."""
    from tasks.benchmark.stats import first_reaching, reached, target_value

    weak = results["labeling_functions"]
    metric = results["metric"]
    random = np.array(results["strategies"]["random"]["scores"]).mean(axis=0)
    goal = float(random[-1])
    full99 = target_value(results["full_data_score"], 0.99, metric)
    final = results.get("savings_vs_random_final", {})

    def yes(score: float, target: float) -> str:
        return "yes" if reached(score, target, metric) else "no"

    lines = [
        "",
        f"**Labeling functions** `{weak['module']}` ({len(weak['functions'])} functions, label "
        f"model {weak['label_model']}, weak weight {weak['weak_weight']}): weak labels on "
        f"{weak['weak_label_coverage']:.1%} of the pool, {weak['weak_label_accuracy']:.1%} right. "
        f"The functions alone (with the {weak['initial_labels']} initial labels): "
        f"{metric} {weak['score']:.4f}; reaches random's final score {goal:.4f}: "
        f"{yes(weak['score'], goal)}; reaches 99% of the full-data score ({full99:.4f}): "
        f"{yes(weak['score'], full99)}; reaches the full-data score: "
        f"{yes(weak['score'], results['full_data_score'])}.",
        "",
        "| run | final score | human labels to random's final | saving [95% CI] "
        "| human labels to 99% of full | to the full-data score | AULC |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, info in results["strategies"].items():
        mean = np.array(info["scores"]).mean(axis=0)
        last = info["labels"][-1]
        cells = []
        for target in (goal, full99, results["full_data_score"]):
            n = first_reaching(info["labels"], mean, target, metric)
            cells.append(str(n) if n is not None else f"> {last}")
        entry = final.get(name, {})
        interval = entry.get("interval_95") or (None, None)
        saved = _fmt_saving(entry.get("saving"), tuple(interval))
        lines.append(
            f"| `{name}` | {mean[-1]:.4f} | {cells[0]} | {saved} | {cells[1]} | {cells[2]} "
            f"| {info['aulc']:.4f} |"
        )
    return lines


def write_outputs(
    results: dict[str, Any], out: Path, cost_per_label: float | None = None
) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "results": out / "results.json",
        "plot": out / "learning_curves.png",
        "summary": out / "summary.md",
    }
    paths["results"].write_text(json.dumps(results, indent=2))
    plot_curves(results, paths["plot"])
    paths["summary"].write_text(summary_markdown(results, cost_per_label))
    return paths


def log_to_mlflow(results: dict[str, Any], paths: dict[str, Path], settings: Any) -> str:
    """One MLflow run per benchmark in the ``<project>-benchmarks`` experiment; returns its id."""
    import mlflow

    from tasks.tracking.runs import setup_tracking

    settings = settings.model_copy(deep=True)
    settings.tracking.experiment = f"{settings.project.name}-benchmarks"
    setup_tracking(settings)
    with mlflow.start_run(run_name=f"benchmark-{results['dataset']}") as run:
        mlflow.log_params({k: v for k, v in results["config"].items() if k != "strategies"})
        mlflow.log_params(
            {"dataset": results["dataset"], "strategies": ",".join(results["strategies"])}
        )
        mlflow.log_metric("full_data_score", results["full_data_score"])
        for name, info in results["strategies"].items():
            mlflow.log_metric(f"aulc.{name}", info["aulc"])
            for t, n in info["labels_to_target"].items():
                if n is not None:
                    mlflow.log_metric(f"labels_to_{t}.{name}", n)
            mean = np.mean(info["scores"], axis=0)
            for n, score in zip(info["labels"], mean, strict=True):
                mlflow.log_metric(f"curve.{name}", float(score), step=int(n))
        for path in paths.values():
            mlflow.log_artifact(str(path))
        return run.info.run_id
