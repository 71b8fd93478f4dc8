"""A setting that nothing reads is a lie in params.yaml and the docs: every field of the settings
model must be read by production code outside the settings package (as ``settings.<section>.
<field>``, through a variable holding the section, a parameter typed with the section's class,
or a method of the section that production code calls)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from strategies.guards import Guards
from tasks.settings import Settings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = ("strategies", "tasks", "flows")
SETTINGS_PACKAGE = ROOT / "tasks" / "settings"
SECTIONS = {name: field.annotation for name, field in Settings.model_fields.items()}
CLASSES = {cls.__name__: name for name, cls in SECTIONS.items()}


def _files(inside_settings: bool) -> list[Path]:
    files = [p for folder in PRODUCTION for p in (ROOT / folder).rglob("*.py")]
    return [p for p in files if (SETTINGS_PACKAGE in p.parents) == inside_settings]


def _aliases(scope: ast.AST) -> dict[str, str]:
    """Names bound to a section in ``scope``: ``x = settings.loop``, ``a, b = s.loop, s.x``,
    parameters annotated with a section class."""
    alias: dict[str, str] = {}
    if isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef):
        for arg in [*scope.args.args, *scope.args.kwonlyargs]:
            text = ast.unparse(arg.annotation) if arg.annotation is not None else ""
            for cls, section in CLASSES.items():
                if cls in text:
                    alias[arg.arg] = section
    for node in ast.walk(scope):
        if not isinstance(node, ast.Assign):
            continue
        targets, values = node.targets[0], node.value
        pairs = (
            zip(targets.elts, values.elts, strict=False)
            if isinstance(targets, ast.Tuple) and isinstance(values, ast.Tuple)
            else [(targets, values)]
        )
        for target, value in pairs:
            if isinstance(target, ast.Name) and isinstance(value, ast.Attribute):
                if value.attr in SECTIONS:
                    alias[target.id] = value.attr
    return alias


def _reads(path: Path) -> tuple[dict[str, set[str]], set[str]]:
    """(section -> fields read, attribute names called as methods) in one file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    read: dict[str, set[str]] = {name: set() for name in SECTIONS}
    called: set[str] = set()
    for scope in ast.walk(tree):
        if not isinstance(scope, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        alias = _aliases(scope)
        for node in ast.walk(scope):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                called.add(node.func.attr)
            if not isinstance(node, ast.Attribute):
                continue
            holder = node.value
            if isinstance(holder, ast.Attribute) and holder.attr in SECTIONS:
                read[holder.attr].add(node.attr)
            elif isinstance(holder, ast.Name) and holder.id in alias:
                read[alias[holder.id]].add(node.attr)
    return read, called


def _method_reads(called: set[str]) -> dict[str, set[str]]:
    """Fields the section classes' own methods read, for the methods production code calls."""
    read: dict[str, set[str]] = {name: set() for name in SECTIONS}
    for path in _files(inside_settings=True):
        for cls in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(cls, ast.ClassDef) or cls.name not in CLASSES:
                continue
            section = CLASSES[cls.name]
            for method in cls.body:
                if not isinstance(method, ast.FunctionDef) or method.name not in called:
                    continue
                for node in ast.walk(method):
                    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                        if node.value.id == "self":
                            read[section].add(node.attr)
                if method.name == "guards":  # reads every Guards field by name (getattr)
                    read[section] |= set(Guards.names())
    return read


def unread_fields() -> dict[str, list[str]]:
    read: dict[str, set[str]] = {name: set() for name in SECTIONS}
    called: set[str] = set()
    for path in _files(inside_settings=False):
        found, calls = _reads(path)
        called |= calls
        for section, fields in found.items():
            read[section] |= fields
    for section, fields in _method_reads(called).items():
        read[section] |= fields
    out = {}
    for section, cls in SECTIONS.items():
        missing = [f for f in cls.model_fields if f not in read[section]]
        if missing:
            out[section] = missing
    return out


def test_every_setting_is_read_by_production_code():
    assert unread_fields() == {}


def test_the_scan_finds_a_setting_that_only_a_test_reads(tmp_path, monkeypatch):
    # a wrong scan (one that counts any mention) would pass the test above trivially
    code = tmp_path / "module.py"
    code.write_text("def f(settings):\n    return settings.loop.max_rounds\n", encoding="utf-8")
    found, _ = _reads(code)
    assert found["loop"] == {"max_rounds"} and found["model"] == set()
    aliased = tmp_path / "aliased.py"
    aliased.write_text("def f(s):\n    loop, m = s.loop, s.model\n    return loop.quorum\n")
    assert _reads(aliased)[0]["loop"] == {"quorum"}
