"""The learning half of a round: train (and register the challenger), evaluate, monitor the
champion, version the data (plain, resumable steps; the round flow wraps them)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.data import store
from tasks.failpoints import step_point
from tasks.loop import quality
from tasks.loop.rounds import (
    RoundState,
    json_rows,
    load_loop,
    round_states,
    round_step,
    save_loop,
    save_round,
)
from tasks.loop.training_data import (
    annotations_on,
    classes_of,
    consensus,
    fit_round_model,
    labeled_frame,
    selection_probabilities,
    targets,
    training_waits,
)
from tasks.model import build as models
from tasks.model.auto import model_choice
from tasks.settings import Settings
from tasks.tracking.runs import in_run, setup_tracking


@round_step("trained", tracking="train")
def train(settings: Settings, state: RoundState, predict: Any = None) -> dict[str, Any]:
    """Training gate, fit, holdout metrics, log and register the challenger, promote if better;
    also the model's predictions on the stop set (for the stabilising-predictions rule) and the
    annotators' statistics (:func:`~tasks.loop.quality.annotation_stats`, logged by
    :func:`evaluate`). With too few labels to train (a cold project) the step records why and
    the next round picks more cold-start rows. With ``model.kind: external`` nothing is
    trained: your model is scored on the holdout instead (:func:`score_external`)."""
    from tasks.data.validate import validate_training

    agreed = consensus(settings)  # one aggregation of the answers for the whole step
    if settings.model.kind == "external":
        return score_external(settings, state, agreed, predict)
    waiting = training_waits(agreed.labels, settings)
    if waiting is not None:
        return {
            "trained": False,
            "waiting": waiting,
            "n_labels": len(agreed.labels),
            "metrics": {},
            "promoted": False,
            "champion_metrics": load_loop(settings).champion_metrics,
            "stop_predictions": [],
            "model_predictions": {},
            "annotator_stats": json_rows(quality.annotation_stats(settings, state.round, agreed)),
        }
    validate_training(agreed.labels, settings, round_=state.round)
    pool = store.read_pool(settings)
    labeled = labeled_frame(pool, agreed.labels)
    weights = None
    if settings.model.importance_weighting:  # random picks stand for the whole pool
        weights = models.importance_weights(
            selection_probabilities(settings, labeled["id"]),
            settings.model.max_importance_weight,
        )
    rows, weak_info = labeled, None
    if settings.weak.module:  # labeling functions: their weak labels beside the human ones
        rows, weights, weak_info = weak_training_rows(settings, state, pool, labeled, weights)
    model = fit_round_model(settings, pool, rows, sample_weight=weights)
    holdout = store.read_holdout(settings)
    metrics = holdout_metrics(settings, model, holdout)
    loop = load_loop(settings)
    stop = pool[pool["id"].isin(set(loop.stop_ids))]
    stop_predictions = [str(p) for p in model.predict(None, stop)] if len(stop) else []
    promoted, reason = register_and_promote(settings, state, model, labeled, metrics)
    if promoted:
        loop.champion_round, loop.champion_metrics = state.round, metrics
        save_loop(settings, loop)
    predictions = quality.prior_predictions(settings, state.round, labeled, pool, holdout)
    return {
        "trained": True,
        "model_choice": model_choice(model.estimator),
        "n_labels": len(labeled),
        "n_annotations": len(annotations_on(store.read_labels(settings), set(pool["id"]))),
        "n_trained": len(rows),
        "weak": weak_info,
        "max_importance_weight": None if weights is None else float(weights.max()),
        "metrics": metrics,
        "promoted": promoted,
        "decision": reason,
        "champion_metrics": loop.champion_metrics,
        "stop_predictions": stop_predictions,
        "model_predictions": predictions,
        "annotator_stats": json_rows(
            quality.annotation_stats(settings, state.round, agreed, predictions)
        ),
    }


def score_external(
    settings: Settings, state: RoundState, agreed: Any, predict: Any = None
) -> dict[str, Any]:
    """``model.kind: external``: your model's holdout metrics and its predictions on the stop
    set (one call of ``model.predict`` over both); it is the model in use, so its metrics are
    the champion's (what the stopping rules read). Nothing is registered: your training job
    registers your model (``labelwise export`` gives it the labels; ``labelwise
    register-model`` records it, and the round then logs that version). A detector is scored by
    its boxes (:func:`detection_metrics`)."""
    from tasks.model.registry import external_champion

    pool = store.read_pool(settings)
    labeled = labeled_frame(pool, agreed.labels)
    holdout = store.read_holdout(settings)
    loop = load_loop(settings)
    if settings.model.task == "detection":
        metrics, stop_predictions = detection_metrics(settings, holdout, predict), []
    else:
        metrics, stop_predictions = external_classifier_metrics(
            settings, holdout, pool[pool["id"].isin(set(loop.stop_ids))], predict
        )
    loop.champion_round, loop.champion_metrics = state.round, metrics
    save_loop(settings, loop)
    manifest = store.read_manifest(settings, state.round)
    versions = manifest["model_version"].dropna().astype(str)
    registered = external_champion(setup_tracking(settings))  # labelwise register-model
    return {
        "trained": False,  # nothing of labelwise's own: no champion to monitor or register
        "external": settings.model.predict,
        "external_version": versions.iloc[0].removeprefix("external:") if len(versions) else None,
        "registered_version": registered["version"] if registered else None,
        "n_labels": len(labeled),
        "n_annotations": len(annotations_on(store.read_labels(settings), set(pool["id"]))),
        "metrics": metrics,
        "promoted": False,
        "decision": "external model: scored, not registered",
        "champion_metrics": metrics,
        "stop_predictions": stop_predictions,
        "model_predictions": {},
        "annotator_stats": json_rows(quality.annotation_stats(settings, state.round, agreed)),
    }


def detection_metrics(settings: Settings, holdout: pd.DataFrame, predict: Any) -> dict[str, float]:
    """Your detector on the holdout: its boxes (a box's class: its most probable one, kept from
    probability 0.5) against the holdout's, :func:`tasks.model.metrics.evaluate_detector`."""
    from tasks.annotation.boxes import decode_boxes
    from tasks.external.model import model_items, predicted_regions
    from tasks.model.metrics import evaluate_detector

    found = predicted_regions(settings, model_items(settings, holdout), predict)
    ids = holdout["id"].astype(str)
    truth = [
        decode_boxes(str(label), item) for item, label in zip(ids, holdout["label"], strict=True)
    ]
    claimed = [[b for b in found[item] if (b.score or 0.0) >= 0.5] for item in ids]
    return evaluate_detector(truth, claimed)


