"""Relabel or label new: at the same number of annotations, is the model trained on the consensus
labels more accurate when part of each batch asks another annotator about likely-wrong labels?

Three simulated annotators (accuracy 0.9, 0.75, 0.6, errors uniform over the other classes); an
item gets one answer from a random annotator, and each relabel one more from an annotator who has
not answered it. Per seed: a stratified 70/30 split, 20 initial items (one answer each), then
batches of 20 annotations until the budget: new items by least confidence, relabels by
:func:`tasks.loop.relabel.score_labeled` (out-of-sample probabilities, Dawid-Skene annotator
accuracies), merged with the loop's :func:`tasks.loop.relabel.relabel_queue`. Consensus as the
loop's: Dawid-Skene on items several answered, the single answer elsewhere. Seeds are paired: a
seed fixes the split, the initial items, every annotator's answer to every item and the order in
which annotators are asked, for every relabel share.

    python -m benchmarks.relabel                       # digits, breast_cancer, sms_spam; 10 seeds (~1 min)
    python -m benchmarks.relabel --datasets digits --seeds 3 --budget 200 --shares 0 0.2
    python -m benchmarks.relabel --routing             # routing none vs quality, relabel 0.4
"""

from __future__ import annotations

import argparse
import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import accuracy_score, f1_score
from threadpoolctl import threadpool_limits

from tasks.annotation.aggregate import aggregate_with_fit
from tasks.annotation.simulated import SimulatedAnnotator
from tasks.benchmark.curves import initial_rows, make_model, split
from tasks.benchmark.problems import Problem, problem_from_dataset
from tasks.benchmark.stats import bootstrap_mean
from tasks.loop import relabel

ACCURACIES = (0.9, 0.75, 0.6)
DATASETS = ("digits", "breast_cancer", "sms_spam")
SHARES = (0.0, 0.2, 0.4)


@dataclass(frozen=True)
class Crowd:
    """A seed's answers: ``answers[i, a]`` (annotator ``a``'s answer to item ``i``, drawn once)
    and ``order[i]`` (who is asked first, second, ... about item ``i``)."""

    answers: np.ndarray
    order: np.ndarray


def make_crowd(y: np.ndarray, classes: list[str], seed: int) -> Crowd:
    rng = np.random.default_rng([seed, 7])
    people = [SimulatedAnnotator(f"a{k}", accuracy=acc) for k, acc in enumerate(ACCURACIES)]
    answers = np.array([[p.answer(str(t), classes, rng) for p in people] for t in y])
    order = np.argsort(rng.random((len(y), len(people))), axis=1)
    return Crowd(answers, order)


def consensus(
    asked: dict[int, int], crowd: Crowd, classes: list[str]
) -> tuple[pd.DataFrame, pd.Series, pd.Series | None]:
    """(the answers so far: id, annotator, label, round; the consensus label per item; each
    annotator's Dawid-Skene accuracy, None before any item has several answers)."""
    rows = [
        (str(i), f"a{crowd.order[i, j]}", crowd.answers[i, crowd.order[i, j]], 1)
        for i, n in asked.items()
        for j in range(n)
    ]
    answers = pd.DataFrame(rows, columns=["id", "annotator", "label", "round"])
    labels = answers.groupby("id", sort=False)["label"].last()
    several = answers[answers.groupby("id")["annotator"].transform("size").gt(1)]
    accuracy = None
    if len(several):
        agreed, fit = aggregate_with_fit(several, "dawid_skene", classes)
        labels.loc[agreed["id"].to_numpy()] = agreed["label"].to_numpy()
        accuracy = fit.annotator_accuracy()
    return answers, labels, accuracy


def route_first(order: np.ndarray, item: int, allowed: set[int]) -> None:
    """Ask one of ``allowed`` first about ``item`` (the first of them in its order), the
    others after, in their order: what ``annotation.routing`` does to a new item."""
    first = next(a for a in order[item] if a in allowed)
    order[item] = [first, *[a for a in order[item] if a != first]]


