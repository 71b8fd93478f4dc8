"""``model.kind: auto``: each fit picks the model family and its regularisation by
cross-validation on the labeled rows alone, with class weights for imbalance.

The learner decides label efficiency more than the strategy does (a linear model is strong at
20 labels, boosted trees at 2,000), so the search runs on every fit: small (at most five
candidates, three folds) and bounded (the candidates' sizes follow the labeled set). The chosen
model is both the task model and the query model; ``choice_`` says which and why.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, clone
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import balanced_accuracy_score, f1_score, mean_squared_error
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.class_weight import compute_sample_weight
from sklearn.utils.metaestimators import available_if
from xgboost import XGBRegressor

#: fewer labeled rows than this: only the linear candidates (trees overfit a handful of rows)
MIN_ROWS_FOR_TREES = 40


def candidates(task: str, X: Any, n_rows: int, seed: int | None) -> dict[str, Any]:
    """The models the search compares, cheapest first (ties go to the earlier one).

    Dense rows: a linear model at two regularisations, gradient-boosted trees (xgboost, one
    thread: several times faster than scikit-learn's histogram boosting at these sizes on a
    busy machine) and a forest, the trees only from ``MIN_ROWS_FOR_TREES`` rows on; sparse rows
    (TF-IDF): a linear model at three regularisations, since trees on 20,000 sparse columns are
    slow and weak. Classifiers weigh classes as "balanced" (xgboost through sample weights).
    """
    from tasks.model.build import XGBLabelClassifier

    sparse = sp.issparse(X)
    trees = not sparse and n_rows >= MIN_ROWS_FOR_TREES
    boost = {"n_estimators": 100, "max_depth": 4, "learning_rate": 0.1, "n_jobs": 1}
    forest = {"n_estimators": 60, "min_samples_leaf": 1, "n_jobs": 1, "random_state": seed}
    if task == "regression":

        def ridge(alpha: float) -> Any:
            model = Ridge(alpha=alpha)
            return model if sparse else make_pipeline(StandardScaler(), model)

        models = {"ridge_a1": ridge(1.0), "ridge_a10": ridge(10.0)}
        if sparse:
            return {"ridge_a0.1": ridge(0.1), **models}
        if trees:
            models["xgb"] = XGBRegressor(**boost, random_state=seed, verbosity=0)
            models["forest"] = RandomForestRegressor(**forest)
        return models

    def logistic(C: float) -> Any:
        model = LogisticRegression(C=C, class_weight="balanced", max_iter=2000)
        return model if sparse else make_pipeline(StandardScaler(), model)

    if sparse:
        return {
            "logreg_c1": logistic(1.0),
            "logreg_c10": logistic(10.0),
            "logreg_c100": logistic(100.0),
        }
    models = {"logreg_c1": logistic(1.0), "logreg_c0.1": logistic(0.1)}
    if trees:
        models["xgb"] = XGBLabelClassifier(**boost, random_state=seed, verbosity=0)
        models["forest"] = RandomForestClassifier(**forest, class_weight="balanced_subsample")
    return models


#: candidates without a class_weight option: they get balanced sample weights instead
_SAMPLE_BALANCED = ("xgb",)


def _fit(model: Any, X: Any, y: Any, sample_weight: Any) -> Any:
    from tasks.model.build import weight_params

    return model.fit(X, y, **weight_params(model, sample_weight))


#: a candidate is chosen only if its mean fold score beats the baseline's by more than this
SKILL_MARGIN = 1e-9


def _constant_prediction(y_train: np.ndarray, n: int, regression: bool) -> np.ndarray:
    """``n`` predictions of a model that learned nothing from ``y_train``: its most frequent
    label (the first in sort order on ties), or its mean for numbers."""
    if regression:
        return np.full(n, float(np.mean(y_train)))
    values, counts = np.unique(y_train, return_counts=True)
    return np.repeat(values[int(counts.argmax())], n)


def _rows(X: Any, index: np.ndarray) -> Any:
    return X[index] if sp.issparse(X) or isinstance(X, np.ndarray) else np.asarray(X)[index]


#: what the cross-validation may score by (``scoring``), per task; the first is the default
SCORINGS = {
    "classification": ("balanced_accuracy", "accuracy", "macro_f1", "rare_class_recall"),
    "regression": ("rmse", "mae"),
}


#: project metrics the search scores by balanced accuracy anyway: macro-F1's close proxy, and
#: steadier on folds of a few labels per class (what the defaults were measured with)
PROXIED = {"macro_f1": "balanced_accuracy"}


#: metrics a binary classifier's decision threshold is tuned for (a rare class's recall is not:
#: it would always want the lowest threshold)
THRESHOLD_METRICS = ("macro_f1", "accuracy", "balanced_accuracy")

#: the threshold is tuned only where the labeled rows' rarer class is under this share: there the
#: balanced weights move the cut far from where the metric wants it; on near-balanced rows they
#: barely move it and a tuned cut is noise (titanic, wells: -0.02 macro-F1 at 500 labels, while
#: credit_default, hmda, email_spam gained +0.02 to +0.12)
IMBALANCED_SHARE = 0.2

#: the thresholds tried on the out-of-fold probabilities of the positive class
THRESHOLDS = np.round(np.arange(0.05, 0.96, 0.05), 2)


def decision_metric_for(metric: str, task: str) -> str | None:
    """The metric the decision threshold of a binary ``auto`` classifier is tuned for: the
    project's metric where a threshold can serve it (:data:`THRESHOLD_METRICS`), else None (the
    most probable class is predicted)."""
    return metric if task == "classification" and metric in THRESHOLD_METRICS else None


def _metric(name: str, y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """A label metric, higher is better: accuracy, macro_f1, else balanced accuracy."""
    if name == "accuracy":
        return float(np.mean(y_true == y_pred))
    if name == "macro_f1":
        return float(f1_score(y_true, y_pred, average="macro", zero_division=0))
    return float(balanced_accuracy_score(y_true, y_pred))


def tune_threshold(y: np.ndarray, positive_proba: np.ndarray, positive: Any, metric: str) -> float:
    """The threshold on ``positive_proba`` that scores best by ``metric`` on these (out-of-fold)
    predictions; ties go to the threshold nearest 0.5 (the most probable class).

    Class weights make a rare class predicted at all, but on a weak signal they make it
    predicted far too often (a 5% class on a third of the rows: macro-F1 0.50 where 0.57 is
    there to take); the threshold the metric wants undoes that without losing the weights'
    ranking."""
    y = np.asarray(y)
    negative = np.unique(y[y != positive])
    negative = negative[0] if negative.size else None
    best, best_score = 0.5, -np.inf
    for threshold in sorted(THRESHOLDS, key=lambda t: abs(t - 0.5)):
        pred = np.where(positive_proba >= threshold, positive, negative)
        score = _metric(metric, y, pred)
        if score > best_score + 1e-12:
            best, best_score = float(threshold), score
    return best


def scoring_for(metric: str, task: str) -> str:
    """The cross-validation scoring that follows the project's ``evaluate.metric``: the same
    metric where the search can score it from predicted labels or numbers (accuracy, the rare
    class's recall, MAE), macro-F1 by its proxy (:data:`PROXIED`), else the task's default
    (probability metrics such as log loss are not searched on)."""
    aliases = {"minority_recall": "rare_class_recall", **PROXIED}
    metric = aliases.get(metric, metric)
    options = SCORINGS.get(task, SCORINGS["classification"])
    return metric if metric in options else options[0]


class AutoModel(BaseEstimator):
    """A classifier or regressor that is, after ``fit``, the best of :func:`candidates` by
    ``cv``-fold cross-validation on its training rows (``scoring``: balanced accuracy by
    default for classes, RMSE for numbers; the loop passes the project's metric,
    :func:`scoring_for`), refit on all of them.

    ``decision_metric`` (:func:`decision_metric_for`; None: off): a binary classifier whose
    rarer class is under :data:`IMBALANCED_SHARE` of its rows predicts its second class where
    that class's probability reaches ``threshold_``, tuned for that metric on the chosen
    candidate's out-of-fold probabilities of the same search (no extra fits);
    ``predict_proba`` is untouched, so the strategies rank rows as before.

    A candidate is chosen only if it beats, on the same folds, a model that learned nothing
    (the training fold's majority class, or its mean): at a handful of rare labels every
    candidate can score at chance, and the best of that noise was often a forest predicting one
    class (lending_club, 10 seeds to 200 labels: in 26 of 200 rounds, macro-F1 0.487, the
    all-majority score); with no skill to choose by, the cheapest candidate is taken, as when the
    search cannot run.

    Attributes after fit: ``best_`` (the fitted model), ``choice_`` (its name), ``cv_scores_``
    (name -> mean fold score; NaN where the search could not run), ``baseline_score_`` (the
    no-skill model's mean fold score; NaN likewise), ``threshold_`` (0.5 unless tuned),
    ``search_seconds_``.
    """

    def __init__(
        self,
        task: str = "classification",
        cv: int = 3,
        random_state: int | None = None,
        scoring: str | None = None,
        decision_metric: str | None = None,
    ):
        self.task = task
        self.cv = cv
        self.random_state = random_state
        self.scoring = scoring
        self.decision_metric = decision_metric

    def __sklearn_tags__(self) -> Any:
        # a classifier or a regressor by its task (calibration and scorers ask)
        tags = super().__sklearn_tags__()
        tags.estimator_type = "regressor" if self.task == "regression" else "classifier"
        if self.task != "regression":
            from sklearn.utils import ClassifierTags

            tags.classifier_tags = ClassifierTags()
        else:
            from sklearn.utils import RegressorTags

            tags.regressor_tags = RegressorTags()
        return tags

    def _folds(self, y: np.ndarray) -> Any:
        if self.task == "regression":
            n_splits = min(self.cv, y.shape[0] // 5)
            return (
                KFold(n_splits, shuffle=True, random_state=self.random_state)
                if n_splits >= 2
                else None
            )
        _, counts = np.unique(y, return_counts=True)
        n_splits = int(min(self.cv, counts.min())) if counts.size >= 2 else 0
        if n_splits < 2:
            return None
        return StratifiedKFold(n_splits, shuffle=True, random_state=self.random_state)

    def _fold_score(self, y_true: np.ndarray, y_pred: np.ndarray) -> float:
        """The fold's score, higher is better (errors negated)."""
        scoring = self.scoring or SCORINGS[self.task][0]
        if scoring == "rmse":
            return -float(np.sqrt(mean_squared_error(y_true, y_pred)))
        if scoring == "mae":
            return -float(np.mean(np.abs(np.asarray(y_true) - np.asarray(y_pred))))
        if scoring == "rare_class_recall":  # the training rows' rarest class
            rare = np.asarray(y_true) == self.rare_class_
            return (
                float(np.mean(np.asarray(y_pred)[rare] == self.rare_class_)) if rare.any() else 0.0
            )
        return _metric(scoring, np.asarray(y_true), np.asarray(y_pred))

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> AutoModel:
        if self.task not in ("classification", "regression"):
            raise ValueError(
                f"model.kind auto: task must be classification or regression, got {self.task!r}"
            )
        scoring = self.scoring or SCORINGS[self.task][0]
        if scoring not in SCORINGS[self.task]:
            raise ValueError(
                f"model.kind auto: scoring {scoring!r} for a {self.task} search is not one of "
                f"{', '.join(SCORINGS[self.task])}"
            )
        if self.decision_metric is not None and self.decision_metric not in THRESHOLD_METRICS:
            raise ValueError(
                f"model.kind auto: decision_metric {self.decision_metric!r} is not one of "
                f"{', '.join(THRESHOLD_METRICS)}"
            )
        start = time.perf_counter()
        y = np.asarray(y)
        imbalanced = False  # two classes, the rarer under IMBALANCED_SHARE: the cut is tuned
        if self.task == "classification":
            values, counts = np.unique(y, return_counts=True)
            self.rare_class_ = values[int(counts.argmin())]
            imbalanced = counts.size == 2 and counts.min() < IMBALANCED_SHARE * y.shape[0]
        weights = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        models = candidates(self.task, X, y.shape[0], self.random_state)
        balanced = weights
        if self.task == "classification":
            balanced = compute_sample_weight("balanced", y) * (1.0 if weights is None else weights)

        def weights_of(name: str) -> np.ndarray | None:
            return balanced if name in _SAMPLE_BALANCED else weights

        folds = self._folds(y)
        scores = dict.fromkeys(models, float("nan"))
        tuned = imbalanced and self.decision_metric is not None and folds is not None
        # the positive class's out-of-fold probabilities, per candidate (for the threshold)
        oof = {name: np.full(y.shape[0], np.nan) for name in models} if tuned else {}
        baseline = float("nan")  # the mean fold score of predicting the training fold's
        # majority class (mean, for numbers): what a model that learned nothing scores
        if folds is not None and (len(models) > 1 or tuned):
            baseline = 0.0
            for train, test in folds.split(np.zeros(y.shape[0]), y):
                baseline += self._fold_score(
                    y[test],
                    _constant_prediction(y[train], test.shape[0], self.task == "regression"),
                )
                for name, model in models.items():
                    w = weights_of(name)
                    w = None if w is None else w[train]
                    fitted = _fit(clone(model), _rows(X, train), y[train], w)
                    score = self._fold_score(y[test], fitted.predict(_rows(X, test)))
                    scores[name] = score if np.isnan(scores[name]) else scores[name] + score
                    if tuned:
                        oof[name][test] = fitted.predict_proba(_rows(X, test))[:, 1]
            scores = {name: value / folds.get_n_splits() for name, value in scores.items()}
            baseline /= folds.get_n_splits()
        # the best mean fold score among the candidates that beat the baseline; ties, a search
        # that could not run, and a search no candidate wins (a one-class forest would tie the
        # baseline and be picked over a linear model's noise) go to the cheapest
        names = list(models)
        eligible = [  # a NaN baseline (no search) excludes no scored candidate
            name
            for name in names
            if np.isfinite(scores[name]) and not scores[name] <= baseline + SKILL_MARGIN
        ]
        choice = (
            max(eligible, key=lambda name: (scores[name], -names.index(name)))
            if eligible
            else names[0]
        )
        self.best_ = _fit(clone(models[choice]), X, y, weights_of(choice))
        self.threshold_ = 0.5
        if tuned and np.isfinite(oof[choice]).all():
            positive = np.asarray(self.best_.classes_)[1]
            self.threshold_ = tune_threshold(y, oof[choice], positive, self.decision_metric)
        self.choice_ = choice
        self.cv_scores_ = scores
        self.baseline_score_ = baseline
        self.search_seconds_ = time.perf_counter() - start
        if self.task == "classification":
            self.classes_ = np.asarray(self.best_.classes_)
        return self

    def predict(self, X: Any) -> np.ndarray:
        if getattr(self, "threshold_", 0.5) == 0.5:  # the model's own argmax (or one saved before)
            return self.best_.predict(X)
        positive_proba = self.best_.predict_proba(X)[:, 1]
        return np.where(positive_proba >= self.threshold_, self.classes_[1], self.classes_[0])

    # a regressor must not look like a classifier to the strategies (hasattr(predict_proba))
    @available_if(lambda self: self.task == "classification")
    def predict_proba(self, X: Any) -> np.ndarray:
        return self.best_.predict_proba(X)


def model_choice(estimator: Any) -> dict[str, Any] | None:
    """What an ``auto`` search chose (name, mean fold scores, the no-skill baseline's, seconds),
    or None for a fixed model; looks through a calibration wrapper."""
    calibrated = getattr(estimator, "calibrated_classifiers_", None) or []
    inner = [getattr(estimator, "estimator_", None), *(c.estimator for c in calibrated[:1])]
    for candidate in (estimator, *inner):
        if isinstance(candidate, AutoModel) and hasattr(candidate, "choice_"):
            return {
                "chosen": candidate.choice_,
                "cv_scores": {k: _finite_or_none(v) for k, v in candidate.cv_scores_.items()},
                "search_seconds": float(candidate.search_seconds_),
                "threshold": float(getattr(candidate, "threshold_", 0.5)),
                "baseline_score": _finite_or_none(getattr(candidate, "baseline_score_", np.nan)),
            }
    return None


def _finite_or_none(value: float) -> float | None:
    return None if np.isnan(value) else float(value)
