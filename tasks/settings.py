"""The one typed settings model, loaded from ``params.yaml``.

Each top-level section belongs to a pipeline stage (as in ``dvc.yaml``'s ``params:`` lists).
Unknown keys are rejected and every error names the key path, e.g. ``strategy.batch_size``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DEFAULT_PARAMS = Path("params.yaml")


class SettingsError(ValueError):
    """``params.yaml`` (or a ``--set`` override) is invalid; the message names file and key."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ProjectSettings(Section):
    name: str = Field("labelwise-demo", description="MLflow experiment and Prefect deployment prefix")
    work_dir: Path = Field(Path(".labelwise"), description="Prefect home, MLflow store, DVC remote")
    data_dir: Path = Field(Path("data"), description="pool, labels, holdout and manifests (Parquet)")
    seed: int = Field(0, description="seed for every random choice in a run")


class StrategySettings(Section):
    name: str = Field("margin", description="a name from `labelwise strategies`")
    batch_size: int = Field(20, gt=0, description="rows selected per round")
    params: dict[str, Any] = Field(default_factory=dict, description="the strategy's own parameters")
    random_fraction: float = Field(0.0, ge=0.0, lt=1.0, description="share of each batch drawn at random")
    rare_class_quota: float = Field(0.0, ge=0.0, lt=1.0, description="share reserved for predicted-rare classes")
    rare_class_threshold: float | None = Field(None, gt=0.0, lt=1.0, description="predicted share below which a class is rare")
    class_costs: dict[str, float] | None = Field(None, description="labeling cost per class")
    outlier_contamination: float | None = Field(None, gt=0.0, lt=0.5, description="IsolationForest filter")
    privacy_epsilon: float | None = Field(None, gt=0.0, description="exponential-mechanism noise on scores")
    chunk_size: int = Field(65_536, gt=0, description="pool rows scored at a time")

    @field_validator("name")
    @classmethod
    def _known_strategy(cls, value: str) -> str:
        import strategies

        if value not in strategies.available():
            raise ValueError(f"unknown strategy {value!r}; available: {', '.join(strategies.available())}")
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


class FeatureSettings(Section):
    """Featurization: tabular, text (TF-IDF, embeddings), images (issue 3)."""


class VersioningSettings(Section):
    """DVC: data repo, remote, per-round tags (issue 3)."""


class ModelSettings(Section):
    """Model family, its parameters, calibration, committees, importance weights (issue 4)."""


class EvaluateSettings(Section):
    """Holdout metrics, ECE bins, champion/challenger rule (issue 4)."""


class TrackingSettings(Section):
    """MLflow tracking URI, experiment, registry model name (issue 4)."""


class MonitorSettings(Section):
    """Evidently drift/balance/fairness checks and their thresholds (issue 4)."""


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


def load_settings(path: Path | str = DEFAULT_PARAMS, overrides: list[str] | None = None) -> Settings:
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
