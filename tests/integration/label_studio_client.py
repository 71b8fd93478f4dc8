"""What a person does in Label Studio, done through its REST API by the tests."""

from __future__ import annotations

import httpx

from tasks.annotation.server import LabelStudioServer


def api(server: LabelStudioServer, method: str, path: str, **kwargs):
    response = httpx.request(
        method,
        f"{server.url}{path}",
        headers={"Authorization": f"Token {server.token}"},
        timeout=30,
        **kwargs,
    )
    response.raise_for_status()
    return response.json()


def tasks(server: LabelStudioServer, project_id: int) -> list[dict]:
    """Every task of a project, with its data."""
    body = api(server, "GET", f"/api/tasks?project={project_id}&page_size=1000&fields=all")
    return body["tasks"] if isinstance(body, dict) else body


def annotate(server: LabelStudioServer, task_id: int, result: list[dict]) -> dict:
    """Submit one annotation of a task."""
    return api(server, "POST", f"/api/tasks/{task_id}/annotations", json={"result": result})


def choice(label: str, to_name: str) -> list[dict]:
    """The result of picking ``label`` in a Choices control named ``label``."""
    return [
        {"from_name": "label", "to_name": to_name, "type": "choices", "value": {"choices": [label]}}
    ]
