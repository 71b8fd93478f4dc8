"""The labeling half of a round: ingest new files, select a batch, dispatch it to the
annotators, collect their answers (plain, resumable steps; the round flow wraps them)."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from strategies.weak import uses_votes
from tasks.annotation.spans import tag_answers
from tasks.data import labels as label_gate
from tasks.data import store
from tasks.data.labels import new_annotations
from tasks.failpoints import step_point
from tasks.loop import quality
from tasks.loop.rounds import RoundError, RoundState, load_loop, round_step, save_round
from tasks.loop.training_data import Consensus, consensus, fit_round_model, labeled_frame, targets
from tasks.settings import Settings
from tasks.tracking.runs import setup_tracking

#: what selects while no model can be trained (no labels yet, or too few): typical rows of the
#: pool's uncovered clusters (no model call), or random picks where items have no feature
#: vectors (sentences to tag); manifest rows say ``source: cold_start``
COLD_START = {"classification": "representative", "regression": "representative", "ner": "random"}
#: the strategy a task falls back to when the configured one cannot query its model
TASK_DEFAULT = {"classification": "hybrid", "regression": "hybrid", "ner": "sequence_uncertainty"}
#: the model kind a loop task gives a strategy (``QueryStrategy.tasks``)
STRATEGY_TASK = {"classification": "classification", "regression": "regression", "ner": "sequence"}


def truth_path(settings: Settings) -> Path:
    """The demo project's known labels: what its simulated annotators answer."""
    return Path(settings.project.work_dir) / "demo" / "truth.parquet"


def make_backend(settings: Settings) -> Any:
    """The configured annotation backend (``annotation.backend``); the simulated annotators
    answer from the demo project's known labels and the holdout's (gold items come from it)."""
    from tasks.annotation import make_backend as build

    if settings.annotation.backend != "simulated":
        return build(settings)
    truth_file = truth_path(settings)
    if not truth_file.exists():
        raise RoundError(
            f"{truth_file}: no known labels for the simulated annotators "
            "(`labelwise run` creates them with the demo project)"
        )
    truth = pd.read_parquet(truth_file)
    holdout = store.read_holdout(settings)
    known = dict(zip(holdout["id"].astype(str), holdout["label"].astype(str), strict=True))
    return build(settings, truth=known | dict(zip(truth["id"], truth["label"], strict=True)))


@round_step("ingested")
def ingest_new(settings: Settings, state: RoundState) -> dict[str, Any]:
    """Ingest (through the ingest gate) every file in ``loop.inbox`` not ingested yet, then move
    it to ``inbox/ingested/``. Re-ingesting a file after a crash adds nothing (rows already
    present are skipped)."""
    from tasks.data.ingest import ingest

    inbox = settings.loop.inbox
    added = 0
    files: list[str] = []
    if inbox is not None and Path(inbox).exists():
        done_dir = Path(inbox) / "ingested"
        for path in sorted(p for p in Path(inbox).iterdir() if p.is_file()):
            result = ingest(path, settings, round_=state.round)
            added += result.added
            files.append(path.name)
            done_dir.mkdir(exist_ok=True)
            path.replace(done_dir / path.name)
    return {"ingested_files": files, "ingested_rows": added}


def sentence_tokens(settings: Settings, ids: set[str]) -> dict[str, list[str]]:
    """id -> the tokens of each of ``ids``'s sentences (for NER answers given as spans)."""
    from tasks.features.space import as_tokens

    pool = store.read_pool(settings)
    rows = pool[pool["id"].astype(str).isin(ids)]
    column = settings.data.text_column
    return {str(i): as_tokens(v) for i, v in zip(rows["id"], rows[column], strict=True)}


def sent_before(settings: Settings, round_: int) -> set[str]:
    """Ids selected in an earlier round (manifests 0 .. round_ - 1)."""
    sent: set[str] = set()
    for earlier in range(0, round_):
        if store.data_paths(settings).manifest(earlier).exists():
            sent |= set(store.read_manifest(settings, earlier)["id"])
    return sent


