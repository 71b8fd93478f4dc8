"""The one typed settings model, loaded from ``params.yaml``.

Each top-level section belongs to a pipeline stage (as in ``dvc.yaml``'s ``params:`` lists).
Unknown keys are rejected and every error names the key path, e.g. ``strategy.batch_size``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DEFAULT_PARAMS = Path("params.yaml")


class SettingsError(ValueError):
    """``params.yaml`` (or a ``--set`` override) is invalid; the message names file and key."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ProjectSettings(Section):
    name: str = Field(
        "labelwise-demo", description="MLflow experiment and Prefect deployment prefix"
    )
    work_dir: Path = Field(Path(".labelwise"), description="Prefect home, MLflow store, DVC remote")
    data_dir: Path = Field(
        Path("data"), description="pool, labels, holdout and manifests (Parquet)"
    )
    seed: int = Field(0, description="seed for every random choice in a run")


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

    def build(self) -> Any:
        """The configured strategy with its guards, from the strategy registry."""
        import strategies

        return strategies.get(
            self.name,
            random_fraction=self.random_fraction,
            rare_class_quota=self.rare_class_quota,
            rare_class_threshold=self.rare_class_threshold,
            class_costs=self.class_costs,
            outlier_contamination=self.outlier_contamination,
            privacy_epsilon=self.privacy_epsilon,
            **self.params,
        )


class DataSettings(Section):
    """Pool, labels, holdout, ingest and validation gates (issue 3)."""

    id_column: str | None = Field(
        None, description="input column holding a stable item id; null: sha256 of the row's content"
    )
    label_column: str = Field("label", description="input column holding the label (holdout files)")
    text_column: str = Field("text", description="column for raw text (folders of .txt files)")
    image_column: str = Field("image_path", description="column for image paths (image folders)")
    feature_columns: list[str] = Field(
        default_factory=list, description="numeric columns every ingested file must have"
    )
    nullable_columns: list[str] = Field(
        default_factory=list, description="input columns allowed to hold nulls (all others: none)"
    )
    value_ranges: dict[str, tuple[float | None, float | None]] = Field(
        default_factory=dict, description="column -> [min, max] (inclusive; null: unbounded)"
    )
    classes: list[str] = Field(
        default_factory=list, description="the label set; empty: any non-empty label is accepted"
    )
    min_per_class: int = Field(1, ge=0, description="labels per class required before training")

    @field_validator("classes", mode="before")
    @classmethod
    def _classes_as_text(cls, value: Any) -> Any:
        """Labels are text: ``[0, 1]`` in YAML means the classes "0" and "1"."""
        if isinstance(value, list):
            return [
                str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v
                for v in value
            ]
        return value


class FeatureSettings(Section):
    """Featurization: tabular, text (TF-IDF, embeddings), images (issue 3)."""

    text_featurizer: Literal["tfidf", "embeddings"] = Field(
        "tfidf", description="text features: TF-IDF or all-MiniLM-L6-v2 sentence embeddings"
    )
    tfidf_max_features: int | None = Field(
        20_000, gt=0, description="vocabulary size cap (null: no cap)"
    )
    tfidf_min_df: int = Field(2, ge=1, description="drop terms in fewer documents than this")
    tfidf_max_df: float = Field(
        0.95, gt=0.0, le=1.0, description="drop terms in a larger share of documents"
    )
    tfidf_ngram_max: int = Field(2, ge=1, le=3, description="longest word n-gram")
    tfidf_sublinear_tf: bool = Field(True, description="use 1 + log(tf) instead of raw counts")
    embeddings_cache_dir: Path | None = Field(
        None,
        description="embedding cache keyed by text sha256 (null: <project.work_dir>/embeddings)",
    )
    embeddings_batch_size: int = Field(32, gt=0, description="texts per forward pass")
    embeddings_max_length: int = Field(
        256, ge=8, le=512, description="tokens kept per text (256 as sentence-transformers)"
    )
    embeddings_blas_threads: int | None = Field(
        1, ge=1, description="BLAS threads while embedding (null: the process default)"
    )
    image_size: tuple[int, int] = Field(
        (28, 28), description="images are resized to (height, width)"
    )
    image_max_value: float | None = Field(
        None, gt=0, description="white level of array images (null: 255 for ints, 1 for floats)"
    )

    def build_text(self, work_dir: Path = Path(".labelwise")) -> Any:
        """The configured text featurizer (a scikit-learn transformer)."""
        from tasks.features.text import make_text_featurizer

        if self.text_featurizer == "embeddings":
            cache = self.embeddings_cache_dir or Path(work_dir) / "embeddings"
            return make_text_featurizer(
                "embeddings",
                cache_dir=str(cache),
                batch_size=self.embeddings_batch_size,
                max_seq_length=self.embeddings_max_length,
                blas_threads=self.embeddings_blas_threads,
            )
        return make_text_featurizer(
            "tfidf",
            max_features=self.tfidf_max_features,
            min_df=self.tfidf_min_df,
            max_df=self.tfidf_max_df,
            ngram_range=(1, self.tfidf_ngram_max),
            sublinear_tf=self.tfidf_sublinear_tf,
        )


