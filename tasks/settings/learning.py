"""Settings of learning: the query strategy, the model, its evaluation, tracking, monitoring."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from tasks.settings.base import Section


class StrategySettings(Section):
    name: str = Field("hybrid", description="a name from `labelwise strategies`")
    batch_size: int = Field(20, gt=0, description="rows selected per round")
    params: dict[str, Any] = Field(
        default_factory=dict, description="the strategy's own parameters"
    )
    random_fraction: float = Field(
        0.0, ge=0.0, lt=1.0, description="share of each batch drawn at random"
    )
    rare_class_quota: float = Field(
        0.0, ge=0.0, lt=1.0, description="share reserved for predicted-rare classes"
    )
    rare_class_threshold: float | None = Field(
        None, gt=0.0, lt=1.0, description="predicted share below which a class is rare"
    )
    class_costs: dict[str, float] | None = Field(None, description="labeling cost per class")
    outlier_contamination: float | None = Field(
        None, gt=0.0, lt=0.5, description="IsolationForest filter"
    )
    privacy_epsilon: float | None = Field(
        None, gt=0.0, description="exponential-mechanism noise on scores"
    )
    chunk_size: int = Field(65_536, gt=0, description="pool rows scored at a time")

    @field_validator("name")
    @classmethod
    def _known_strategy(cls, value: str) -> str:
        import strategies

        if value not in strategies.available():
            raise ValueError(
                f"unknown strategy {value!r}; available: {', '.join(strategies.available())}"
            )
        return value

    def guards(self) -> Any:
        """The guards these settings ask for (:class:`strategies.guards.Guards`, by name)."""
        from strategies.guards import Guards

        return Guards(
            **{
                name: getattr(self, name)
                for name in Guards.names()
                if name in type(self).model_fields
            }
        )

    def build(self, committee_size: int | None = None, votes: Any = None) -> Any:
        """The configured strategy with its guards, from the strategy registry;
        ``committee_size`` (``model.committee_size``) is the ``n_members`` of a committee
        strategy unless ``params`` sets it; ``votes`` (:class:`tasks.weak.functions.Votes`)
        go to a strategy that scores with labeling-function votes."""
        import strategies
        from strategies.weak import with_votes

        params = dict(self.params)
        if committee_size is not None and "n_members" in strategies.parameters(self.name):
            params.setdefault("n_members", committee_size)
        if votes is not None:
            params = with_votes(self.name, params, votes.matrix, len(votes.classes))
        return strategies.get(self.name, guards=self.guards(), **params)


#: what ``model.params`` may hold with ``kind: auto`` (``tasks.model.auto.AutoModel``)
AUTO_PARAMS = frozenset({"cv", "scoring", "decision_metric"})


class ModelSettings(Section):
    """The model trained each round: its family and parameters, probability calibration,
    committees for query-by-committee, importance weights against sampling bias."""

    kind: Literal["logreg", "forest", "xgboost", "auto", "torch_cnn", "external"] = Field(
        "auto",
        description="auto: each round picks the model family and its regularisation by "
        "cross-validation on the labels, class-weighted; or a fixed family (logreg means ridge "
        "regression for task=regression); torch_cnn: a small PyTorch CNN on image pixels; "
        "external: your own model, called through model.predict instead of training",
    )
    predict: str | None = Field(
        None,
        description="kind external: 'package.module:function' taking a frame of pool items and "
        "returning predictions (id, p_<class>... or member / box rows, see docs/select.md)",
    )
    device: str = Field(
        "cpu", description="kind torch_cnn: the torch device ('cpu', 'cuda', 'cuda:1', 'auto')"
    )
    predict_chunk_rows: int = Field(
        10_000, gt=0, description="kind external: pool items per call of model.predict"
    )
    predict_retries: int = Field(
        2, ge=0, le=20, description="kind external: retries of a model.predict call that raised"
    )
    predict_retry_delay_seconds: float = Field(
        5.0, ge=0.0, description="kind external: seconds before the first retry (then doubling)"
    )
    task: Literal["auto", "classification", "regression", "ner", "detection"] = Field(
        "auto",
        description="classification, regression (a number per item), ner (a tag per token) or "
        "detection (boxes or polygons per image, with model.kind external); auto: from the data",
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="keyword arguments of the estimator (e.g. max_depth)"
    )
    scale: bool = Field(True, description="standardise features before a linear model")
    calibration: Literal["isotonic", "sigmoid", "temperature"] | None = Field(
        None, description="probability calibration of a classifier (None: off)"
    )
    calibration_cv: int = Field(3, ge=2, le=20, description="folds used to fit the calibration")
    committee_size: int = Field(
        5, ge=2, le=100, description="members of the bootstrap committee for qbc_* and bald"
    )
    semi_supervised: Literal["self_training"] | None = Field(
        None,
        description="self_training: refit each round's classifier with its confident "
        "predictions on unlabeled pool rows as extra, down-weighted rows (None: labels only)",
    )
    pseudo_label_threshold: float = Field(
        0.9, gt=0.0, le=1.0, description="self_training: least probability of a pseudo-label"
    )
    pseudo_label_weight: float = Field(
        0.5, gt=0.0, le=1.0, description="self_training: a pseudo-label's weight per unit of it"
    )
    pseudo_label_max_rows: int = Field(
        5000, gt=0, description="self_training: unlabeled rows sampled per fit"
    )
    importance_weighting: bool = Field(
        False, description="weight labeled rows by 1 / selection probability (sampling-bias fix)"
    )
    max_importance_weight: float = Field(
        20.0, gt=1.0, description="cap on an importance weight (before normalising to mean 1)"
    )

    @model_validator(mode="after")
    def _auto_takes_its_own_params(self) -> ModelSettings:
        # auto searches the family itself: an estimator's keyword (max_depth, C) would reach
        # the search as an unknown argument at the first training, rounds later
        unknown = sorted(set(self.params) - AUTO_PARAMS) if self.kind == "auto" else []
        if unknown:
            raise ValueError(
                f"model.params {unknown} apply to a fixed model family, not to kind auto (which "
                f"takes only {sorted(AUTO_PARAMS)}): set model.kind to logreg, forest or xgboost "
                "to use them"
            )
        return self

    @model_validator(mode="after")
    def _external_names_its_function(self) -> ModelSettings:
        # the round would find out only when it first selects, after ingesting and versioning
        if self.kind == "external" and not self.predict:
            raise ValueError(
                "model.kind external needs model.predict: 'package.module:function' (a function "
                "taking a frame of pool items and returning predictions, see docs/select.md)"
            )
        if self.predict and self.kind != "external":
            raise ValueError(
                f"model.predict is called only with model.kind external (kind is {self.kind}): "
                "set kind: external to select with your own model, or remove model.predict"
            )
        if self.task == "detection" and self.kind != "external":
            raise ValueError(
                "model.task detection needs model.kind external: labelwise trains no detector; "
                "your model's boxes (model.predict) rank the images"
            )
        if self.kind == "external" and self.task in ("regression", "ner"):
            raise ValueError(
                f"model.kind external ranks by class probabilities; task {self.task} is not "
                "supported (use labelwise's own model, or task: classification)"
            )
        return self

    @model_validator(mode="after")
    def _torch_cnn_classifies(self) -> ModelSettings:
        # the CNN has a softmax head: a number per item or a tag per token needs another model
        if self.kind == "torch_cnn" and self.task in ("regression", "ner"):
            raise ValueError(
                f"model.kind torch_cnn classifies images and cannot learn task {self.task!r}: "
                "set model.task to classification (or auto), or model.kind to logreg, forest, "
                "xgboost or auto"
            )
        return self


class EvaluateSettings(Section):
    """How each round's model is scored on the holdout, and when it replaces the champion."""

    metric: Literal[
        "auto",
        "accuracy",
        "macro_f1",
        "rare_class_recall",
        "log_loss",
        "brier",
        "ece_top_label",
        "ece_classwise",
        "rmse",
        "mae",
        "token_f1",
        "entity_f1",
        "box_f1",
    ] = Field(
        "auto",
        description="holdout metric a challenger must improve to become champion (auto: macro_f1 "
        "for classification, rmse for regression, entity_f1 for ner, box_f1 for detection)",
    )
    margin: float = Field(
        0.0, ge=0.0, description="how much better than the champion (in metric units) to promote"
    )
    ece_bins: int = Field(15, ge=2, le=100, description="equal-width confidence bins for ECE")
    rare_class: str | None = Field(
        None, description="class whose recall is reported on its own (None: rarest in holdout)"
    )
    interval_level: float = Field(
        0.9, gt=0.0, lt=1.0, description="nominal coverage of regression prediction intervals"
    )


