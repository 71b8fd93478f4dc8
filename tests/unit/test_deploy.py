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


def test_the_rerun_of_a_crashed_run_waits_for_the_dead_runs_slot_instead_of_skipping():
    from flows.deploy import resume_parameters

    settings = Settings.model_validate({"serve": {"slot_lease_seconds": 300}})
    overrides = resume_parameters(settings)["overrides"]
    resumed = with_overrides(settings, overrides)
    assert settings.serve.when_busy == "skip" and resumed.serve.when_busy == "wait"
    # long enough for the lease (renewed up to the kill) to expire and be repossessed
    assert resumed.serve.slot_timeout_seconds >= 2 * settings.serve.slot_lease_seconds


def test_backend_retries_double_from_the_first_delay():
    from flows.round import dispatch_task, with_backend_retries

    settings = Settings.model_validate({"annotation": {"retries": 3, "retry_delay_seconds": 5}})
    retried = with_backend_retries(dispatch_task, settings)
    assert retried.retries == 3 and retried.retry_delay_seconds == [5, 10, 20]
    none = with_backend_retries(
        dispatch_task,
        settings.model_copy(
            update={"annotation": settings.annotation.model_copy(update={"retries": 0})}
        ),
    )
    assert none.retries == 0


def test_the_slot_lease_cannot_be_shorter_than_prefects_minimum():
    from tasks.settings import SettingsError

    with pytest.raises((SettingsError, ValueError), match="slot_lease_seconds"):
        Settings.model_validate({"serve": {"slot_lease_seconds": 30}})
