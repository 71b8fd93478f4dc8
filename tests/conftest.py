"""Shared test set-up: quiet, offline tools; every test runs in its own temporary directory; one
builder for a temporary project's settings (``make_settings``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest

from tasks.telemetry import telemetry_off

if TYPE_CHECKING:
    from tasks.settings import Settings

telemetry_off()

#: what a test project differs in from ``params.yaml``'s defaults: no drift reports and no DVC
#: commits unless the test is about them (they are slow and write outside the data folder)
TEST_DEFAULTS: dict[str, dict[str, Any]] = {
    "monitor": {"enabled": False},
    "versioning": {"enabled": False},
}


def merged(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``, mappings merged key by key at every depth (lists replaced)."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def project_settings(root: str | Path, **sections: Mapping[str, Any]) -> Settings:
    """Settings of a project in ``root`` (work dir ``root/.labelwise``, data ``root/data``):
    ``sections`` (``strategy={"batch_size": 5}``, ...) merged over :data:`TEST_DEFAULTS`.

    For fixtures wider than a test (``scope="module"``); a test takes ``make_settings``."""
    from tasks.settings import Settings

    root = Path(root)
    paths = {"project": {"work_dir": str(root / ".labelwise"), "data_dir": str(root / "data")}}
    return Settings.model_validate(merged(merged(TEST_DEFAULTS, paths), sections))


class SettingsBuilder(Protocol):
    def __call__(
        self, root: str | Path | None = None, **sections: Mapping[str, Any]
    ) -> Settings: ...


@pytest.fixture
def make_settings(tmp_path: Path) -> SettingsBuilder:
    """``make_settings(root=None, **sections)``: :func:`project_settings` in ``root``, by default
    the test's ``tmp_path``."""

    def build(root: str | Path | None = None, **sections: Mapping[str, Any]) -> Settings:
        return project_settings(tmp_path if root is None else root, **sections)

    return build
