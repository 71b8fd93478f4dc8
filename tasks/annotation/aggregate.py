"""Several annotators per item: majority vote, Dawid-Skene, agreement, annotator quality, gold.

Every function takes the long annotation table of ``collect`` (one row per id x annotator, columns
``id``, ``label``, ``annotator``) and returns plain DataFrames/arrays, so they are tested without
a backend. ``log_annotator_stats`` is the only one that touches MLflow.

References
----------
Dawid, A. P. & Skene, A. M. (1979). Maximum likelihood estimation of observer error-rates using
the EM algorithm. Journal of the Royal Statistical Society C, 28(1), 20-28.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class VoteTable:
    """Annotations as counts: ``counts[i, a, k]`` = times annotator ``a`` gave item ``i`` class ``k``."""

    items: list[str]
    annotators: list[str]
    classes: list[str]
    counts: np.ndarray  # (n_items, n_annotators, n_classes)

    @property
    def votes(self) -> np.ndarray:
        """Votes per item and class, shape (n_items, n_classes)."""
        return self.counts.sum(axis=1)


def vote_table(annotations: pd.DataFrame, classes: Sequence[str] | None = None) -> VoteTable:
    """Count the annotations; ``classes`` fixes the class order (default: sorted labels seen)."""
    df = annotations.dropna(subset=["label"])
    labels = df["label"].astype(str)
    seen = sorted(labels.unique())
    classes = list(classes) if classes is not None else seen
    unknown = sorted(set(seen) - set(classes))
    if unknown:
        raise ValueError(f"annotations hold label(s) not in classes: {', '.join(unknown)}")
    items = list(dict.fromkeys(df["id"].astype(str)))
    annotators = sorted(df["annotator"].astype(str).unique())
    i = pd.Index(items).get_indexer(df["id"].astype(str))
    a = pd.Index(annotators).get_indexer(df["annotator"].astype(str))
    k = pd.Index(classes).get_indexer(labels)
    counts = np.zeros((len(items), len(annotators), len(classes)))
    np.add.at(counts, (i, a, k), 1.0)
    return VoteTable(items, annotators, classes, counts)


def majority_vote(annotations: pd.DataFrame, classes: Sequence[str] | None = None) -> pd.DataFrame:
    """One label per item: the most frequent answer (ties go to the class listed first).

    Returns ``id``, ``label``, ``n_votes`` and ``agreement`` (share of votes for that label).
    """
    table = vote_table(annotations, classes)
    votes = table.votes
    winner = votes.argmax(axis=1)
    n = votes.sum(axis=1)
    return pd.DataFrame(
        {
            "id": table.items,
            "label": [table.classes[k] for k in winner],
            "n_votes": n.astype(int),
            "agreement": votes[np.arange(len(winner)), winner] / np.maximum(n, 1),
        }
    )


@dataclass(frozen=True)
class DawidSkeneResult:
    """Fitted Dawid-Skene model: posteriors over true classes and each annotator's confusion."""

    items: list[str]
    annotators: list[str]
    classes: list[str]
    posteriors: np.ndarray  # (n_items, n_classes)
    priors: np.ndarray  # (n_classes,)
    confusion: np.ndarray  # (n_annotators, n_classes true, n_classes answered), rows sum to 1
    n_iter: int

    def labels(self) -> pd.DataFrame:
        """``id``, ``label`` (most probable class) and ``confidence`` (its posterior)."""
        best = self.posteriors.argmax(axis=1)
        return pd.DataFrame(
            {
                "id": self.items,
                "label": [self.classes[k] for k in best],
                "confidence": self.posteriors[np.arange(len(best)), best],
            }
        )

    def annotator_accuracy(self) -> pd.Series:
        """Each annotator's estimated accuracy: sum_j prior_j * confusion[a, j, j]."""
        diag = np.einsum("ajj->aj", self.confusion)
        return pd.Series(diag @ self.priors, index=self.annotators, name="ds_accuracy")


