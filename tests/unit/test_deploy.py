"""Deployments of ``labelwise serve``: every entrypoint imports (a renamed file fails here), and a
deployment carries the schedule and the project's settings from ``params.yaml``."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.deploy import ENTRYPOINTS, build_deployments, deployment_parameters
from tasks.settings import Settings, load_settings, with_overrides

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("flow", sorted(ENTRYPOINTS))
def test_every_deployment_entrypoint_imports_as_the_flow_it_names(flow):
    from prefect.flows import load_flow_from_entrypoint

    settings = Settings.model_validate({"serve": {"flow": flow}})
    (deployment,) = build_deployments(settings)
    assert deployment.entrypoint == ENTRYPOINTS[flow]
    loaded = load_flow_from_entrypoint(deployment.entrypoint)
    assert loaded.name == f"labelwise-{flow}" == deployment.flow_name


def test_the_deployment_has_the_cron_schedule_and_absolute_project_paths(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    settings = load_settings(ROOT / "params.yaml", ['serve.cron="*/5 * * * *"'])
    (deployment,) = build_deployments(settings)
    assert deployment.name == settings.project.name
    assert [s.schedule.cron for s in deployment.schedules] == ["*/5 * * * *"]
    parameters = deployment.parameters
    assert parameters["rounds_this_run"] == settings.serve.rounds_per_run
    assert parameters["settings"]["project"]["work_dir"] == str(tmp_path / ".labelwise")
    assert Settings.model_validate(parameters["settings"]).strategy == settings.strategy


def test_round_deployment_takes_no_loop_parameters_and_no_cron_means_no_schedule():
    settings = Settings.model_validate({"serve": {"flow": "round", "cron": None}})
    assert "rounds_this_run" not in deployment_parameters(settings)
    assert build_deployments(settings)[0].schedules == []


def test_overrides_apply_like_set_and_name_a_wrong_key():
    from tasks.settings import SettingsError

    settings = with_overrides(Settings(), ["strategy.batch_size=7"])
    assert settings.strategy.batch_size == 7
    with pytest.raises(SettingsError, match=r"strategy\.batch_sise"):
        with_overrides(Settings(), ["strategy.batch_sise=7"])