def external_classifier_metrics(
    settings: Settings, holdout: pd.DataFrame, stop: pd.DataFrame, predict: Any
) -> tuple[dict[str, float], list[str]]:
    """Your classifier's holdout metrics and its classes on the stop set (one call of
    ``model.predict`` over both)."""
    from tasks.external.model import ExternalModelError, class_probabilities, model_items
    from tasks.model.metrics import evaluate_classifier

    items = pd.concat([model_items(settings, holdout), model_items(settings, stop)])
    items = items.drop_duplicates("id").reset_index(drop=True)
    ids, probas, classes = class_probabilities(settings, items, predict)
    by_id = pd.Series(range(len(ids)), index=pd.Index(ids))
    truth = holdout["label"].astype(str).to_numpy()
    unknown = sorted(set(truth) - set(classes))
    if unknown:
        raise ExternalModelError(
            f"model.predict {settings.model.predict!r}: no p_{unknown[0]} column, but the holdout "
            f"has label {unknown[0]!r} (classes it returns: {', '.join(classes)})"
        )
    rows = by_id.loc[holdout["id"].astype(str)].to_numpy()
    metrics = evaluate_classifier(
        truth,
        probas[rows],
        classes,
        n_bins=settings.evaluate.ece_bins,
        rare_class=settings.evaluate.rare_class,
    )
    stop_rows = by_id.loc[stop["id"].astype(str)].to_numpy()
    stop_predictions = [classes[k] for k in probas[stop_rows].argmax(axis=1)] if len(stop) else []
    return metrics, stop_predictions


def weak_training_rows(
    settings: Settings,
    state: RoundState,
    pool: pd.DataFrame,
    labeled: pd.DataFrame,
    weights: Any,
) -> tuple[pd.DataFrame, Any, dict[str, Any]]:
    """The functions' votes, this round's weak labels (stored apart from the human label log)
    and the training rows with them (``weak.weight x probability`` each); returns (rows,
    weights, what the round records of it)."""
    from tasks.weak import rounds as weak

    voted = weak.weak_votes(settings, pool, labeled[["id", "label"]])
    labels, accuracies = weak.weak_labels(settings, voted.votes, labeled, state.round)
    weak.save_weak_labels(settings, labels)
    rows, weights = weak.with_weak_rows(labeled, pool, labels, weights, settings.weak.weight)
    return (
        rows,
        weights,
        weak.summary(voted, labels, accuracies) | {"n_trained_weak": len(rows) - len(labeled)},
    )