def dawid_skene(
    annotations: pd.DataFrame,
    classes: Sequence[str] | None = None,
    *,
    max_iter: int = 100,
    tol: float = 1e-6,
    smoothing: float = 0.01,
) -> DawidSkeneResult:
    """Dawid & Skene's EM: class priors and one confusion matrix per annotator.

    Initialised from the (soft) majority vote; ``smoothing`` is a pseudo-count added to every
    confusion cell so an annotator seen on few items does not get a 0/1 matrix.
    """
    table = vote_table(annotations, classes)
    posteriors, priors, confusion, n_iter = dawid_skene_em(
        table.counts, len(table.classes), max_iter=max_iter, tol=tol, smoothing=smoothing
    )
    return DawidSkeneResult(
        table.items, table.annotators, table.classes, posteriors, priors, confusion, n_iter
    )


def dawid_skene_em(
    counts: np.ndarray,
    n_classes: int,
    *,
    max_iter: int = 100,
    tol: float = 1e-6,
    smoothing: float = 0.01,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Dawid & Skene's EM on ``counts[i, a, r]`` (times source ``a`` gave item ``i`` answer ``r``;
    answers ``r >= n_classes`` are extra outcomes such as a labeling function's abstain):
    (posteriors (n, K), priors (K,), confusion (a, K, R), iterations). Initialised from the
    (soft) majority over the class answers; an item without any is uniform."""
    n_items, _, _ = counts.shape
    votes = counts[:, :, :n_classes].sum(axis=1)
    total = votes.sum(axis=1, keepdims=True)
    posteriors = np.where(total > 0, votes / np.maximum(total, 1e-12), 1.0 / n_classes)
    priors = np.full(n_classes, 1.0 / n_classes)
    confusion = np.full((counts.shape[1], n_classes, counts.shape[2]), 1.0 / counts.shape[2])
    n_iter = 0
    previous = np.inf
    for n_iter in range(1, max_iter + 1):  # noqa: B007 - n_iter is reported
        # M-step: priors and confusion[a, true j, answered r]
        priors = (posteriors.sum(axis=0) + smoothing) / (n_items + smoothing * n_classes)
        confusion = np.einsum("ij,iar->ajr", posteriors, counts) + smoothing
        confusion /= confusion.sum(axis=2, keepdims=True)
        # E-step in log space
        log_post = np.log(priors)[None, :] + np.einsum("iar,ajr->ij", counts, np.log(confusion))
        peak = log_post.max(axis=1, keepdims=True)
        posteriors = np.exp(log_post - peak)
        norm = posteriors.sum(axis=1, keepdims=True)
        posteriors /= norm
        log_lik = float(np.sum(peak + np.log(norm)))  # marginal log-likelihood of the votes
        if abs(log_lik - previous) < tol * max(1.0, abs(previous)):
            break
        previous = log_lik
    return posteriors, priors, confusion, n_iter


def aggregate(
    annotations: pd.DataFrame,
    method: str = "dawid_skene",
    classes: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One label per item by ``method`` ("majority" or "dawid_skene"), with ``n_votes`` and
    ``agreement`` (share of raw votes for the chosen label)."""
    return aggregate_with_fit(annotations, method, classes)[0]


def aggregate_with_fit(
    annotations: pd.DataFrame,
    method: str = "dawid_skene",
    classes: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, DawidSkeneResult]:
    """:func:`aggregate` and the Dawid-Skene fit on the same votes (its labels with
    ``method="dawid_skene"``; with ``"majority"`` it still estimates each annotator's accuracy),
    so a round fits EM once."""
    if method not in ("majority", "dawid_skene"):
        raise ValueError(f"unknown aggregation {method!r}; use one of majority, dawid_skene")
    fit = dawid_skene(annotations, classes)
    out = fit.labels() if method == "dawid_skene" else majority_vote(annotations, classes)
    table = vote_table(annotations, classes)
    votes = table.votes
    index = pd.Index(table.classes).get_indexer(out["label"])
    n = votes.sum(axis=1)
    out["n_votes"] = n.astype(int)
    out["agreement"] = votes[np.arange(len(index)), index] / np.maximum(n, 1)
    return out, fit


def needs_attention(
    aggregated: pd.DataFrame, threshold: float, max_annotators: int
) -> tuple[list[str], list[str]]:
    """Ids whose agreement is below ``threshold``: (send to one more annotator, flag for review).

    Items that already have ``max_annotators`` votes are flagged instead of sent again.
    """
    low = aggregated[aggregated["agreement"] < threshold]
    more = low[low["n_votes"] < max_annotators]["id"].astype(str).tolist()
    flagged = low[low["n_votes"] >= max_annotators]["id"].astype(str).tolist()
    return more, flagged


def accuracy_against(annotations: pd.DataFrame, reference: Mapping[str, Any]) -> pd.DataFrame:
    """Per annotator: ``n`` answers on items in ``reference`` (id -> label) and the share equal to
    it. Use gold answers for accuracy, or the model's predictions for agreement with the model."""
    ref = {str(k): str(v) for k, v in reference.items()}
    df = annotations[annotations["id"].astype(str).isin(ref)]
    correct = df["label"].astype(str).to_numpy() == df["id"].astype(str).map(ref).to_numpy()
    frame = pd.DataFrame({"annotator": df["annotator"].astype(str).to_numpy(), "correct": correct})
    grouped = frame.groupby("annotator")["correct"]
    return pd.DataFrame({"n": grouped.size(), "accuracy": grouped.mean()}).rename_axis("annotator")


def annotator_stats(
    annotations: pd.DataFrame,
    *,
    gold: Mapping[str, Any] | None = None,
    predictions: Mapping[str, Any] | None = None,
    classes: Sequence[str] | None = None,
    agreement: bool = True,
) -> pd.DataFrame:
    """One row per annotator: annotations, accuracy on gold items, agreement with the model,
    and (``agreement``) agreement with the majority of the others and Dawid-Skene's estimated
    accuracy."""
    stats = annotations.groupby(annotations["annotator"].astype(str)).size().to_frame("n")
    stats.index.name = "annotator"
    if gold:
        acc = accuracy_against(annotations, gold)
        stats["gold_n"] = acc["n"]
        stats["gold_accuracy"] = acc["accuracy"]
    if predictions:
        stats["model_agreement"] = accuracy_against(annotations, predictions)["accuracy"]
    if len(annotations) and agreement:
        majority = majority_vote(annotations, classes)
        stats["majority_agreement"] = accuracy_against(
            annotations, dict(zip(majority["id"], majority["label"], strict=True))
        )["accuracy"]
        stats["ds_accuracy"] = dawid_skene(annotations, classes).annotator_accuracy()
    return stats.reset_index()


def log_annotator_stats(stats: pd.DataFrame, round_: int | None = None) -> None:
    """Log ``stats`` in the active MLflow run: a JSON table artifact and one metric per annotator
    and statistic (``annotator.<name>.<stat>``, step = round)."""
    import mlflow

    from tasks.tracking.runs import finite_metrics, log_json

    suffix = f"_round_{round_:03d}" if round_ is not None else ""
    log_json(
        {"annotators": stats.to_dict(orient="records")},
        f"annotation/annotator_stats{suffix}.json",
    )
    metrics = {}
    for row in stats.to_dict(orient="records"):
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(row["annotator"]))
        metrics |= {f"annotator.{name}.{k}": v for k, v in row.items() if k != "annotator"}
    metrics = finite_metrics(metrics)
    if metrics:
        mlflow.log_metrics(metrics, step=round_ or 0)


