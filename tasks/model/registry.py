"""Champion/challenger in the MLflow model registry.

Every round registers its model as a new version (the challenger). The alias ``champion`` moves
to it only if it beats the champion's holdout score by ``evaluate.margin`` in the direction of
``evaluate.metric``; the decision and both scores are logged in the round run and on the version.
Selection always loads the champion (:func:`load_champion`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from tasks.model.metrics import higher_is_better
from tasks.tracking.runs import Tracking, finite_metrics

SCORE_TAG = "holdout_score"
METRIC_TAG = "holdout_metric"


class NoChampionError(LookupError):
    """The registered model has no champion yet (no round has finished)."""


@dataclass(frozen=True)
class PromotionDecision:
    """Outcome of one champion/challenger comparison."""

    promoted: bool
    metric: str
    margin: float
    challenger_version: str
    challenger_score: float
    champion_version: str | None
    champion_score: float | None
    reason: str


def is_better(challenger: float, champion: float | None, metric: str, margin: float) -> bool:
    """Whether ``challenger`` beats ``champion`` by more than ``margin`` on ``metric`` (higher
    is better for accuracy/F1/recall, lower for losses, ECE and errors). No champion: True."""
    if not math.isfinite(challenger):
        return False
    if champion is None or not math.isfinite(champion):
        return True
    gain = challenger - champion if higher_is_better(metric) else champion - challenger
    return gain > margin


def register_challenger(
    tracking: Tracking, model_uri: str, score: float, metric: str, round_index: int
) -> str:
    """Register ``model_uri`` (from ``log_model``) as a new version; its holdout score is kept as
    version tags. Returns the version number."""
    import mlflow

    version = mlflow.register_model(
        model_uri,
        tracking.registered_model,
        tags={METRIC_TAG: metric, SCORE_TAG: repr(float(score)), "round": str(round_index)},
    )
    return str(version.version)


def registered_version(tracking: Tracking, run_id: str) -> str | None:
    """The version registered from the run ``run_id``, if any (the newest if several)."""
    import mlflow

    client = mlflow.MlflowClient()
    found = client.search_model_versions(
        f"name = '{tracking.registered_model}' and run_id = '{run_id}'"
    )
    return str(max(int(v.version) for v in found)) if found else None


def current_champion(tracking: Tracking) -> tuple[str, float | None, str | None] | None:
    """``(version, score, metric)`` of the champion from its version tags, or None."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    try:
        version = client.get_model_version_by_alias(
            tracking.registered_model, tracking.champion_alias
        )
    except MlflowException:
        return None
    score = version.tags.get(SCORE_TAG)
    return (
        str(version.version),
        (float(score) if score is not None else None),
        version.tags.get(METRIC_TAG),
    )


def promote_if_better(
    tracking: Tracking,
    challenger_version: str,
    challenger_score: float,
    *,
    metric: str,
    margin: float = 0.0,
    champion_score: float | None = None,
    step: int | None = None,
) -> PromotionDecision:
    """Move the champion alias to ``challenger_version`` if it beats the champion.

    ``champion_score`` defaults to the score stored on the champion's version; pass a fresh one
    (the champion re-evaluated) when the holdout or the metric has changed since. The decision
    and both scores are logged in the active run, if any, and tagged on the challenger version.
    """
    import mlflow

    client = mlflow.MlflowClient()
    champion = current_champion(tracking)
    champion_version = None
    if champion is not None:
        champion_version = champion[0]
        if champion_score is None and champion[2] == metric:
            champion_score = champion[1]
    promoted = is_better(challenger_score, champion_score, metric, margin)
    if champion is None:
        reason = "first model: no champion yet"
    elif champion_score is None:
        reason = f"champion v{champion_version} has no {metric} score; challenger takes over"
    else:
        direction = "higher" if higher_is_better(metric) else "lower"
        verb = "beats" if promoted else "does not beat"
        reason = (
            f"challenger {metric}={challenger_score:.4f} {verb} champion v{champion_version} "
            f"{metric}={champion_score:.4f} by more than {margin} ({direction} is better)"
        )
    if promoted:
        client.set_registered_model_alias(
            tracking.registered_model, tracking.champion_alias, challenger_version
        )
    decision = PromotionDecision(
        promoted=promoted,
        metric=metric,
        margin=margin,
        challenger_version=str(challenger_version),
        challenger_score=float(challenger_score),
        champion_version=champion_version,
        champion_score=champion_score,
        reason=reason,
    )
    client.set_model_version_tag(
        tracking.registered_model, str(challenger_version), "promoted", str(promoted).lower()
    )
    if mlflow.active_run() is not None:
        log_decision(decision, step=step)
    return decision


