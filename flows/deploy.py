"""Deployments for ``labelwise serve`` (issue 5): the loop (or round) flow served with
``flow.serve``'s machinery on ``serve.cron``, runnable from the Prefect UI, API or CLI.

Each deployment's default parameters are the project's settings (paths made absolute, so a run
does not depend on the runner's working directory). A run overrides them as a whole
(``{"settings": {...}}``, the UI's form) or key by key with ``overrides``::

    prefect deployment run 'labelwise-loop/labelwise-demo' --param rounds_this_run=1
    prefect deployment run 'labelwise-loop/labelwise-demo' \\
        --param overrides='["strategy.batch_size=50"]'
"""

from __future__ import annotations

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
    return [deployment]


def serve(settings: Settings) -> None:
    """Serve the deployments until Ctrl-C or SIGTERM (flow runs start in subprocesses). Needs a
    Prefect server (PREFECT_API_URL): the temporary one has no scheduler."""
    from prefect import serve as prefect_serve

    from flows.round import ensure_round_limit

    ensure_round_limit(settings)
    prefect_serve(*build_deployments(settings), print_starting_message=False)