def can_fit(labels: pd.DataFrame, task: str) -> bool:
    """Whether the labels are enough for a first model (two classes; a few items otherwise)."""
    from tasks.loop.training_data import MIN_LABELS

    if task == "classification":
        return labels["label"].nunique() >= 2
    return len(labels) >= MIN_LABELS


def selection_model(settings: Settings, pool: pd.DataFrame, labeled: pd.DataFrame) -> Any:
    """(model, version) that selects: the champion; before the first one, a model fit on the
    labels so far ("initial"); with too few labels, none."""
    from tasks.model.registry import NoChampionError, load_champion
    from tasks.model.serving import RawInputModel

    try:
        model, version = load_champion(setup_tracking(settings))
    except NoChampionError:
        if not can_fit(labeled, settings.model.task):
            return None, "none"
        return fit_round_model(settings, pool, labeled), "initial"
    if not isinstance(model, RawInputModel):
        raise RoundError(
            f"the champion v{version} was registered by an older labelwise (features in, not raw "
            "items): register a model from a round of this version, or start a new project"
        )
    return model, version


def query_strategy(
    settings: Settings, strategy_settings: Any, model: Any, votes: Any = None
) -> tuple[Any, str]:
    """The strategy that queries ``model`` (the configured one, its task's default when it
    cannot query this kind of model, the cold start without a model) and why; ``votes``: the
    labeling functions' votes on the pool, for a strategy that scores with them."""
    import strategies

    task = settings.model.task
    if model is None:
        return strategies.get(COLD_START[task]), "cold start: no model yet"
    strategy = strategy_settings.build(committee_size=settings.model.committee_size, votes=votes)
    if STRATEGY_TASK[task] in strategy.tasks:
        return strategy, ""
    fallback = TASK_DEFAULT[task]
    why = f"{strategy.name} cannot query a {task} model: {fallback} selects instead"
    return strategies.get(fallback, guards=strategy_settings.guards()), why


