"""Griffe extension for ``make docs``: the reStructuredText of our docstrings, as Markdown.

Sphinx roles (``:func:`get```, ``:class:`~strategies.base.Selection```) are resolved as Python
would resolve the name in the docstring's own scope, else as the one object of ours with that
name (as Sphinx does). A role naming an object shown on the site becomes a link to it; one naming
a private or undocumented object stays code; one naming nothing in the source is a warning, so
``mkdocs build --strict`` fails on a stale reference left behind by a rename. Simple tables
(``=====  =====`` borders) are shown as preformatted text, and a paragraph's closing ``::``
before a literal block becomes ``:``.
"""

from __future__ import annotations

import html
import re
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from griffe import Extension, GriffeLoader, Module, Object, logger

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj):`(~?)([^`<>]+)`")
TABLE_BORDER = re.compile(r"^( *)=+(?: +=+)+ *$")
LITERAL_INTRO = re.compile(r"::\n(\n[ \t]+\S)")
OURS = ("strategies", "tasks", "flows")  # other names are linked only if the site has them


class SphinxMarkup(Extension):
    """Rewrite the docstrings of our packages: roles into autorefs references, tables and
    literal blocks into their Markdown forms."""

    def __init__(self) -> None:
        super().__init__()
        self._started = False

    def on_package(self, *, pkg: Module, loader: GriffeLoader, **kwargs: Any) -> None:
        # Names are looked up across all three packages, so the first one loaded loads the others
        # (each of them fires this hook again, which then does nothing) and rewrites them all.
        if self._started or pkg.name not in OURS:
            return
        self._started = True
        collection = loader.modules_collection
        for name in OURS:
            if name not in collection.members:
                loader.load(name)
        objects = [obj for name in OURS for obj in _objects(collection.members[name])]
        by_name: dict[str, list[str]] = defaultdict(list)
        for obj in objects:
            by_name[obj.name].append(obj.path)
        for obj in objects:
            if _private(obj.path):
                continue  # not on the site
            if obj.docstring is None:
                continue
            text = LITERAL_INTRO.sub(r":\n\1", _fence_tables(obj.docstring.value))
            obj.docstring.value = ROLE.sub(
                lambda match, obj=obj: _reference(match, obj, loader, by_name), text
            )


def _fence_tables(text: str) -> str:
    """Each reST simple table (from its first ``===`` border to its last, no blank line in it)
    inside a ``text`` code fence, so its columns stay aligned."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        start = TABLE_BORDER.match(lines[i])
        if start:
            end = i
            j = i + 1
            while j < len(lines) and lines[j].strip():
                if TABLE_BORDER.match(lines[j]):
                    end = j
                j += 1
            if end > i:
                indent = start.group(1)
                out += [f"{indent}```text", *lines[i : end + 1], f"{indent}```"]
                i = end + 1
                continue
        out.append(lines[i])
        i += 1
    return "\n".join(out)


def _private(path: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in path.split("."))


def _objects(obj: Object) -> Iterator[Object]:
    yield obj
    for member in obj.members.values():
        if not member.is_alias:
            yield from _objects(member)


def _reference(
    match: re.Match[str], obj: Object, loader: GriffeLoader, by_name: dict[str, list[str]]
) -> str:
    short, target = match.group(1) == "~", match.group(2).strip()
    shown = html.escape(target.rsplit(".", 1)[-1] if short else target)
    path = _resolve(target, obj, loader, by_name)
    if path is None:
        where = f"{obj.relative_filepath}:{obj.docstring.lineno}" if obj.docstring else obj.path
        logger.warning("%s: %s names nothing in the source", where, match.group(0))
        return f"<code>{shown}</code>"
    return f'<autoref identifier="{path}" optional><code>{shown}</code></autoref>'


def _resolve(
    target: str, obj: Object, loader: GriffeLoader, by_name: dict[str, list[str]]
) -> str | None:
    candidates = []
    try:
        candidates.append(obj.resolve(target))
    except Exception:  # griffe's NameResolutionError: not a name of this scope
        pass
    scope = obj if obj.is_class else obj.parent
    if scope is not None and scope.is_class and target in scope.all_members:
        candidates.append(f"{scope.path}.{target}")  # an inherited method named from its class
    candidates.append(target)
    for path in candidates:
        if _exists(path, loader):
            return path
    if "." not in target and len(by_name.get(target, ())) == 1:
        return by_name[target][0]
    if target in by_name:
        return target  # several objects of ours by that name: shown as code
    if "." in candidates[0] and candidates[0].split(".", 1)[0] not in OURS:
        return candidates[0]  # another library's object, e.g. numpy.ndarray
    return None


def _exists(path: str, loader: GriffeLoader) -> bool:
    if path.split(".", 1)[0] not in OURS:
        return False
    try:
        loader.modules_collection.get_member(path)
    except (KeyError, ValueError):
        return False
    return True