def mix_gold(
    batch: pd.DataFrame,
    gold: pd.DataFrame,
    fraction: float,
    *,
    random_state: int | np.random.Generator | None = None,
) -> pd.DataFrame:
    """``batch`` with gold items (rows of ``gold`` with known answers) mixed in at random ranks.

    ``fraction`` is the share of the returned batch that is gold; gold rows get ``gold=True``.
    The batch keeps its order (by ``rank``); each gold row takes the ``score`` of the batch row
    it displaces, so annotators cannot tell them apart by position or score (a score may be
    missing: diversity and random picks have none).
    """
    rng = np.random.default_rng(random_state)
    out = batch.sort_values("rank", kind="stable").reset_index(drop=True)
    out["gold"] = False
    if fraction <= 0 or gold.empty or batch.empty:
        return out
    n_gold = min(len(gold), round(fraction * len(batch) / (1 - fraction)))
    if n_gold == 0:
        return out
    picked = gold.iloc[rng.choice(len(gold), size=n_gold, replace=False)].copy()
    picked = picked.drop(columns=[c for c in ("label",) if c in picked.columns])
    picked["gold"] = True
    picked["round"] = batch["round"].iloc[0]
    total = len(out) + n_gold
    at = np.sort(rng.choice(total, size=n_gold, replace=False))
    # the batch row a gold row displaces: the one that would otherwise sit at that rank
    displaced = np.minimum(at - np.arange(n_gold), len(out) - 1)
    picked["score"] = out["score"].to_numpy()[displaced]
    position = np.empty(total, dtype=np.int64)
    is_gold = np.zeros(total, dtype=bool)
    is_gold[at] = True
    position[~is_gold] = np.arange(len(out))
    position[is_gold] = len(out) + np.arange(n_gold)
    combined = pd.concat([out, picked.reset_index(drop=True)], ignore_index=True)
    combined = combined.iloc[position]
    combined["rank"] = np.arange(1, total + 1)
    return combined.reset_index(drop=True)