@round_step("selected")
def select(
    settings: Settings,
    state: RoundState,
    query: Callable[..., Any] | None = None,
    predict: Callable[..., Any] | None = None,
) -> dict[str, Any]:
    """Query the strategy with the champion (before the first champion: a model fit on the
    labels so far; with too few labels, the cold-start picks of ``COLD_START``) over pool rows
    neither labeled nor sent in an earlier round; write the manifest. The pool's features come
    from the selecting model's own featurizer (cached, :mod:`tasks.features.space`).

    ``query(strategy, model, X_pool, batch, **kwargs) -> Selection`` replaces the in-process
    ``strategy.query`` (the round flow passes the Dask scale-out when ``scale.executor: dask``).
    With ``model.kind: external`` your model's predictions rank the pool instead
    (:func:`external_picks`; ``predict`` replaces the in-process call of your function)."""
    from tasks.features.space import fit_pool_featurizer, pool_features

    pool = store.read_pool(settings)
    if pool.empty:
        raise RoundError(f"{settings.project.data_dir}: the pool is empty; ingest data first")
    agreed = consensus(settings)
    labeled = labeled_frame(pool, agreed.labels)
    external = settings.model.kind == "external"
    model, model_version = (None, "none") if external else selection_model(settings, pool, labeled)
    sent = sent_before(settings, state.round)
    exclude = pool["id"].isin(set(labeled["id"]) | sent).to_numpy()
    batch = settings.strategy.batch_size
    relabeling = relabels_wanted(settings, model)
    if settings.loop.label_budget is not None:
        batch = max(0, min(batch, settings.loop.label_budget - annotations_spent(settings, sent)))
    loop = load_loop(settings)
    strategy_settings = settings.strategy
    if loop.random_fraction is not None:
        strategy_settings = strategy_settings.model_copy(
            update={"random_fraction": loop.random_fraction}
        )
    ids, scores, sources, why, carried = [], [], "strategy", "", {}
    relabel_info: dict[str, Any] = {}
    if external and batch and not exclude.all():
        ids, scores, sources, why, model_version = external_picks(
            settings, state, pool[~exclude], batch, strategy_settings.random_fraction, predict
        )
    elif batch and not exclude.all():
        votes = None
        if model is not None and uses_votes(strategy_settings.name, strategy_settings.params):
            from tasks.weak.rounds import weak_votes

            votes = weak_votes(settings, pool, labeled[["id", "label"]]).votes
        strategy, why = query_strategy(settings, strategy_settings, model, votes)
        learns = model is not None and strategy.get_state() is not None
        if learns:  # a bandit (``auto``): its state from the last round, the labels since
            restore_strategy_state(settings, state.round, strategy, pool, labeled)
        featurizer = model.featurizer if model is not None else fit_pool_featurizer(settings, pool)
        if model is None or why:
            query = None  # scale-out serves the configured strategy only
        if query is None:
            query = partial(strategy.query, chunk_size=settings.strategy.chunk_size)
        else:
            query = partial(query, strategy)
        X_pool = pool_features(settings, featurizer, pool)
        X_labeled = featurizer.transform(labeled) if len(labeled) else None
        selection = query(
            None if model is None else model.estimator,
            X_pool,
            batch,
            X_labeled=X_labeled,
            y_labeled=targets(labeled["label"], settings.model.task) if len(labeled) else None,
            random_state=settings.project.rng("strategy", state.round),
            exclude=exclude,
        )
        ids, scores = pool["id"].to_numpy()[selection.indices], selection.scores
        sources = ["cold_start"] * len(selection) if model is None else list(selection.sources)
        if relabeling:
            new_probas = model.estimator.predict_proba(X_pool[selection.indices])
            ids, scores, sources, relabel_info = with_relabels(
                settings, agreed, model, labeled, X_labeled, (ids, scores, sources, new_probas)
            )
        if learns:
            carried = saved_strategy_state(strategy, pool)
    store.write_manifest(
        settings,
        state.round,
        ids,
        scores,
        strategy=settings.strategy.name,
        strategy_params=settings.strategy.params,
        model_version=model_version,
        source=sources,
    )
    step_point(state.id, "during:select")
    return {
        "n_selected": len(ids),
        "n_eligible": int((~exclude).sum()),
        "selection_model": model_version,
        "random_fraction": strategy_settings.random_fraction,
        "strategy_note": why,
        **relabel_info,
        **carried,
    }


def external_picks(
    settings: Settings,
    state: RoundState,
    eligible: pd.DataFrame,
    batch: int,
    random_fraction: float,
    predict: Callable[..., Any] | None = None,
) -> tuple[list[str], list[Any], list[str], str, str]:
    """``model.kind: external``: the batch ranked from your model's predictions on the eligible
    items, with ``random_fraction`` of it drawn at random (against sampling bias); returns (ids,
    scores, sources, note, model version). The picks' predicted classes are kept for the
    pre-annotations (:func:`with_predictions`)."""
    from tasks.external.model import model_items, rank_pool

    eligible = model_items(settings, eligible)
    rng = settings.project.rng("strategy", state.round)
    n_random = min(round(random_fraction * batch), len(eligible))
    ranked = rank_pool(settings, eligible, batch - n_random, int(rng.integers(2**31 - 1)), predict)
    rest = eligible.loc[~eligible["id"].isin(set(ranked.ids)), "id"].astype(str).to_numpy()
    drawn = [str(i) for i in rng.choice(rest, size=min(n_random, len(rest)), replace=False)]
    predicted = ranked.predicted
    if settings.model.task == "detection" and ranked.ids:  # the picks' boxes pre-annotate them
        from tasks.annotation.boxes import encode_boxes
        from tasks.external.model import predicted_regions

        picks = eligible[eligible["id"].astype(str).isin(set(ranked.ids))]
        regions = predicted_regions(settings, picks, predict)
        predicted = pd.DataFrame(
            {
                "id": list(regions),
                "prediction": [encode_boxes(r) for r in regions.values()],
                "prediction_score": [
                    max((b.score for b in r), default=None) for r in regions.values()
                ],
            }
        )
    path = external_predictions_path(settings, state.round)
    path.parent.mkdir(parents=True, exist_ok=True)
    predicted.to_parquet(path, index=False)
    note = f"model.kind external: {ranked.strategy} on {settings.model.predict}'s predictions"
    return (
        ranked.ids + drawn,
        ranked.scores + [None] * len(drawn),
        [ranked.strategy] * len(ranked.ids) + ["random"] * len(drawn),
        note,
        f"external:{ranked.version}",
    )