def holdout_metrics(settings: Settings, model: Any, holdout: pd.DataFrame) -> dict[str, float]:
    """The round model's holdout metrics for its task: classification (accuracy, macro-F1,
    recalls, log loss, Brier, ECE), regression (RMSE, MAE, interval coverage and width at
    ``evaluate.interval_level``) or tagging (token and entity F1)."""
    from tasks.model.build import predict_interval
    from tasks.model.metrics import evaluate_classifier, evaluate_regressor, evaluate_tagger

    task = settings.model.task
    y = targets(holdout["label"], task)
    X = model.features(holdout)
    if task == "regression":
        bounds = predict_interval(model.estimator, X, settings.evaluate.interval_level)
        lower, upper = (None, None) if bounds is None else bounds
        return evaluate_regressor(
            y,
            model.estimator.predict(X),
            lower=lower,
            upper=upper,
            level=settings.evaluate.interval_level,
        )
    if task == "ner":
        return evaluate_tagger(list(y), list(model.estimator.predict(X)))
    return evaluate_classifier(
        y,
        model.estimator.predict_proba(X),
        classes_of(model),
        n_bins=settings.evaluate.ece_bins,
        rare_class=settings.evaluate.rare_class,
    )


def register_and_promote(
    settings: Settings, state: RoundState, model: Any, labeled: pd.DataFrame, metrics: dict
) -> tuple[bool, str]:
    """Log and register the round's model (once: a rerun finds the version it registered), and
    move the champion alias to it if it beats the champion; returns (promoted, why)."""
    from tasks.model.registry import (
        current_champion,
        promote_if_better,
        register_challenger,
        registered_version,
    )
    from tasks.tracking.runs import log_model

    tracking = setup_tracking(settings)
    metric = settings.evaluate.metric
    with in_run(state.info["mlflow_run_id"]):
        if "model_version" not in state.info:
            version_ = registered_version(tracking, state.info["mlflow_run_id"])
            if version_ is None:
                info = log_model(model, labeled[model.columns])
                version_ = register_challenger(
                    tracking, info.model_uri, metrics[metric], metric, state.round
                )
                step_point(state.id, "during:train")
            state.info["model_version"] = version_
            save_round(settings, state)
        decision = promote_if_better(
            tracking,
            state.info["model_version"],
            metrics[metric],
            metric=metric,
            margin=settings.evaluate.margin,
            step=state.round,
        )
    champion = current_champion(tracking)
    # a rerun after a crash that followed the promotion: the alias already points here
    promoted = decision.promoted or (
        champion is not None and champion[0] == decision.challenger_version
    )
    return promoted, decision.reason


@round_step("evaluated", tracking="evaluate")
def evaluate(settings: Settings, state: RoundState) -> dict[str, Any]:
    """Log the round in MLflow: challenger holdout metrics, champion metrics, labels, manifest,
    the loop's learning curve so far and the annotation quality
    (:func:`~tasks.loop.quality.log_annotation`)."""
    import mlflow

    from tasks.tracking.runs import log_learning_curve, log_round, round_params

    setup_tracking(settings)
    metrics = dict(state.info["metrics"])
    metrics |= {f"champion.{k}": v for k, v in state.info["champion_metrics"].items()}
    arm = state.info.get("strategy_choice") or {}
    if arm:  # strategy auto: the arm that filled the batch, and each arm's probability
        metrics |= {f"strategy.p.{k}": v for k, v in arm.get("probabilities", {}).items()}
    choice = state.info.get("model_choice") or {}
    params = round_params(settings, f"{settings.versioning.tag_prefix}{state.round}")
    if arm:
        params["strategy.arm"] = arm["arm"]
    if state.info.get("external_version"):  # model.kind external: which of your versions
        params["model.external_version"] = state.info["external_version"]
    if state.info.get("registered_version"):  # ... and which registry version that is
        params["model.registered_version"] = state.info["registered_version"]
    if choice:  # model.kind auto: what its search chose this round, and what it cost
        params["model.chosen"] = choice["chosen"]
        metrics["model.search_seconds"] = choice["search_seconds"]
        metrics["model.threshold"] = choice.get("threshold", 0.5)  # binary: the tuned cut
        metrics |= {f"model.cv.{k}": v for k, v in choice["cv_scores"].items() if v is not None}
        if choice.get("baseline_score") is not None:  # what a model that learned nothing scores
            metrics["model.cv_baseline"] = choice["baseline_score"]
    loop = load_loop(settings)
    with in_run(state.info["mlflow_run_id"]):
        log_round(
            state.round,
            int(state.info["n_labels"]),
            metrics,
            params=params | {"round_id": state.id},
            manifest=store.data_paths(settings).manifest(state.round),
            parent_metrics=[settings.evaluate.metric, f"champion.{settings.evaluate.metric}"],
        )
        if loop.mlflow_run_id:
            log_learning_curve(loop.mlflow_run_id, [settings.evaluate.metric], state.round)
        quality.log_annotation(state)
        if state.info.get("weak"):  # the labeling functions' report of this round
            from tasks.weak.report import log_report

            log_report(state.info["weak"], state.round)
        if state.info.get("waiting"):
            mlflow.set_tag("labelwise.training", state.info["waiting"])
        if arm:  # why this arm: its probability and the rewards measured on the probe rows
            mlflow.set_tag("labelwise.strategy_choice", json.dumps(arm)[:5000])
    return {}