class TrackingSettings(Section):
    """Where rounds are recorded: the MLflow server, experiment and registered model."""

    tracking_uri: str | None = Field(
        None, description="MLflow tracking URI (None: SQLite store under project.work_dir)"
    )
    experiment: str | None = Field(None, description="MLflow experiment (None: project.name)")
    registered_model: str | None = Field(
        None, description="registry model name (None: '<project.name>-model')"
    )
    champion_alias: str = Field("champion", min_length=1, description="alias of the serving model")


class MonitorSettings(Section):
    """Checks on the champion each round (drift, class balance, fairness, calibration) and their
    thresholds."""

    enabled: bool = Field(True, description="run the monitoring checks each round")
    drift_share: float = Field(
        0.3, gt=0.0, le=1.0, description="share of drifted columns that flags a dataset as drifted"
    )
    column_threshold: float | None = Field(
        None, gt=0.0, description="per-column drift test threshold (None: Evidently's default)"
    )
    max_class_balance_distance: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description="total-variation distance between labeled and predicted-pool class shares",
    )
    sensitive_column: str | None = Field(None, description="group column for fairness metrics")
    max_demographic_parity_difference: float = Field(
        0.2, ge=0.0, le=1.0, description="largest gap in predicted-class rates between groups"
    )
    max_recall_gap: float = Field(
        0.2, ge=0.0, le=1.0, description="largest gap in macro recall between groups"
    )
    max_ece: float = Field(0.1, ge=0.0, le=1.0, description="top-label ECE above this is flagged")
    max_ece_increase: float = Field(
        0.05, ge=0.0, le=1.0, description="ECE rise over the previous round that is flagged"
    )
    random_fraction_on_drift: float = Field(
        0.3, ge=0.0, lt=1.0, description="random fraction of the next batch after a drift flag"
    )
    html_reports: bool = Field(True, description="save Evidently HTML reports (~4 MB each)")