def external_predictions_path(settings: Settings, round_: int) -> Path:
    """Where a round keeps your model's predicted class for each pick (pre-annotations)."""
    return Path(settings.project.work_dir) / "external" / f"round-{round_:04d}.parquet"


def relabels_wanted(settings: Settings, model: Any) -> bool:
    """Whether this round may ask for another opinion on labeled items: ``annotation.
    relabel_share`` > 0, a classifier, and a model to judge the labels with. The files backend
    cannot send an item twice: an error, before a manifest is written."""
    share = settings.annotation.relabel_share
    if share > 0 and settings.annotation.backend == "files":
        raise RoundError(
            "annotation.relabel_share > 0 needs a backend that can ask one more annotator "
            "(simulated, label_studio); the files backend sends an item once: set it to 0"
        )
    return share > 0 and model is not None and settings.model.task == "classification"


def annotations_spent(settings: Settings, sent: set[str]) -> int:
    """What the label budget has spent: every current answer of the label log (one annotation
    each, a relabel too) and the items sent that have none yet."""
    from tasks.loop.training_data import annotations_on

    pool_ids = set(store.read_pool(settings)["id"].astype(str))
    answers = annotations_on(store.read_labels(settings), pool_ids | sent)
    return len(answers) + len(sent - set(answers["id"].astype(str)))


def with_relabels(
    settings: Settings,
    agreed: Consensus,
    model: Any,
    labeled: pd.DataFrame,
    X_labeled: Any,
    picked: tuple[Any, Any, list[str], np.ndarray],
) -> tuple[list[str], list[Any], list[str], dict[str, Any]]:
    """The strategy's picks (ids, scores, sources, the model's probabilities) merged with the
    labeled items most likely mislabeled (:mod:`tasks.loop.relabel`): relabel rows (``source:
    relabel``, their score the chance the consensus is wrong) take the place of the last new
    picks, at most ``annotation.relabel_share`` of the batch."""
    from tasks.loop import relabel
    from tasks.loop.training_data import annotations_on

    ids, scores, sources, new_probas = picked
    answers = annotations_on(store.read_labels(settings), set(labeled["id"].astype(str)))
    y = labeled["label"].astype(str).to_numpy()
    try:
        probas, classes = relabel.out_of_sample_probas(
            model.estimator, X_labeled, y, settings.project.seed
        )
    except ValueError as error:  # e.g. a fold with one class: new items only this round
        return list(ids), list(scores), list(sources), {"relabel_note": str(error)}
    judged = relabel.score_labeled(
        answers,
        pd.Series(y, index=labeled["id"].astype(str)),
        probas,
        classes,
        agreed.annotator_accuracy,
    )
    eligible = labeled["id"].isin(relabel.candidates(answers, settings.annotation.max_annotators))
    batch = len(ids)
    kinds, picks = relabel.relabel_queue(
        new_probas, judged, eligible.to_numpy(), batch, settings.annotation.relabel_share
    )
    old_ids = labeled["id"].astype(str).to_numpy()
    rows = [
        (old_ids[k], judged.wrong[k], relabel.RELABEL) if again else (ids[k], scores[k], sources[k])
        for again, k in zip(kinds, picks, strict=True)
    ]
    out = [list(column) for column in zip(*rows, strict=True)] if rows else [[], [], []]
    return out[0], out[1], out[2], {"n_relabel": int(kinds.sum())}


