"""Models from ``params.yaml``: build, calibrate, weight and fit.

``build_model`` maps ``(kind, task)`` to a scikit-learn compatible estimator, wrapped in the
configured calibration; ``fit_model`` fits it with optional importance weights that undo the
sampling bias of active selection (``model.importance_weighting``).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import LabelEncoder, StandardScaler
from xgboost import XGBClassifier, XGBRegressor

from tasks.settings import ModelSettings

_EPS = 1e-12


class XGBLabelClassifier(XGBClassifier):
    """``XGBClassifier`` that accepts any labels (e.g. strings): they are encoded to 0..K-1 for
    xgboost and ``classes_`` / ``predict`` give the original labels back."""

    def fit(
        self, X: Any, y: Any, *, sample_weight: Any = None, **kwargs: Any
    ) -> XGBLabelClassifier:
        self.__dict__.pop("label_encoder_", None)  # xgboost's fit checks classes_ against 0..K-1
        encoder = LabelEncoder().fit(np.asarray(y))
        # a fitted xgboost classifier keeps the objective of its last fit (and clone copies it):
        # switch between the default binary and multi-class objectives with the number of classes
        if encoder.classes_.size > 2 and self.objective == "binary:logistic":
            self.objective = "multi:softprob"
        elif encoder.classes_.size <= 2 and self.objective == "multi:softprob":
            self.objective = "binary:logistic"
        super().fit(X, encoder.transform(np.asarray(y)), sample_weight=sample_weight, **kwargs)
        self.label_encoder_ = encoder
        return self

    @property
    def classes_(self) -> np.ndarray:
        encoder = self.__dict__.get("label_encoder_")
        return encoder.classes_ if encoder is not None else np.arange(self.n_classes_)

    def predict(self, X: Any, **kwargs: Any) -> np.ndarray:
        codes = np.asarray(super().predict(X, **kwargs)).astype(int)
        return self.classes_[codes]


class TemperatureScaledClassifier(ClassifierMixin, BaseEstimator):
    """Temperature scaling: ``softmax(log p / T)`` with one ``T`` fit by minimising the NLL of
    out-of-fold probabilities (``cv`` folds); the estimator is then refit on all rows.

    References
    ----------
    Guo, C., Pleiss, G., Sun, Y. & Weinberger, K. Q. (2017). On calibration of modern neural
    networks. ICML.
    """

    def __init__(self, estimator: Any, cv: int = 3, random_state: int | None = None) -> None:
        self.estimator = estimator
        self.cv = cv
        self.random_state = random_state

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> TemperatureScaledClassifier:
        y = np.asarray(y)
        fit_params = weight_params(self.estimator, sample_weight)
        _, counts = np.unique(y, return_counts=True)
        n_splits = int(min(self.cv, counts.min()))
        self.temperature_ = 1.0
        if n_splits >= 2 and counts.size >= 2:
            folds = StratifiedKFold(n_splits, shuffle=True, random_state=self.random_state)
            oof = cross_val_predict(
                clone(self.estimator), X, y, cv=folds, method="predict_proba", params=fit_params
            )
            codes = np.searchsorted(np.unique(y), y)
            self.temperature_ = fit_temperature(oof, codes, sample_weight)
        self.estimator_ = clone(self.estimator).fit(X, y, **fit_params)
        self.classes_ = np.asarray(self.estimator_.classes_)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        return apply_temperature(self.estimator_.predict_proba(X), self.temperature_)

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


def apply_temperature(probas: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log(probas) / temperature)`` row-wise; T > 1 softens, T < 1 sharpens."""
    logits = np.log(np.clip(probas, _EPS, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    out = np.exp(logits)
    return out / out.sum(axis=1, keepdims=True)


def fit_temperature(probas: np.ndarray, codes: np.ndarray, sample_weight: Any = None) -> float:
    """The temperature minimising the (weighted) negative log-likelihood of ``codes``."""
    rows = np.arange(codes.shape[0])
    weights = np.ones(codes.shape[0]) if sample_weight is None else np.asarray(sample_weight)

    def nll(log_t: float) -> float:
        scaled = apply_temperature(probas, float(np.exp(log_t)))
        return float(-(weights * np.log(scaled[rows, codes] + _EPS)).sum() / weights.sum())

    # T in [e^-3, e^4]: from sharpening a timid model to flattening a very overconfident one
    result = minimize_scalar(nll, bounds=(-3.0, 4.0), method="bounded")
    return float(np.exp(result.x))


def _classifier(kind: str, params: dict[str, Any], seed: int | None) -> Any:
    if kind == "logreg":
        return LogisticRegression(**{"max_iter": 1000, **params})
    if kind == "forest":
        return RandomForestClassifier(**{"n_estimators": 100, "random_state": seed, **params})
    return XGBLabelClassifier(
        **{"n_estimators": 100, "random_state": seed, "n_jobs": 1, "verbosity": 0, **params}
    )


def _regressor(kind: str, params: dict[str, Any], seed: int | None) -> Any:
    if kind == "logreg":
        return Ridge(**params)
    if kind == "forest":
        return RandomForestRegressor(**{"n_estimators": 100, "random_state": seed, **params})
    return XGBRegressor(
        **{"n_estimators": 100, "random_state": seed, "n_jobs": 1, "verbosity": 0, **params}
    )


_BUILDERS: dict[str, Callable[[str, dict[str, Any], int | None], Any]] = {
    "classification": _classifier,
    "regression": _regressor,
}


def _tagger(kind: str, params: dict[str, Any], seed: int | None) -> Any:
    from tasks.model.tagger import TokenTagger

    return TokenTagger(random_state=seed, **params)  # model.kind: its tokens are logistic


_BUILDERS["ner"] = _tagger


def build_model(settings: ModelSettings, random_state: int | None = None) -> Any:
    """An unfitted estimator for ``settings`` (kind, task, params, scaling, calibration); an
    unresolved ``task: auto`` builds a classifier (the loop resolves it from the data first,
    :func:`tasks.data.profile.resolve`)."""
    if settings.task == "auto":
        settings = settings.model_copy(update={"task": "classification"})
    if settings.kind == "torch_cnn":
        return _calibrated(_torch_cnn(settings, random_state), settings, random_state)
    if settings.task == "ner":
        return _tagger(settings.kind, dict(settings.params), random_state)
    if settings.kind == "auto":
        from tasks.model.auto import AutoModel

        model = AutoModel(settings.task, random_state=random_state, **settings.params)
        return _calibrated(model, settings, random_state)
    model = _BUILDERS[settings.task](settings.kind, dict(settings.params), random_state)
    if settings.scale and settings.kind == "logreg":
        model = make_pipeline(StandardScaler(), model)
    return _calibrated(model, settings, random_state)


def _torch_cnn(settings: ModelSettings, random_state: int | None) -> Any:
    """``kind: torch_cnn``: the CNN classifier on ``model.device`` (checked now, not at the
    first fit), ``model.params`` its keywords (image_shape, epochs, committee...)."""
    from tasks.model.torch_cnn import TorchCNNClassifier, resolve_device

    if settings.task != "classification":
        raise ValueError(
            f"model.kind torch_cnn classifies images; task {settings.task!r} needs "
            "another model.kind"
        )
    resolve_device(settings.device)
    params = {"device": settings.device, "random_state": random_state, **settings.params}
    return TorchCNNClassifier(**params)


def _calibrated(model: Any, settings: ModelSettings, random_state: int | None) -> Any:
    """``model`` in the configured probability calibration (a classifier's only)."""
    if settings.task == "classification" and settings.calibration is not None:
        if settings.calibration == "temperature":
            model = TemperatureScaledClassifier(model, settings.calibration_cv, random_state)
        else:
            model = CalibratedClassifierCV(
                model, method=settings.calibration, cv=settings.calibration_cv
            )
    return model


def weight_params(model: Any, sample_weight: Any) -> dict[str, Any]:
    """``fit`` keyword arguments that hand ``sample_weight`` to ``model`` (through a Pipeline)."""
    if sample_weight is None:
        return {}
    if isinstance(model, Pipeline):
        return {f"{model.steps[-1][0]}__sample_weight": np.asarray(sample_weight)}
    return {"sample_weight": np.asarray(sample_weight)}


def fit_model(model: Any, X: Any, y: Any, sample_weight: Any = None) -> Any:
    """Fit a clone of ``model`` (weights routed to the final estimator and the calibrator).

    A calibrated classifier whose rarest class has fewer rows than ``cv`` folds is fit with fewer
    folds, or uncalibrated if a class has a single row (early rounds of a loop).
    """
    model = clone(model)
    y = np.asarray(y)
    if isinstance(model, CalibratedClassifierCV):
        min_count = int(np.unique(y, return_counts=True)[1].min())
        if min_count < 2:
            return fit_model(model.estimator, X, y, sample_weight)
        model.set_params(cv=min(int(model.cv), min_count))
        if sample_weight is None:
            return model.fit(X, y)
        with warnings.catch_warnings():
            # the Pipeline gets its weights through the routed fit parameter below
            warnings.filterwarnings("ignore", message=".*does not appear to accept sample_weight")
            inner = weight_params(model.estimator, sample_weight)
            inner.pop("sample_weight", None)
            return model.fit(X, y, sample_weight=np.asarray(sample_weight), **inner)
    if isinstance(model, TemperatureScaledClassifier):
        return model.fit(X, y, sample_weight=sample_weight)
    return model.fit(X, y, **weight_params(model, sample_weight))


def importance_weights(selection_probabilities: Any, max_weight: float | None = 20.0) -> np.ndarray:
    """Inverse-probability weights ``1 / q_i`` for labeled rows picked with probability ``q_i``,
    capped at ``max_weight`` and normalised to mean 1 (so the effective sample size is kept).

    Rows picked at random from the whole pool have ``q = batch_size / pool_size``; rows from the
    initial seed set can be given ``q = 1`` (weight before normalising: 1).
    """
    q = np.asarray(selection_probabilities, dtype=np.float64)
    if q.ndim != 1 or q.size == 0:
        raise ValueError(f"selection_probabilities must be a non-empty 1-d array, got {q.shape}")
    if np.any(~np.isfinite(q)) or np.any(q <= 0.0) or np.any(q > 1.0):
        raise ValueError("selection probabilities must lie in (0, 1]")
    weights = 1.0 / q
    if max_weight is not None:
        weights = np.minimum(weights, max_weight)
    return weights / weights.mean()


def training_weights(settings: ModelSettings, selection_probabilities: Any) -> np.ndarray | None:
    """Importance weights for ``fit_model`` when ``model.importance_weighting`` is on, else None."""
    if not settings.importance_weighting or selection_probabilities is None:
        return None
    return importance_weights(selection_probabilities, settings.max_importance_weight)


def predict_interval(
    model: Any, X: Any, level: float = 0.9
) -> tuple[np.ndarray, np.ndarray] | None:
    """Lower/upper bounds from a fitted random forest's per-tree predictions (empirical quantiles);
    ``None`` for models without a tree ensemble."""
    model = getattr(model, "best_", model)  # model.kind auto: the model its search chose
    trees = getattr(model, "estimators_", None)
    if not isinstance(model, RandomForestRegressor) or not trees:
        return None
    X = np.asarray(X, dtype=np.float32)
    per_tree = np.stack([tree.predict(X) for tree in trees])
    alpha = (1.0 - level) / 2.0
    return np.quantile(per_tree, alpha, axis=0), np.quantile(per_tree, 1.0 - alpha, axis=0)