class VersioningSettings(Section):
    """DVC: data repo, remote, per-round tags (issue 3)."""

    enabled: bool = Field(True, description="commit, tag and push the data after each round")
    remote_url: str | None = Field(
        None, description="DVC remote (s3://..., /path, ...); null: <project.work_dir>/dvc-remote"
    )
    endpoint_url: str | None = Field(
        None,
        description="S3-compatible endpoint of an s3:// remote, e.g. MinIO's http://minio:9000 "
        "(null: AWS, or AWS_ENDPOINT_URL_S3); keys come from the environment or Prefect Secret "
        "blocks, never from this file",
    )
    remote_name: str = Field("storage", description="name of the DVC remote in the data repo")
    push: bool = Field(True, description="push each committed round to the remote")
    tag_prefix: str = Field("round-", description="git tag of round N in the data repo: <prefix>N")

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint_needs_s3(cls, value: str | None, info: Any) -> str | None:
        remote = info.data.get("remote_url") or ""
        if value is not None and not remote.startswith("s3://"):
            raise ValueError("an endpoint needs an s3:// remote_url (e.g. s3://dvc/labelwise-demo)")
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"expected an http(s) URL, e.g. http://127.0.0.1:9000, not {value!r}")
        return value


class ModelSettings(Section):
    """Model family, its parameters, calibration, committees, importance weights (issue 4)."""

    kind: Literal["logreg", "forest", "xgboost"] = Field(
        "logreg", description="model family (logreg means ridge regression for task=regression)"
    )
    task: Literal["classification", "regression"] = Field(
        "classification", description="classification or regression"
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
    importance_weighting: bool = Field(
        False, description="weight labeled rows by 1 / selection probability (sampling-bias fix)"
    )
    max_importance_weight: float = Field(
        20.0, gt=1.0, description="cap on an importance weight (before normalising to mean 1)"
    )


class EvaluateSettings(Section):
    """Holdout metrics, ECE bins, champion/challenger rule (issue 4)."""

    metric: Literal[
        "accuracy",
        "macro_f1",
        "rare_class_recall",
        "log_loss",
        "brier",
        "ece_top_label",
        "ece_classwise",
        "rmse",
        "mae",
    ] = Field("macro_f1", description="holdout metric a challenger must improve to become champion")
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
    """MLflow tracking URI, experiment, registry model name (issue 4)."""

    tracking_uri: str | None = Field(
        None, description="MLflow tracking URI (None: SQLite store under project.work_dir)"
    )
    experiment: str | None = Field(None, description="MLflow experiment (None: project.name)")
    registered_model: str | None = Field(
        None, description="registry model name (None: '<project.name>-model')"
    )
    champion_alias: str = Field("champion", min_length=1, description="alias of the serving model")
    log_model: bool = Field(True, description="log (and register) the model of every round")


class MonitorSettings(Section):
    """Evidently drift/balance/fairness checks and their thresholds (issue 4)."""

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


class LoopSettings(Section):
    """The active-learning loop (issue 5): stopping rules, waiting for labels, the demo project."""

    max_rounds: int = Field(5, ge=1, description="stop after this many rounds in total")
    label_budget: int | None = Field(
        None, gt=0, description="stop once this many items are labeled (null: no budget)"
    )
    target_metric: str | None = Field(
        None, description="holdout metric of the target rule (null: evaluate.metric)"
    )
    target_value: float | None = Field(
        None, description="stop once the holdout metric reaches this value (null: off)"
    )
    plateau_rounds: int | None = Field(
        None, ge=1, description="stop after this many rounds improving less than plateau_delta"
    )
    plateau_delta: float = Field(0.005, ge=0.0, description="smallest improvement that counts")
    stop_set_size: int = Field(
        200, ge=0, description="unlabeled pool rows whose predictions are compared across rounds"
    )
    kappa: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        description="stop when successive models agree on the stop set with Cohen's kappa >= this",
    )
    stable_rounds: int = Field(
        1, ge=1, description="successive-model agreements above kappa needed to stop"
    )
    quorum: float = Field(
        1.0, gt=0.0, le=1.0, description="share of a batch that must be labeled to train"
    )
    wait_seconds: float = Field(
        0.0, ge=0.0, description="how long collect polls for the quorum before the run waits"
    )
    poll_seconds: float = Field(5.0, gt=0.0, description="seconds between polls for labels")
    initial_labels: int = Field(
        20,
        ge=0,
        description="labels the simulated oracle gives before round 1 (demo project; 0: start "
        "cold, round 1 picks typical rows without a model)",
    )
    dataset: str = Field("digits", description="bundled dataset of the demo project")
    demo_rows: int | None = Field(
        None, gt=0, description="use a random subset of this many dataset rows (null: all)"
    )
    holdout_fraction: float = Field(
        0.2, gt=0.0, lt=1.0, description="share of the demo dataset kept as the holdout"
    )
    inbox: Path | None = Field(
        None, description="folder whose new files are ingested at the start of each round"
    )