def restore_strategy_state(
    settings: Settings, round_: int, strategy: Any, pool: pd.DataFrame, labeled: pd.DataFrame
) -> None:
    """Give a strategy that learns across rounds the state the latest earlier round saved
    (its rows as item ids, mapped to this pool's rows) and the labels known now."""
    from strategies.bandit import remap_rows
    from tasks.loop.rounds import round_states

    rows = pd.Series(np.arange(len(pool)), index=pool["id"].astype(str))
    earlier = [s for s in round_states(settings) if s.round < round_ and "strategy_state" in s.info]
    if earlier:
        saved = earlier[-1].info["strategy_state"]
        strategy.set_state(
            remap_rows(saved, lambda i: None if i not in rows.index else int(rows[i]))
        )
    known = labeled[labeled["id"].astype(str).isin(rows.index)]
    strategy.observe(
        rows[known["id"].astype(str)].to_numpy(), targets(known["label"], settings.model.task)
    )


def saved_strategy_state(strategy: Any, pool: pd.DataFrame) -> dict[str, Any]:
    """The round info that carries a learning strategy's state (rows as item ids) and what it
    chose this round (its arm, the arms' probabilities, the rewards that arrived)."""
    from strategies.bandit import remap_rows

    ids = pool["id"].astype(str).to_numpy()
    state = remap_rows(strategy.get_state(), lambda k: str(ids[k]))
    history = state.get("history") or [{}]
    return {"strategy_state": state, "strategy_choice": history[-1]}


def with_predictions(settings: Settings, batch: pd.DataFrame) -> pd.DataFrame:
    """``batch`` with the champion's ``prediction`` (and, for a classifier, its probability,
    ``prediction_score``): the pre-annotations annotators correct instead of starting from
    nothing. No champion yet (a cold or first round): the batch as it is."""
    from tasks.model.registry import NoChampionError, load_champion
    from tasks.model.serving import RawInputModel

    versions = batch["model_version"].dropna() if "model_version" in batch else batch.iloc[:0]
    if batch.empty or versions.empty or versions.iloc[0] in ("none", "initial"):
        return batch  # no champion selected this batch: none to pre-annotate with
    if str(versions.iloc[0]).startswith("external:"):  # your model's classes, kept by select
        path = external_predictions_path(settings, int(batch["round"].dropna().iloc[0]))
        if not path.exists():
            return batch
        out = batch.merge(pd.read_parquet(path), on="id", how="left")
        for column in ("prediction", "prediction_score"):  # gold items have none: null, not NaN
            out[column] = out[column].astype(object).where(out[column].notna(), None)
        return out
    try:
        model, version = load_champion(setup_tracking(settings))
    except NoChampionError:
        return batch
    if not isinstance(model, RawInputModel):
        return batch
    out = batch.copy()
    out["prediction"] = list(model.predict(None, batch))
    if settings.model.task == "classification":
        out["prediction_score"] = model.predict_proba(batch).max(axis=1)
    out["model_version"] = f"v{version}"
    return out


@round_step("dispatched")
def dispatch(settings: Settings, state: RoundState, backend: Any = None) -> dict[str, Any]:
    """Send the manifest's items to the annotation backend, once, with gold items mixed in
    (``annotation.gold_fraction``; their ids are recorded as ``gold_ids``, see
    :func:`~tasks.loop.quality.with_gold`); its relabel rows go to one more annotator each
    (:func:`ask_again`), recorded as ``more_requested`` (once, if the step is run again)."""
    backend = make_backend(settings) if backend is None else backend
    manifest = store.read_manifest(settings, state.round)
    again = manifest["source"].eq("relabel").to_numpy()
    pool = store.read_pool(settings)
    columns = ["id", "round", "rank", "score", "model_version"]
    batch = manifest.loc[~again, columns].merge(pool, on="id", how="left")
    mixed, gold_ids = quality.with_gold(settings, state.round, batch)
    mixed = with_predictions(settings, mixed)
    if settings.annotation.routing == "quality" and len(mixed):  # hard items to the best
        from tasks.loop.routing import with_routes

        mixed = with_routes(settings, state.round, mixed, backend, gold_ids)
    sent = backend.dispatch(mixed, state.round) if len(mixed) else []
    asked = dict(state.info.get("more_requested", {}))  # a rerun asks nobody twice
    relabel_ids = manifest.loc[again, "id"].astype(str).tolist()
    if relabel_ids:
        asked |= ask_again(settings, backend, [i for i in relabel_ids if i not in asked])
        state.info["more_requested"] = asked
        save_round(settings, state)
    step_point(state.id, "during:dispatch")
    return {
        "n_dispatched": len(manifest),
        "newly_sent": len(sent),
        "gold_ids": gold_ids,
        "more_requested": asked,
        "relabel_unserved": sorted(set(relabel_ids) - set(asked)),
    }


