"""The one typed settings model, loaded from ``params.yaml``.

Each top-level section belongs to a pipeline stage (as in ``dvc.yaml``'s ``params:`` lists); the
sections live in :mod:`tasks.settings.data`, :mod:`tasks.settings.learning` and
:mod:`tasks.settings.loop`. Unknown keys are rejected and every error names the key path, e.g.
``strategy.batch_size``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, model_validator

from tasks.settings.base import Section
from tasks.settings.data import DataSettings, FeatureSettings, ProjectSettings, VersioningSettings
from tasks.settings.learning import (
    EvaluateSettings,
    ModelSettings,
    MonitorSettings,
    StrategySettings,
    TrackingSettings,
)
from tasks.settings.loop import AnnotationSettings, LoopSettings, ScaleSettings, ServeSettings
from tasks.settings.weak import WeakSettings

DEFAULT_PARAMS = Path("params.yaml")


class SettingsError(ValueError):
    """``params.yaml`` (or a ``--set`` override) is invalid; the message names file and key."""


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
    weak: WeakSettings = Field(default_factory=WeakSettings)

    @model_validator(mode="after")
    def _weak_strategy_needs_functions(self) -> Settings:
        from strategies.weak import uses_votes

        if uses_votes(self.strategy.name, self.strategy.params) and not self.weak.module:
            raise ValueError(
                f"strategy {self.strategy.name} scores with labeling-function votes: set "
                "weak.module to the module of your labeling functions"
            )
        return self

    @model_validator(mode="after")
    def _external_model_takes_prediction_strategies(self) -> Settings:
        from tasks.external.model import FOLLOWS_SHAPE, STRATEGIES

        name = self.strategy.name
        if self.model.kind == "external" and name not in (*STRATEGIES, *FOLLOWS_SHAPE):
            raise ValueError(
                f"strategy {name} needs labelwise's own model; with model.kind external "
                f"(ranking from your model's predictions) use one of {', '.join(STRATEGIES)}, "
                "or auto"
            )
        return self


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