def log_decision(decision: PromotionDecision, step: int | None = None) -> None:
    """The decision in the active run: metrics, tags and ``registry/decision.json``."""
    import mlflow

    metrics = {"challenger_score": decision.challenger_score, "promoted": float(decision.promoted)}
    if decision.champion_score is not None:
        metrics["champion_score"] = decision.champion_score
    mlflow.log_metrics(finite_metrics(metrics), step=step)
    mlflow.set_tags(
        {
            "labelwise.promoted": str(decision.promoted).lower(),
            "labelwise.challenger_version": decision.challenger_version,
            "labelwise.champion_version": str(
                decision.challenger_version if decision.promoted else decision.champion_version
            ),
            "labelwise.decision": decision.reason,
        }
    )
    mlflow.log_dict(asdict(decision), "registry/decision.json")


def load_champion(tracking: Tracking) -> tuple[Any, str]:
    """The champion model and its version: what selection uses. The loop's champion is a
    :class:`~tasks.model.serving.RawInputModel` (raw items in); a model logged with MLflow's
    scikit-learn flavour comes back as the estimator."""
    import mlflow.pyfunc
    import mlflow.sklearn

    champion = current_champion(tracking)
    if champion is None:
        raise NoChampionError(
            f"registered model {tracking.registered_model!r} has no "
            f"{tracking.champion_alias!r} alias yet"
        )
    uri = f"models:/{tracking.registered_model}@{tracking.champion_alias}"
    loaded = mlflow.pyfunc.load_model(uri)
    if (
        loaded.metadata.flavors.get("python_function", {}).get("loader_module")
        == "mlflow.pyfunc.model"
    ):
        return loaded.unwrap_python_model(), champion[0]
    return mlflow.sklearn.load_model(uri), champion[0]


#: the tag of a version that is your own model (``model.kind: external``), not one of labelwise's
EXTERNAL_TAG = "labelwise.external"
#: the tag saying up to which round's labels your model was trained
TRAINED_ON_TAG = "labelwise.trained_on_round"


def register_external(
    tracking: Tracking,
    uri: str,
    *,
    trained_on_round: int | None = None,
    name: str | None = None,
    description: str | None = None,
) -> str:
    """Record a version of your own model (its artifacts at ``uri``: any URI MLflow keeps, e.g.
    ``s3://...``, ``runs:/...`` or a path) in the project's registered model, tagged as yours and
    with the round whose labels trained it, and make it the champion; returns its version."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    try:
        client.get_registered_model(tracking.registered_model)
    except MlflowException:
        client.create_registered_model(tracking.registered_model)
    tags = {EXTERNAL_TAG: "true"}
    if trained_on_round is not None:
        tags[TRAINED_ON_TAG] = str(trained_on_round)
    if name:
        tags["labelwise.version_name"] = name
    version = client.create_model_version(
        tracking.registered_model, source=uri, tags=tags, description=description
    )
    client.set_registered_model_alias(
        tracking.registered_model, tracking.champion_alias, version.version
    )
    return str(version.version)


def external_champion(tracking: Tracking) -> dict[str, str] | None:
    """The champion when it is your own registered model: its version, source and tags; None
    when there is none, or it is one of labelwise's."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        version = mlflow.MlflowClient().get_model_version_by_alias(
            tracking.registered_model, tracking.champion_alias
        )
    except MlflowException:
        return None
    if version.tags.get(EXTERNAL_TAG) != "true":
        return None
    return {"version": str(version.version), "source": str(version.source), **version.tags}