def ask_again(settings: Settings, backend: Any, ids: list[str]) -> dict[str, int]:
    """Send the relabel picks ``ids`` to one more annotator each (``backend.request_more``, the
    path of :func:`~tasks.loop.quality.review_agreement`); returns id -> its votes when asked,
    which collect's review reads to wait for the new answer. A backend that cannot: an error."""
    if not ids:
        return {}
    request_more = getattr(backend, "request_more", None)
    if request_more is None:
        raise RoundError(
            f"the {backend.name} backend cannot send an item to one more annotator "
            "(relabel picks in the manifest): set annotation.relabel_share: 0"
        )
    log = store.read_labels(settings)
    answers = store.current_answers(log[log["id"].astype(str).isin(set(ids))])
    votes = answers.dropna(subset=["label"]).groupby("id")["annotator"].nunique()
    answer = request_more(ids)
    served = list(ids) if answer is None else [str(i) for i in answer]  # Label Studio: None
    return {i: int(votes.get(i, 0)) for i in served}


@round_step("collected")
def collect(
    settings: Settings,
    state: RoundState,
    backend: Any = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any] | RoundState:
    """Append new annotations (after the label gate) and check the round's quorum, polling for up
    to ``loop.wait_seconds`` (on ``clock``, sleeping with ``sleep``). Without a quorum the
    round's status becomes ``waiting``.

    Answers on gold (holdout) items go to ``gold_answers.parquet``, never to the label log. Items
    whose annotators disagree go to one more annotator and count as unlabeled until that answer
    arrives, or are flagged (:func:`~tasks.loop.quality.review_agreement`).
    """
    backend = make_backend(settings) if backend is None else backend
    wanted = set(store.read_manifest(settings, state.round)["id"])
    holdout_ids = set(store.read_holdout(settings)["id"].astype(str))
    deadline = clock() + settings.loop.wait_seconds
    appended = int(state.info.get("n_collected", 0))
    while True:
        collected = backend.collect(None)
        is_gold = (
            collected["id"].astype(str).isin(holdout_ids).to_numpy()
            if len(collected)
            else np.zeros(0, dtype=bool)
        )
        quality.store_gold_answers(settings, collected[is_gold])
        new = collected[~is_gold]
        if settings.model.task == "ner" and len(new):  # spans -> token tags, as the log holds them
            new = tag_answers(new, sentence_tokens(settings, set(new["id"].astype(str))))
        new = new_annotations(settings, new)  # a changed answer is new, an unchanged one is not
        if len(new):
            label_gate.collect_labels(
                new, settings, round_=state.round, file=f"{backend.name} annotations"
            )
            appended += len(new)
            state.info["n_collected"] = appended
            save_round(settings, state)
        asked, pending = quality.review_agreement(settings, state, backend, wanted)
        if asked:
            continue  # a backend may answer at once (the simulated one does): poll again now
        have = (set(store.read_labels(settings)["id"]) & wanted) - pending
        fraction = len(have) / len(wanted) if wanted else 1.0
        if fraction >= settings.loop.quorum:
            state.status = "running"
            return {"labeled_fraction": fraction, "n_labeled": len(have)}
        if clock() >= deadline:
            state.status = "waiting"
            state.info.update(labeled_fraction=fraction, n_labeled=len(have))
            return save_round(settings, state)
        sleep(min(settings.loop.poll_seconds, max(0.0, deadline - clock())))