class AnnotationSettings(Section):
    """Where selected items are labeled and how several annotators' answers are combined (issue 6).

    Label Studio's URL and token come from ``LABEL_STUDIO_URL`` / ``LABEL_STUDIO_API_KEY``, never
    from this file.
    """

    backend: Literal["simulated", "label_studio", "files"] = Field(
        "simulated", description="simulated annotators, a Label Studio server, or CSV/JSONL files"
    )
    label_config: Literal[
        "text_classification", "image_classification", "tabular_classification", "ner"
    ] = Field("text_classification", description="what annotators see and answer")
    overlap_share: float = Field(
        0.0, ge=0.0, le=1.0, description="share of items sent to annotators_per_item annotators"
    )
    annotators_per_item: int = Field(
        1, ge=1, le=20, description="annotators for the overlapping share of items (k)"
    )
    gold_fraction: float = Field(
        0.0, ge=0.0, lt=1.0, description="share of each batch made of gold items (known answers)"
    )
    agreement_threshold: float = Field(
        0.7, ge=0.0, le=1.0, description="items whose agreement is below this need one more vote"
    )
    max_annotators: int = Field(
        5, ge=1, description="items still below the threshold with this many votes are flagged"
    )
    aggregation: Literal["majority", "dawid_skene"] = Field(
        "dawid_skene", description="how several annotators' labels become one"
    )
    poll_seconds: float = Field(10.0, gt=0.0, description="seconds between polls of the backend")
    request_retry_seconds: float = Field(
        90.0,
        gt=0.0,
        description="Label Studio: one request retries (exponential backoff) this long if the "
        "server is down or answers 5xx/429",
    )
    retries: int = Field(
        3, ge=0, description="then dispatch/collect are retried this many times (Prefect retries)"
    )
    retry_delay_seconds: float = Field(
        10.0, gt=0.0, description="before the first of those retries; doubled for each next one"
    )
    project_title: str = Field(
        "labelwise", min_length=1, description="Label Studio project (created if missing)"
    )
    files_dir: Path | None = Field(
        None, description="files backend: batches out, answers in (null: <work_dir>/annotation)"
    )
    file_format: Literal["csv", "jsonl"] = Field("csv", description="files backend format")
    text_field: str = Field("text", description="batch column shown as text (text and ner)")
    image_field: str = Field("image_path", description="batch column holding the image URL/path")
    ner_labels: list[str] = Field(
        default_factory=list, description="entity types for ner (classes come from data.classes)"
    )


