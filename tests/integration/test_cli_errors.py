"""``labelwise run`` shows an expected failure as a few lines and a hint; the traceback goes to
the run log, whose path it prints, or to the terminal with ``--verbose``. The failure is real:
the round's annotation backend is Label Studio and no server is configured."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARAMS = {
    "project": {"name": "it-cli"},
    "data": {"classes": [str(i) for i in range(10)]},
    "monitor": {"enabled": False},
    "loop": {"demo_rows": 200, "stop_set_size": 0},
    "annotation": {
        "backend": "label_studio",
        "label_config": "tabular_classification",
        "retries": 0,
    },
}


def _run(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "LABELWISE_", "LABEL_STUDIO_"))
    }
    labelwise = Path(sys.executable).parent / "labelwise"
    return subprocess.run(
        [str(labelwise), "run", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_an_expected_failure_is_a_short_message_a_hint_and_the_log_holds_the_traceback(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS), encoding="utf-8")
    quiet = _run(tmp_path)

    assert quiet.returncode == 1
    assert "Traceback" not in quiet.stderr + quiet.stdout
    lines = [line for line in quiet.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("error: round-0001: dispatch failed once")
    assert "LABEL_STUDIO_URL" in quiet.stderr  # what to set, named
    assert any(line.startswith("hint: ") for line in lines)
    assert len(lines) <= 12, quiet.stderr
    found = re.search(r"details and traceback: (\S+\.log)", quiet.stderr.replace("\n", ""))
    assert found, quiet.stderr
    log = Path(found.group(1))
    assert log.parent == tmp_path / ".labelwise" / "logs"
    text = log.read_text(encoding="utf-8")
    assert "Traceback" in text and "AnnotationBackendError" in text

    loud = _run(tmp_path, "--verbose")  # the same round, continued: it fails the same way
    assert loud.returncode == 1
    assert "Traceback" in loud.stderr and "error: round-0001: dispatch failed once" in loud.stderr
