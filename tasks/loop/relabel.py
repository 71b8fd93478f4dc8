"""Relabel or label new in a round: score the labeled items whose consensus is likely wrong
against the strategy's new picks (:mod:`strategies.relabel`), one queue capped by
``annotation.relabel_share``; a relabel pick goes to one more annotator at dispatch."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from strategies import relabel as scoring

#: folds of the out-of-sample probabilities of the labeled items
FOLDS = 3
#: answers on several-answered items at which Dawid-Skene's accuracy and the model's agreement
#: weigh the same in an annotator's accuracy
SHRINK = 20
#: the manifest source of a relabel pick
RELABEL = "relabel"


@dataclass(frozen=True)
class LabeledScores:
    """The relabel score of each labeled item, and the weights that put new items on its scale."""

    wrong: np.ndarray  # P(consensus label wrong), one per labeled item
    model_weight: float
    prior_weight: float

    def new_items(self, probas: np.ndarray) -> np.ndarray:
        """Unlabeled items' informativeness on the same scale (:func:`new_item_scores`)."""
        return scoring.new_item_scores(
            probas, model_weight=self.model_weight, prior_weight=self.prior_weight
        )


def out_of_sample_probas(
    estimator: Any, X: Any, y: np.ndarray, seed: int = 0
) -> tuple[np.ndarray, list[str]]:
    """Cross-validated class probabilities of the labeled items (a model scoring its own
    training labels agrees with their errors), and their class order."""
    y = np.asarray(y).astype(str)
    classes, counts = np.unique(y, return_counts=True)
    folds = StratifiedKFold(max(2, min(FOLDS, int(counts.min()))), shuffle=True, random_state=seed)
    with warnings.catch_warnings():  # a class with fewer members than folds: still fine
        warnings.filterwarnings("ignore", message="The least populated class")
        warnings.filterwarnings("ignore", message="Number of classes in training fold")
        probas = cross_val_predict(clone(estimator), X, y, cv=folds, method="predict_proba")
    return np.asarray(probas, dtype=np.float64), [str(c) for c in classes]


def annotator_accuracy(
    answers: pd.DataFrame, predicted: pd.Series, estimated: pd.Series | None
) -> pd.Series:
    """Each annotator's accuracy: their agreement with the model's out-of-sample predictions
    (``predicted``: id -> class) on all their answers, moved towards Dawid-Skene's estimate
    (``estimated``) by their ``n`` answers on items several answered, ``(n * ds + SHRINK *
    agreement) / (n + SHRINK)``: the relabeled items are the disputed ones, so an estimate from
    a few of them alone is far off."""
    who = answers["annotator"].astype(str)
    agrees = answers["label"].astype(str).to_numpy() == answers["id"].map(predicted).to_numpy()
    agreement = pd.Series(agrees, index=who.to_numpy()).groupby(level=0).mean()
    if estimated is None:
        return agreement
    several = answers.groupby("id")["annotator"].transform("nunique").gt(1).to_numpy()
    n = who[several].value_counts().reindex(agreement.index, fill_value=0)
    ds = estimated.reindex(agreement.index)
    n = n.where(ds.notna(), 0)
    return (n * ds.fillna(0.0) + SHRINK * agreement) / (n + SHRINK)


def score_labeled(
    answers: pd.DataFrame,
    labels: pd.Series,
    probas: np.ndarray,
    classes: list[str],
    estimated: pd.Series | None = None,
) -> LabeledScores:
    """:func:`strategies.relabel.consensus_wrong` of each item of ``labels`` (id -> consensus
    label, in the rows of ``probas``: out-of-sample, columns ``classes``) from its current
    ``answers`` (id, annotator, label); ``estimated``: Dawid-Skene's annotator accuracies."""
    index = pd.Index(classes)
    ids = pd.Index(labels.index.astype(str))
    consensus = index.get_indexer(labels.astype(str))
    predicted = pd.Series(np.asarray(classes)[probas.argmax(axis=1)], index=ids)
    answers = answers[answers["id"].astype(str).isin(ids)]
    answers = answers[answers["label"].astype(str).isin(index)]
    baseline = float(labels.astype(str).value_counts(normalize=True).max())
    accuracy = annotator_accuracy(answers, predicted, estimated)
    weights = pd.Series(scoring.source_weight(accuracy.to_numpy(), baseline), index=accuracy.index)
    votes = np.zeros((len(ids), len(classes)))
    rows = ids.get_indexer(answers["id"].astype(str))
    columns = index.get_indexer(answers["label"].astype(str))
    np.add.at(votes, (rows, columns), answers["annotator"].astype(str).map(weights).to_numpy())
    model_accuracy = float(np.mean(predicted.to_numpy() == labels.astype(str).to_numpy()))
    per_item = max(len(answers) / max(len(ids), 1), 1.0)
    model_weight = float(scoring.source_weight(model_accuracy, baseline)) * np.sqrt(per_item)
    prior_weight = float(weights.mean()) if len(weights) else scoring.MIN_WEIGHT
    wrong = scoring.consensus_wrong(
        votes, probas, consensus, model_weight=model_weight, prior_weight=prior_weight
    )
    return LabeledScores(wrong, model_weight, prior_weight)


def candidates(answers: pd.DataFrame, max_annotators: int) -> set[str]:
    """Labeled ids one more annotator may answer: some answer came in a round of the loop (not
    only seed or imported labels, round 0: no backend knows them) and fewer than
    ``max_annotators`` annotators answered."""
    looped = answers.groupby("id")["round"].max().gt(0)
    few = answers.groupby("id")["annotator"].nunique().lt(max_annotators)
    return {str(i) for i in looped.index[looped & few]}


def relabel_queue(
    new_probas: np.ndarray,
    labeled: LabeledScores,
    eligible: np.ndarray,
    batch: int,
    share: float,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`strategies.relabel.merge_queues` of the strategy's new picks (in its order) and
    the ``eligible`` labeled items: (is_relabel, index: into the new picks, or the labeled)."""
    rows = np.flatnonzero(eligible)
    kinds, picks = scoring.merge_queues(
        labeled.new_items(new_probas), labeled.wrong[rows], batch, share
    )
    picks[kinds] = rows[picks[kinds]]
    return kinds, picks