class ScaleSettings(Section):
    """Scale-out scoring (issue 5): where pool chunks are scored and how big they are."""

    executor: Literal["local", "dask"] = Field(
        "local", description="local: threads in this process; dask: a Dask cluster"
    )
    dask_address: str | None = Field(
        None, description="scheduler of an existing Dask cluster (null: start a LocalCluster)"
    )
    n_workers: int = Field(2, ge=1, description="LocalCluster worker processes")
    threads_per_worker: int = Field(1, ge=1, description="threads in each LocalCluster worker")
    chunk_size: int = Field(
        250_000, gt=0, description="pool rows per scoring task (each worker reads its own)"
    )


class ServeSettings(Section):
    """``labelwise serve`` (issue 5): the scheduled deployment and the one-round-at-a-time slot."""

    flow: Literal["loop", "round"] = Field(
        "loop",
        description="serve the loop flow (labelwise-loop) or a single round (labelwise-round)",
    )
    deployment: str | None = Field(
        None, description="deployment name, '<flow>/<deployment>' in Prefect (null: project.name)"
    )
    cron: str | None = Field(
        "0 * * * *", description="schedule of the deployment (null: runs only when triggered)"
    )
    rounds_per_run: int | None = Field(
        1, ge=1, description="loop deployment: rounds per scheduled run (null: until a rule stops)"
    )
    when_busy: Literal["skip", "wait"] = Field(
        "skip",
        description="a trigger while a round of the project runs: skip it (ends 'Skipped', runs "
        "nothing) or wait for the slot",
    )
    slot_timeout_seconds: float | None = Field(
        None,
        gt=0.0,
        description="when_busy: wait: how long to wait for the round slot (null: as long as it takes)",
    )
    slot_lease_seconds: float = Field(
        60.0,
        ge=60.0,
        le=86400.0,
        description="the slot's lease, renewed while a round runs: a killed worker's slot is "
        "free again after at most this (+15 s); Prefect's minimum is 60",
    )
    heartbeat_seconds: int | None = Field(
        30,
        ge=30,
        description="flow-run heartbeat of served runs: a run silent for 3 beats is marked "
        "Crashed and rerun by the zombie automation (null: no heartbeats)",
    )


class Settings(Section):
    """All of ``params.yaml``."""

    project: ProjectSettings = Field(default_factory=ProjectSettings)
    data: DataSettings = Field(default_factory=DataSettings)
    features: FeatureSettings = Field(default_factory=FeatureSettings)
    versioning: VersioningSettings = Field(default_factory=VersioningSettings)
    strategy: StrategySettings = Field(default_factory=StrategySettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    evaluate: EvaluateSettings = Field(default_factory=EvaluateSettings)
    tracking: TrackingSettings = Field(default_factory=TrackingSettings)
    monitor: MonitorSettings = Field(default_factory=MonitorSettings)
    loop: LoopSettings = Field(default_factory=LoopSettings)
    annotation: AnnotationSettings = Field(default_factory=AnnotationSettings)
    scale: ScaleSettings = Field(default_factory=ScaleSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)


def _format_error(source: str, error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        msg = item["msg"]
        if item["type"] == "extra_forbidden":
            msg = "unknown key (check its spelling and section)"
        lines.append(f"{source}: {key}: {msg}")
    return "\n".join(lines)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"strategy.batch_size=50"`` -> (["strategy", "batch_size"], 50); values are YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise SettingsError(f"--set {text!r}: expected KEY=VALUE, e.g. strategy.batch_size=50")
    return key.strip().split("."), yaml.safe_load(raw)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise SettingsError(f"--set {text!r}: {part} is not a section")
        node[path[-1]] = value
    return data


def load_settings(
    path: Path | str = DEFAULT_PARAMS, overrides: list[str] | None = None
) -> Settings:
    """Read and validate ``params.yaml`` (missing file: defaults), then apply ``KEY=VALUE`` overrides."""
    path = Path(path)
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise SettingsError(f"{path}: not valid YAML: {exc}") from None
        if not isinstance(data, dict):
            raise SettingsError(f"{path}: expected a mapping of sections at the top level")
    data = apply_overrides(data, overrides or [])
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise SettingsError(_format_error(str(path), exc)) from None


def with_overrides(settings: Settings, overrides: list[str] | None) -> Settings:
    """``settings`` with ``KEY=VALUE`` overrides applied (as ``--set``), validated again."""
    if not overrides:
        return settings
    data = apply_overrides(settings.model_dump(mode="json"), overrides)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise SettingsError(_format_error("overrides", exc)) from None
