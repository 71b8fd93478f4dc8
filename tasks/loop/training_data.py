"""What a round trains on: one label per labeled item (aggregating several annotators'
answers), the labeled pool rows, whether a model can be trained yet, and the round's model
(featurizer and estimator, raw items in)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tasks.data import store
from tasks.model import build as models
from tasks.settings import Settings

#: labeled items a regressor or a tagger needs before its first fit
MIN_LABELS = 5


@dataclass(frozen=True)
class Consensus:
    """One label per labeled item, and the one aggregation fit behind it (per round)."""

    labels: pd.DataFrame  # id, label, n_votes, agreement: what training uses
    votes: pd.DataFrame  # the latest answer of each annotator on items several answered
    agreed: pd.DataFrame  # those items' aggregated labels (empty: no such item)
    annotator_accuracy: pd.Series | None  # Dawid-Skene's estimate per annotator


def consensus(settings: Settings, log: pd.DataFrame | None = None) -> Consensus:
    """One label per labeled id: the latest, or, where several annotators answered an item, the
    ``annotation.aggregation`` of their votes (majority or Dawid-Skene), fit on those items only:
    single answers (the seed labels, items outside the overlap share) tell EM nothing about an
    annotator's errors and let it drift away from them. Aggregated rows carry ``n_votes`` and
    ``agreement``. Dawid-Skene is fit once, and also gives each annotator's accuracy. Numbers
    (regression) take the median, tag lists (NER) a vote per token; boxes (detection) the
    latest answer (matching annotators' boxes is not done yet). ``settings`` resolved;
    ``log``: a part of the label log (e.g. up to a round) instead of all of it."""
    from tasks.annotation.aggregate import aggregate_numbers, aggregate_tags, aggregate_with_fit

    log = store.read_labels(settings) if log is None else log
    latest = store.latest_labels(log)
    votes = several_votes(latest_per_annotator(log)) if len(log) else log
    if votes.empty or settings.model.task == "detection":  # regions: the latest answer
        return Consensus(latest, votes, latest.iloc[:0], None)
    accuracy = None
    if settings.model.task == "regression":  # numbers: the median, not a vote among values
        agreed = aggregate_numbers(votes)
    elif settings.model.task == "ner":  # tag lists: a vote per token
        agreed = aggregate_tags(votes)
    else:
        classes = [str(c) for c in settings.data.classes] or None
        agreed, fit = aggregate_with_fit(votes, settings.annotation.aggregation, classes)
        accuracy = fit.annotator_accuracy()
    single = latest.loc[~latest["id"].isin(set(agreed["id"])), ["id", "label"]]
    single = single.assign(n_votes=1, agreement=1.0)
    columns = ["id", "label", "n_votes", "agreement"]
    labels = pd.concat([single, agreed[columns]], ignore_index=True)
    return Consensus(labels, votes, agreed, accuracy)


def annotations_on(log: pd.DataFrame, ids: set[str]) -> pd.DataFrame:
    """The current answers (:func:`store.current_answers`, with a label) on ``ids``: what the
    label budget counts, one annotation each."""
    answers = store.current_answers(log[log["id"].astype(str).isin(ids)])
    return answers.dropna(subset=["label"])


def training_labels(settings: Settings) -> pd.DataFrame:
    """The labels training uses (:func:`consensus`)."""
    return consensus(settings).labels


def latest_per_annotator(log: pd.DataFrame) -> pd.DataFrame:
    """Each annotator's latest answer per item (the one rule: :func:`store.current_answers`)."""
    return store.current_answers(log)


def several_votes(votes: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``votes`` (one per id and annotator) on items that several annotators answered."""
    return votes[votes.groupby("id")["annotator"].transform("nunique").gt(1)].reset_index(drop=True)


def labeled_frame(pool: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """Pool rows that have a training label (``labels``: :func:`training_labels`), in pool
    order, with ``label``."""
    if labels.empty:
        return pool.iloc[:0].assign(label=pd.Series(dtype="object"))
    return pool.merge(labels[["id", "label"]], on="id", how="inner")


def training_waits(labels: pd.DataFrame, settings: Settings) -> str | None:
    """Why no model can be trained yet (None: it can): a classifier needs two classes, and
    each class of ``data.classes`` needs ``data.min_per_class`` labels; a regressor or a tagger
    needs ``MIN_LABELS`` labeled items. Not an error: a project that starts with no labels gets
    there round by round (the training gate checks the rest). ``settings`` resolved."""
    if settings.model.task in ("regression", "ner"):
        if len(labels) < MIN_LABELS:
            return f"training waits for {MIN_LABELS} labeled items (labels so far: {len(labels)})"
        return None
    counts = labels["label"].astype(str).value_counts()
    declared = [str(c) for c in settings.data.classes]
    if declared:
        counts = counts.reindex(declared, fill_value=0)
    minimum = max(settings.data.min_per_class, 1)
    short = [f"{label!r} has {int(n)}" for label, n in counts.items() if n < minimum]
    if (counts >= minimum).sum() < 2:
        seen = ", ".join(f"{label!r}: {int(n)}" for label, n in counts.items()) or "none"
        return f"training waits for {minimum}+ labels in two classes (labels so far: {seen})"
    if short and settings.data.min_per_class > 0:
        return f"training waits for data.min_per_class={minimum} labels per class: " + ", ".join(
            short
        )
    return None


def targets(labels: pd.Series, task: str) -> Any:
    """Labels as the model learns them: class names, numbers, or each sentence's tag list."""
    if task == "regression":
        return pd.to_numeric(labels.astype(str)).to_numpy(dtype=np.float64)
    if task == "ner":
        from tasks.model.tagger import as_items

        return as_items([json.loads(str(tags)) for tags in labels])
    return labels.astype(str).to_numpy()


def fit_round_model(
    settings: Settings, pool: pd.DataFrame, labeled: pd.DataFrame, sample_weight: Any = None
) -> Any:
    """The featurizer (fitted as its kind wants, :func:`tasks.features.space.fit_featurizer`)
    and the configured model fit on ``labeled``, as one raw-input model. ``settings``
    resolved."""
    from tasks.features.space import fit_featurizer, raw_columns
    from tasks.model.serving import RawInputModel

    featurizer = fit_featurizer(settings, pool, labeled)
    X = featurizer.transform(labeled)
    model_settings = settings.model
    if sp.issparse(X):  # TF-IDF rows are L2-normalised already, and sparse ones cannot be centred
        model_settings = model_settings.model_copy(update={"scale": False})
    searched = settings.model.task in ("classification", "regression")  # NER: the tagger
    if model_settings.kind == "auto" and searched:  # the search scores by the project's metric
        from tasks.model.auto import decision_metric_for, scoring_for

        metric, task = settings.evaluate.metric, settings.model.task
        searched_by = {"scoring": scoring_for(metric, task)}
        searched_by["decision_metric"] = decision_metric_for(metric, task)
        params = {**searched_by, **model_settings.params}
        model_settings = model_settings.model_copy(update={"params": params})
    if model_settings.kind == "torch_cnn" and settings.data.kind == "image":
        # the CNN sees the pixels as the featurizer resized them: features.image_size, grey
        params = {"image_shape": [*settings.features.image_size, 1], **model_settings.params}
        model_settings = model_settings.model_copy(update={"params": params})
    y = targets(labeled["label"], settings.model.task)
    unfitted = models.build_model(model_settings, random_state=settings.project.seed)
    estimator = models.fit_model(unfitted, X, y, sample_weight=sample_weight)
    if settings.model.semi_supervised and settings.model.task == "classification":
        estimator = self_trained(
            settings, unfitted, estimator, featurizer, pool, labeled, X, y, sample_weight
        )
    return RawInputModel(featurizer, estimator, settings.model.task, raw_columns(settings, pool))


def self_trained(
    settings: Settings,
    unfitted: Any,
    fitted: Any,
    featurizer: Any,
    pool: pd.DataFrame,
    labeled: pd.DataFrame,
    X: Any,
    y: np.ndarray,
    sample_weight: Any,
) -> Any:
    """``model.semi_supervised: self_training``: ``unfitted`` refit on the labeled rows and the
    confident pseudo-labels ``fitted`` gives a sample of the unlabeled pool rows
    (:func:`tasks.model.semi.pseudo_labels`); ``fitted`` when none is confident enough."""
    from tasks.model.semi import SelfTraining, pseudo_labels

    cfg = settings.model
    options = SelfTraining(
        cfg.pseudo_label_threshold, cfg.pseudo_label_weight, cfg.pseudo_label_max_rows
    )
    unlabeled = np.flatnonzero(~pool["id"].isin(set(labeled["id"])).to_numpy())
    rng = settings.project.rng("self_training", len(labeled))
    sample = unlabeled
    if sample.shape[0] > options.max_rows:  # featurize only the rows looked at
        sample = np.sort(rng.choice(sample, size=options.max_rows, replace=False))
    X_unlabeled = featurizer.transform(pool.iloc[sample])
    rows, pseudo, weights = pseudo_labels(
        fitted, X_unlabeled, np.arange(sample.shape[0]), options, rng
    )
    if rows.shape[0] == 0:
        return fitted
    stack = sp.vstack if sp.issparse(X) else np.vstack
    own = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
    return models.fit_model(
        unfitted,
        stack([X, X_unlabeled[rows]]),
        np.concatenate([y, pseudo.astype(y.dtype)]),
        sample_weight=np.concatenate([own, weights]),
    )


def classes_of(model: Any) -> list[str]:
    """A classifier's classes as text."""
    return [str(c) for c in model.classes_]


def selection_probabilities(settings: Settings, ids: pd.Series) -> np.ndarray:
    """How likely each labeled item of ``ids`` was to be picked when it was: ``n_random /
    n_eligible`` for an item the random fraction drew from the eligible pool of its round, 1 for
    the strategy's own picks, the seed set and labels that came from outside the loop (what
    ``model.importance_weighting`` turns into inverse-probability weights)."""
    from tasks.loop.rounds import load_round

    q = pd.Series(1.0, index=pd.Index(ids.astype(str)))
    folder = store.data_paths(settings).manifests
    for path in sorted(folder.glob("round-*.parquet")):
        manifest = pd.read_parquet(path)
        random = manifest.loc[manifest["source"] == "random", "id"].astype(str)
        if random.empty:
            continue
        round_ = int(manifest["round"].iloc[0])
        eligible = load_round(settings, round_).info.get("n_eligible")
        if not eligible:
            eligible = len(store.read_pool(settings))
        q[q.index.isin(set(random))] = len(random) / max(int(eligible), len(random))
    return q.to_numpy()