#: relative distance from the median within which a number counts as agreeing with it
NUMBER_TOLERANCE = 0.05


def aggregate_numbers(annotations: pd.DataFrame) -> pd.DataFrame:
    """Numeric answers (regression) per item: the median, ``n_votes``, and ``agreement`` (the
    share of answers within ``NUMBER_TOLERANCE`` of it, relative to its size)."""
    values = annotations.assign(value=pd.to_numeric(annotations["label"].astype(str)))
    rows = []
    for item, group in values.groupby("id", sort=True):
        median = float(group["value"].median())
        close = (group["value"] - median).abs() <= NUMBER_TOLERANCE * max(abs(median), 1e-9)
        rows.append((str(item), repr(median), len(group), float(close.mean())))
    return pd.DataFrame(rows, columns=["id", "label", "n_votes", "agreement"])


def aggregate_tags(annotations: pd.DataFrame) -> pd.DataFrame:
    """Tag-list answers (NER) per item: the majority tag of each token (ties: the first
    answer's), ``n_votes``, and ``agreement`` (the mean share of answers agreeing per token)."""
    import json

    rows = []
    for item, group in annotations.groupby("id", sort=True):
        answers = [json.loads(str(label)) for label in group["label"]]
        length = len(answers[0])
        if any(len(a) != length for a in answers):  # the label gate keeps lengths consistent
            raise ValueError(f"item {item!r}: answers with different numbers of tags")
        tags, shares = [], []
        for position in range(length):
            column = pd.Series([a[position] for a in answers])
            counts = column.value_counts(sort=False)
            best = (
                counts.idxmax()
                if counts.max() > counts.get(answers[0][position], 0)
                else (answers[0][position])
            )
            tags.append(best)
            shares.append(counts[best] / len(answers))
        rows.append((str(item), json.dumps(tags), len(answers), float(np.mean(shares))))
    return pd.DataFrame(rows, columns=["id", "label", "n_votes", "agreement"])
