"""Annotation quality control in a round: gold items mixed into dispatch, agreement review in
collect (one more annotator, or a flag), and the annotators' statistics logged each round."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from tasks.data import store
from tasks.data.labels import unseen
from tasks.loop.rounds import RoundState, load_round, round_states, save_round
from tasks.loop.training_data import Consensus, fit_round_model, several_votes
from tasks.settings import Settings

FLAGGED_TAG_CHARS = 5000


def with_gold(
    settings: Settings, round_: int, batch: pd.DataFrame
) -> tuple[pd.DataFrame, list[str]]:
    """``batch`` with ``annotation.gold_fraction`` gold items mixed in at random ranks, and their ids.

    Gold items are holdout rows: their labels are known and do not come from the annotators being
    checked. Backends skip ids sent before, so each holdout row is gold in one round at most. Gold
    ids are not in the manifest (the quorum ignores them) and their answers never reach the label
    log (:func:`collect` keeps them in ``gold_answers.parquet``), so the holdout stays out of
    training. The same round always gets the same gold items (a rerun after a crash sends none).
    """
    from tasks.annotation.aggregate import mix_gold

    if settings.annotation.gold_fraction <= 0 or batch.empty:
        return batch, []
    used = {
        i for s in round_states(settings) if s.round != round_ for i in s.info.get("gold_ids", [])
    }
    holdout = store.read_holdout(settings)
    candidates = holdout[~holdout["id"].astype(str).isin(used)]
    rng = settings.project.rng("gold", round_)
    mixed = mix_gold(batch, candidates, settings.annotation.gold_fraction, random_state=rng)
    gold_ids = mixed.loc[mixed["gold"], "id"].astype(str).tolist()
    # the flag stays here: a backend that showed it would tell annotators which items are tests
    return mixed.drop(columns="gold"), gold_ids


def gold_answers_path(settings: Settings) -> Path:
    return store.data_paths(settings).root / "gold_answers.parquet"


def gold_answers(settings: Settings) -> pd.DataFrame:
    """Every answer collected on a gold item (label-log columns); never training labels."""
    path = gold_answers_path(settings)
    if not path.exists():
        return store.LABELS_SCHEMA.empty_table().to_pandas()
    return pd.read_parquet(path)


def store_gold_answers(settings: Settings, answers: pd.DataFrame) -> int:
    """Append the answers on gold items not stored yet (one answer per key, as the label log);
    returns how many were new."""
    if answers.empty:
        return 0
    with store.locked(settings):
        old = gold_answers(settings)
        fresh = unseen(store.normalize_labels(answers), old)
        if len(fresh):
            combined = pd.concat([old, fresh], ignore_index=True) if len(old) else fresh
            store.write_parquet_atomic(
                combined, gold_answers_path(settings), schema=store.LABELS_SCHEMA
            )
    return len(fresh)


def review_agreement(
    settings: Settings, state: RoundState, backend: Any, wanted: set[str]
) -> tuple[int, set[str]]:
    """Check the agreement of the round's items; returns (requests sent, ids still pending).

    An item whose agreement (share of votes for its ``annotation.aggregation`` label) is below
    ``annotation.agreement_threshold`` is sent to one more annotator (``backend.request_more``);
    ``info["more_requested"]`` keeps its vote count then, and it is pending until it has more.
    Items at ``annotation.max_annotators`` votes, or with nobody left to ask, are flagged:
    ``info["annotation_flagged"]`` (they keep their aggregated label; the list is for review).
    """
    from tasks.annotation.aggregate import (
        aggregate,
        aggregate_numbers,
        aggregate_tags,
        needs_attention,
    )

    cfg = settings.annotation
    log = store.read_labels(settings)
    answers = several_votes(
        store.current_answers(log[log["id"].isin(wanted)]).dropna(subset=["label"])
    )
    if answers.empty or settings.model.task == "detection":  # no vote among boxes (yet)
        return 0, set(state.info.get("more_requested", {}))
    classes = [str(c) for c in settings.data.classes] or None
    if settings.model.task == "regression":
        agreed = aggregate_numbers(answers)
    elif settings.model.task == "ner":
        agreed = aggregate_tags(answers)
    else:
        agreed = aggregate(answers, cfg.aggregation, classes)
    more, flagged = needs_attention(agreed, cfg.agreement_threshold, cfg.max_annotators)
    votes = dict(zip(agreed["id"].astype(str), agreed["n_votes"].astype(int), strict=True))
    asked: dict[str, int] = state.info.setdefault("more_requested", {})
    fresh = [i for i in more if votes[i] > asked.get(i, 0)]
    request_more = getattr(backend, "request_more", None)
    sent: list[str] = []
    if fresh and request_more is not None:
        answer = request_more(fresh)
        sent = list(fresh) if answer is None else [str(i) for i in answer]  # Label Studio: None
    asked.update({i: votes[i] for i in sent})
    unserved = set(fresh) - set(sent)
    state.info["annotation_flagged"] = sorted(set(flagged) | unserved)
    save_round(settings, state)
    return len(sent), {i for i, n in asked.items() if votes.get(i, 0) <= n}


def prior_predictions(
    settings: Settings,
    round_: int,
    labeled: pd.DataFrame,
    pool: pd.DataFrame,
    holdout: pd.DataFrame,
) -> dict[str, str]:
    """id -> label predicted for the round's items and gold items by a model fit on the labels
    from before the round (what the selecting model knew), so that comparing annotators with the
    model is out of sample; {} when those labels hold fewer than two classes (or the task is
    not classification: agreement with a number or a tag list is not a vote)."""
    if settings.model.task != "classification":
        return {}
    ids = set(store.read_manifest(settings, round_)["id"].astype(str))
    before = labeled[~labeled["id"].astype(str).isin(ids)]
    if before["label"].nunique() < 2:
        return {}
    gold = set(load_round(settings, round_).info.get("gold_ids", []))
    rows = pd.concat(
        [pool[pool["id"].astype(str).isin(ids)], holdout[holdout["id"].astype(str).isin(gold)]],
        ignore_index=True,
    )
    if rows.empty:
        return {}
    model = fit_round_model(settings, pool, before)
    predicted = model.predict(None, rows)
    return dict(zip(rows["id"].astype(str), map(str, predicted), strict=True))


def annotation_stats(
    settings: Settings,
    round_: int,
    agreed: Consensus,
    predictions: dict[str, str] | None = None,
) -> pd.DataFrame:
    """One row per annotator over every answer so far (label log and gold answers): ``n``,
    ``gold_n``/``gold_accuracy`` (vs the holdout labels of gold items), ``model_agreement`` (vs
    each round's :func:`prior_predictions`, ``predictions`` for this round); and, on the items
    several annotators answered, ``majority_agreement``, ``aggregate_agreement`` (vs the
    ``annotation.aggregation`` labels) and ``ds_accuracy``, from the round's one aggregation fit
    (``agreed``, :func:`~tasks.loop.training_data.consensus`)."""
    from tasks.annotation.aggregate import accuracy_against, annotator_stats, majority_vote

    gold_log = gold_answers(settings)
    answers = store.current_answers(
        pd.concat([store.read_labels(settings), gold_log], ignore_index=True)
    ).dropna(subset=["label"])
    if answers.empty:
        return pd.DataFrame()
    holdout = store.read_holdout(settings)
    holdout = holdout[holdout["id"].astype(str).isin(set(gold_log["id"]))]
    gold = dict(zip(holdout["id"].astype(str), holdout["label"].astype(str), strict=True))
    known: dict[str, str] = {}
    for earlier in round_states(settings):
        if earlier.round < round_:
            known |= earlier.info.get("model_predictions", {})
    known |= predictions or {}
    classes = [str(c) for c in settings.data.classes] or None
    stats = annotator_stats(answers, gold=gold, predictions=known, classes=classes, agreement=False)
    if agreed.votes.empty or settings.model.task != "classification":
        return stats  # agreement only where there are others, and only among class votes
    majority = majority_vote(agreed.votes, classes)
    versus_majority = accuracy_against(
        agreed.votes, dict(zip(majority["id"], majority["label"], strict=True))
    )
    versus = accuracy_against(
        agreed.votes, dict(zip(agreed.agreed["id"], agreed.agreed["label"], strict=True))
    )
    for column, values in (
        ("majority_agreement", versus_majority["accuracy"]),
        ("aggregate_agreement", versus["accuracy"]),
        ("ds_accuracy", agreed.annotator_accuracy),
    ):
        stats[column] = stats["annotator"].map(values)
    return stats


def log_annotation(state: RoundState) -> None:
    """Log a round's annotation quality in the active run: the annotator statistics
    (``annotator.<name>.<stat>``), the metrics ``annotation.flagged``, ``annotation.gold_items``
    and ``annotation.more_requested``, and the flagged ids as the tag ``annotation.flagged``."""
    import mlflow

    from tasks.annotation.aggregate import log_annotator_stats
    from tasks.tracking.runs import log_json

    if state.info.get("annotator_stats"):
        log_annotator_stats(pd.DataFrame(state.info["annotator_stats"]), state.round)
    flagged = list(state.info.get("annotation_flagged", []))
    mlflow.log_metrics(
        {
            "annotation.flagged": len(flagged),
            "annotation.gold_items": len(state.info.get("gold_ids", [])),
            "annotation.more_requested": len(state.info.get("more_requested", {})),
        },
        step=state.round,
    )
    if flagged:
        text = ",".join(flagged)
        if len(text) > FLAGGED_TAG_CHARS:  # MLflow caps tag values; the JSON has them all
            text = text[: FLAGGED_TAG_CHARS - 20].rsplit(",", 1)[0] + ",..."
        mlflow.set_tag("annotation.flagged", text)
        log_json({"flagged": flagged}, f"annotation/flagged_round_{state.round:03d}.json")