def run(
    problem: Problem, seed: int, share: float, budget: int, batch: int, routing: bool = False
) -> list[float]:
    """Test accuracy and macro-F1 of the model trained on the consensus at the budget, the
    labeled items and the share of their consensus labels that are right. ``routing``: the
    harder half of each batch's new items goes first to the better half of the annotators by
    their Dawid-Skene accuracy so far (:func:`tasks.loop.routing.routes`)."""
    from tasks.loop.routing import routes

    pool, test = split(problem, 0.3, seed)
    X, y = problem.X[pool], problem.y[pool]
    classes = sorted(np.unique(problem.y).astype(str))
    crowd = make_crowd(y, classes, seed)
    crowd = Crowd(crowd.answers, crowd.order.copy())  # routing reorders who is asked first
    names = [f"a{k}" for k in range(len(ACCURACIES))]
    model = make_model("logreg", problem, seed)
    asked = {int(i): 1 for i in initial_rows(problem, pool, 20, seed)}
    spent = len(asked)
    while True:
        answers, labels, accuracy = consensus(asked, crowd, classes)
        rows = labels.index.astype(int).to_numpy()
        fitted = clone(model).fit(X[rows], labels.to_numpy())
        if spent >= budget:
            break
        size = min(batch, budget - spent)
        unlabeled = np.setdiff1d(np.arange(len(y)), rows)
        new_probas = fitted.predict_proba(X[unlabeled])
        ranked = np.argsort(new_probas.max(axis=1), kind="stable")[:size]  # least confidence
        kinds, picks = np.zeros(len(ranked), dtype=bool), np.arange(len(ranked))
        if share > 0:
            probas, seen = relabel.out_of_sample_probas(model, X[rows], labels.to_numpy(), seed)
            full = np.zeros((len(rows), len(classes)))
            full[:, [classes.index(c) for c in seen]] = probas
            judged = relabel.score_labeled(answers, labels, full, classes, accuracy)
            eligible = np.array([asked[i] < len(ACCURACIES) for i in rows])
            kinds, picks = relabel.relabel_queue(new_probas[ranked], judged, eligible, size, share)
        new_items = [
            int(unlabeled[ranked[k]]) for again, k in zip(kinds, picks, strict=True) if not again
        ]
        if routing and accuracy is not None and new_items:
            hardness = 1.0 - new_probas[[np.flatnonzero(unlabeled == i)[0] for i in new_items]].max(
                axis=1
            )
            frame = pd.DataFrame({"id": new_items, "score": hardness})
            for item, route in zip(new_items, routes(frame, accuracy, names), strict=True):
                route_first(crowd.order, item, {names.index(n) for n in route.split("|")})
        for again, k in zip(kinds, picks, strict=True):
            if again:
                asked[int(rows[k])] += 1
            else:
                asked[int(unlabeled[ranked[k]])] = 1
        spent += len(kinds)
    predicted = fitted.predict(problem.X[test])
    truth = problem.y[test]
    right = float(np.mean(labels.to_numpy() == y[rows]))
    return [
        accuracy_score(truth, predicted),
        f1_score(truth, predicted, average="macro"),
        len(rows),
        right,
    ]


def table(results: dict[tuple[str, float], np.ndarray], shares: list[float]) -> str:
    """Markdown: per dataset and share, the means of the labeled items, of the share of right
    consensus labels, of accuracy and macro-F1, and the paired differences of the last two
    against the first share with their 95% bootstrap intervals over seeds."""
    lines = [
        "| dataset | relabel_share | items | labels right | accuracy | Δ accuracy [95% CI] "
        "| macro-F1 | Δ macro-F1 [95% CI] |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (name, share), scores in results.items():
        base = results[(name, shares[0])]
        cells = [name, f"{share:g}", f"{scores[:, 2].mean():.0f}", f"{scores[:, 3].mean():.3f}"]
        for m in range(2):
            cells.append(f"{scores[:, m].mean():.3f}")
            if share == shares[0]:
                cells.append("—")
                continue
            mean, low, high = bootstrap_mean(scores[:, m] - base[:, m])
            cells.append(f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS))
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budget", type=int, default=300, help="annotations in total")
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--shares", nargs="+", type=float, default=list(SHARES))
    parser.add_argument(
        "--routing",
        action="store_true",
        help="compare annotation.routing none vs quality at the largest share instead",
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=RuntimeWarning)  # folds missing a rare class
    start = time.perf_counter()
    results: dict[tuple[str, float], np.ndarray] = {}
    with threadpool_limits(1):
        for name in args.datasets:
            problem = problem_from_dataset(name)
            if args.routing:  # rows keyed 0: no routing, 1: routing, both at the largest share
                share = max(args.shares)
                for on in (0.0, 1.0):
                    results[(name, on)] = np.array(
                        [
                            run(problem, s, share, args.budget, args.batch, routing=bool(on))
                            for s in range(args.seeds)
                        ]
                    )
                continue
            for share in args.shares:
                results[(name, share)] = np.array(
                    [run(problem, s, share, args.budget, args.batch) for s in range(args.seeds)]
                )
    print(
        f"{args.seeds} seeds, {args.budget} annotations, batches of {args.batch}, annotators "
        f"{'/'.join(map(str, ACCURACIES))}, logreg ({time.perf_counter() - start:.0f} s)\n"
    )
    if args.routing:
        print(f"relabel_share {max(args.shares):g}; the second column: routing (0 none, 1 quality)")
        print(table(results, [0.0, 1.0]).replace("relabel_share", "routing"))
    else:
        print(table(results, args.shares))


if __name__ == "__main__":
    main()
