"""Every test file says what it tests: a module-level ``pytestmark`` naming its folder's concern
(unit, data, model, integration), so ``-m`` selects exactly the tests of a concern."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

TESTS = Path(__file__).resolve().parents[1]
CONCERNS = {"unit", "data", "model", "integration"}


def module_markers(source: str) -> set[str] | None:
    """The names of the ``pytest.mark.<name>`` in the module-level ``pytestmark`` of ``source``
    (None when the module assigns no ``pytestmark``)."""
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in targets):
            return {
                mark.attr
                for mark in ast.walk(node.value)
                if isinstance(mark, ast.Attribute)
                and isinstance(mark.value, ast.Attribute)
                and mark.value.attr == "mark"
                and isinstance(mark.value.value, ast.Name)
                and mark.value.value.id == "pytest"
            }
    return None


def test_the_marker_reader_finds_module_marks_only():
    assert module_markers("import pytest\n") is None
    assert module_markers("def f():\n    pytestmark = pytest.mark.unit\n") is None
    assert module_markers("pytestmark = pytest.mark.unit") == {"unit"}
    spec = "pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(9)]"
    assert module_markers(spec) == {"integration", "slow", "timeout"}
    assert module_markers("pytestmark: list = [pytest.mark.model]") == {"model"}


def test_every_test_file_has_a_module_pytestmark_naming_its_folders_concern():
    files = sorted(TESTS.rglob("test_*.py"))
    assert len(files) > 40  # the whole suite was found
    missing, wrong = [], []
    for path in files:
        name = path.relative_to(TESTS).as_posix()
        markers = module_markers(path.read_text(encoding="utf-8"))
        if markers is None:
            missing.append(name)
        elif path.parent.name not in CONCERNS or path.parent.name not in markers:
            wrong.append(f"{name}: {sorted(markers)}")
    assert not missing, f"no module-level pytestmark in: {', '.join(missing)}"
    assert not wrong, f"pytestmark without its folder's marker ({sorted(CONCERNS)}): {wrong}"
