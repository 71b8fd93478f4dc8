"""Deployments for ``labelwise serve``: the loop (or round) flow served with
``flow.serve``'s machinery on ``serve.cron``, runnable from the Prefect UI, API or CLI.

Each deployment's default parameters are the project's settings (paths made absolute, so a run
does not depend on the runner's working directory). A run overrides them as a whole
(``{"settings": {...}}``, the UI's form) or key by key with ``overrides``::

    prefect deployment run 'labelwise-loop/labelwise-demo' --param rounds_this_run=1
    prefect deployment run 'labelwise-loop/labelwise-demo' \\
        --param overrides='["strategy.batch_size=50"]'
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tasks.settings import Settings

# serve.flow -> the flow's import path; the deployments' entrypoints are module paths, so they
# stay importable from any working directory (tests/unit/test_entrypoints.py imports each one)
ENTRYPOINTS = {"loop": "flows.loop.loop_flow", "round": "flows.round.round_flow"}


def deployment_name(settings: Settings) -> str:
    return settings.serve.deployment or settings.project.name


def absolute_paths(settings: Settings, base: Path | None = None) -> Settings:
    """``settings`` with every relative path field resolved against ``base`` (default: cwd)."""
    base = Path.cwd() if base is None else Path(base)
    updates = {}
    for section_name in Settings.model_fields:
        section = getattr(settings, section_name)
        changed = {
            key: (base / value).resolve()
            for key, value in section
            if isinstance(value, Path) and not value.is_absolute()
        }
        if changed:
            updates[section_name] = section.model_copy(update=changed)
    return settings.model_copy(update=updates)


def deployment_parameters(settings: Settings) -> dict[str, Any]:
    """The default parameters of the served flow run: JSON, as the Prefect API stores them."""
    parameters: dict[str, Any] = {"settings": absolute_paths(settings).model_dump(mode="json")}
    if settings.serve.flow == "loop":
        parameters["rounds_this_run"] = settings.serve.rounds_per_run
    return parameters


def build_deployments(settings: Settings) -> list[Any]:
    """The ``RunnerDeployment`` s ``labelwise serve`` serves (one: ``serve.flow``)."""
    from prefect.deployments.runner import EntrypointType

    from flows.knobs import form_schema
    from flows.loop import loop_flow
    from flows.round import round_flow

    flow = {"loop": loop_flow, "round": round_flow}[settings.serve.flow]
    deployment = flow.to_deployment(
        name=deployment_name(settings),
        cron=settings.serve.cron,
        paused=False,  # `serve` pauses the schedule when it stops; serving again resumes it
        parameters=deployment_parameters(settings),
        description=f"labelwise {settings.serve.flow} of project {settings.project.name}",
        tags=["labelwise", f"project:{settings.project.name}"],
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    # the run form: rounds and the knobs first, every setting below them
    schema = deployment._parameter_openapi_schema
    deployment._parameter_openapi_schema = type(schema).model_validate(
        form_schema(schema.model_dump())
    )
    return [deployment]


def serve(settings: Settings) -> None:
    """Serve the deployments until Ctrl-C or SIGTERM (flow runs start in subprocesses). Needs a
    Prefect server (PREFECT_API_URL): the temporary one has no scheduler."""
    from prefect import serve as prefect_serve

    from flows.slot import ensure_limit

    ensure_limit(settings)
    ensure_zombie_automation(settings)
    if settings.serve.heartbeat_seconds:  # the runs' subprocesses inherit it
        os.environ[HEARTBEAT_VARIABLE] = str(settings.serve.heartbeat_seconds)
    prefect_serve(*build_deployments(settings), print_starting_message=False)


HEARTBEAT_VARIABLE = "PREFECT_FLOWS_HEARTBEAT_FREQUENCY"
MISSED_BEATS = 3


def zombie_automation_name(settings: Settings) -> str:
    return f"labelwise-zombie-runs-{settings.project.name}"


def resume_parameters(settings: Settings) -> dict[str, Any]:
    """What the rerun of a crashed run is given: it waits for the dead run's slot lease to
    expire instead of skipping (``serve.when_busy: wait``)."""
    timeout = max(600.0, 3 * settings.serve.slot_lease_seconds)
    overrides = ["serve.when_busy=wait", f"serve.slot_timeout_seconds={timeout:.0f}"]
    return {"overrides": overrides}


SUBFLOW_AUTOMATION = "labelwise-zombie-rounds"


def _silent_runs(related: dict[str, str], silence: int) -> Any:
    """A proactive trigger: a flow run (with a related resource matching ``related``) that sent
    a heartbeat and then neither another one nor a final state within ``silence`` seconds."""
    from datetime import timedelta

    from prefect.events.schemas.automations import EventTrigger, Posture

    return EventTrigger(
        match={"prefect.resource.id": "prefect.flow-run.*"},
        match_related=related,
        after={"prefect.flow-run.heartbeat"},
        expect={
            "prefect.flow-run.heartbeat",
            "prefect.flow-run.Completed",
            "prefect.flow-run.Failed",
            "prefect.flow-run.Cancelled",
            "prefect.flow-run.Crashed",
        },
        for_each={"prefect.resource.id"},
        posture=Posture.Proactive,
        threshold=1,
        within=timedelta(seconds=silence),
    )


def ensure_zombie_automation(settings: Settings) -> Any:
    """A Prefect automation for the project's served runs: a run whose heartbeats stop (its
    worker or machine died) for ``MISSED_BEATS`` beats, without reaching a final state, is
    marked Crashed and its deployment is run again, which continues the unfinished round from
    its state file. A second one (shared by all projects) marks the dead run's round subflow
    Crashed: it runs in the same process, and its heartbeats carry no tags. Returns the
    project automation's id (None when heartbeats are off)."""
    from prefect.automations import Automation
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState, RunDeployment

    beat = settings.serve.heartbeat_seconds
    if not beat:
        return None
    silence = beat * MISSED_BEATS
    crashed = ChangeFlowRunState(
        state=StateType.CRASHED,
        name="Crashed",
        message=f"no heartbeat for {silence} s: its worker or machine stopped; a new run of "
        "the deployment continues the round",
    )
    subflows = Automation(
        name=SUBFLOW_AUTOMATION,
        description="labelwise: mark round subflow runs Crashed when their heartbeats stop",
        trigger=_silent_runs(
            {"prefect.resource.role": "flow", "prefect.resource.name": "labelwise-round"},
            silence,
        ),
        actions=[crashed],
    )
    automation = Automation(
        name=zombie_automation_name(settings),
        description=f"labelwise: mark runs of project {settings.project.name} Crashed after "
        f"{silence} s without a heartbeat, and run their deployment again",
        trigger=_silent_runs(
            {"prefect.resource.id": f"prefect.tag.project:{settings.project.name}"}, silence
        ),
        actions=[crashed, RunDeployment(source="inferred", parameters=resume_parameters(settings))],
    )
    with get_client(sync_client=True) as client:
        for stale in (automation, subflows):
            for existing in client.read_automations_by_name(stale.name):
                client.delete_automation(existing.id)
    subflows.create()
    return automation.create().id
