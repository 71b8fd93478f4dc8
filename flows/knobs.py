"""The knobs a data scientist turns per run: shown first in the Prefect run form, each applied
as a ``--set`` override of the project's settings (which follow, in full, below them)."""

from __future__ import annotations

from typing import Any, Literal

Backend = Literal["simulated", "label_studio", "files"]

#: knob parameter -> the setting it overrides
KNOBS = {
    "strategy": "strategy.name",
    "batch_size": "strategy.batch_size",
    "label_budget": "loop.label_budget",
    "annotation_backend": "annotation.backend",
}
#: the order of the run form: how many rounds, the knobs, free overrides, then every setting
FORM_ORDER = ("rounds_this_run", "round_", *KNOBS, "overrides", "settings")


def knob_overrides(overrides: list[str] | None = None, **knobs: Any) -> list[str]:
    """``KEY=VALUE`` overrides for the knobs that were given, then ``overrides`` (they win)."""
    given = [f"{KNOBS[name]}={value}" for name, value in knobs.items() if value is not None]
    return given + list(overrides or [])


def form_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A flow's parameter schema with the run form's order (``FORM_ORDER``)."""
    properties = schema.get("properties", {})
    ranked = sorted(
        properties,
        key=lambda name: FORM_ORDER.index(name) if name in FORM_ORDER else len(FORM_ORDER),
    )
    for position, name in enumerate(ranked):
        properties[name]["position"] = position
    schema["properties"] = {name: properties[name] for name in ranked}
    return schema


def run_settings(settings: Any, overrides: list[str] | None = None, **knobs: Any) -> Any:
    """The settings a run works with: the knobs and ``overrides`` applied (validated again), then
    ``data.kind``, ``model.task`` and ``evaluate.metric`` resolved from the project's data."""
    from tasks.data.profile import resolve
    from tasks.settings import with_overrides

    return resolve(with_overrides(settings, knob_overrides(overrides, **knobs)))