@round_step("monitored", tracking="monitor")
def monitor(settings: Settings, state: RoundState) -> dict[str, Any]:
    """Monitoring checks on the champion (sampling bias, class balance, calibration trend); a
    drift flag raises the random fraction of the next batch."""
    from tasks.features.space import pool_features
    from tasks.model.monitor import log_monitoring, next_random_fraction, run_monitoring
    from tasks.model.registry import load_champion

    if not settings.monitor.enabled or state.info.get("trained") is False:
        return {"flags": []}  # off, or no model to watch yet
    model, _ = load_champion(setup_tracking(settings))
    pool = store.read_pool(settings)
    labeled = labeled_frame(pool, consensus(settings).labels)
    unlabeled = pool[~pool["id"].isin(set(labeled["id"]))]
    history = [
        s.info["metrics"]["ece_top_label"]
        for s in round_states(settings)
        if s.round < state.round and "ece_top_label" in s.info.get("metrics", {})
    ]
    inputs: dict[str, Any] = {}
    if settings.data.kind == "tabular":  # drift is tested column by column on table columns
        columns = model.columns
        inputs |= {
            "labeled_X": labeled[columns],
            "pool_X": unlabeled[columns] if len(unlabeled) else pool[columns],
        }
    if settings.model.task == "classification":
        inputs |= {
            "classes": classes_of(model),
            "labeled_y": labeled["label"].astype(str).to_numpy(),
            # the pool's cached features (as select reads them), not the raw items re-featurized
            "pool_pred": model.estimator.predict(pool_features(settings, model.featurizer, pool)),
            "ece": state.info["metrics"]["ece_top_label"],
            "ece_history": history,
        }
    with warnings.catch_warnings():
        # Evidently's correlations divide by the zero spread of constant columns (NaN, ignored)
        warnings.simplefilter("ignore", RuntimeWarning)
        result = run_monitoring(
            settings.monitor,
            Path(settings.project.work_dir) / "monitoring" / state.id,
            seed=settings.project.seed,
            **inputs,
        )
    with in_run(state.info["mlflow_run_id"]):
        log_monitoring(result, step=state.round)
    loop = load_loop(settings)
    current = (
        loop.random_fraction
        if loop.random_fraction is not None
        else settings.strategy.random_fraction
    )
    loop.random_fraction = next_random_fraction(current, result, settings.monitor)
    save_loop(settings, loop)
    return {"flags": result.flagged}


@round_step("versioned")
def version(settings: Settings, state: RoundState) -> dict[str, Any]:
    """Commit and tag the data as ``round-N`` and push it to the DVC remote; finish the round."""
    import mlflow

    from tasks.data import versioning

    tag = None
    if settings.versioning.enabled:
        # a crash after tagging but before this state was saved: move the tag to a fresh commit
        exists = f"{settings.versioning.tag_prefix}{state.round}" in versioning.tags(settings)
        tag = versioning.commit_round(settings, state.round, force=exists)
        if state.info.get("mlflow_run_id"):
            setup_tracking(settings)
            with in_run(state.info["mlflow_run_id"]):
                mlflow.set_tag("labelwise.data_version", tag)
    state.status = "complete"
    return {"data_version": tag}
