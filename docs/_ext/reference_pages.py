"""MkDocs hook for ``make docs``: every public module of ours is on its API page.

The API pages (``docs/reference/<package>.md``) list their modules as ``::: module`` blocks. A
module added to ``strategies/``, ``tasks/`` or ``flows/`` without a block is appended to its
package's page at build time (and named in the build log), so the site never silently lacks
one; add the block by hand to place it. A block naming a module that no longer exists fails the
build in mkdocstrings itself.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

PACKAGES = ("strategies", "tasks", "flows")
BLOCK = re.compile(r"^::: *([\w.]+)", re.MULTILINE)

log = logging.getLogger("mkdocs.hooks.reference_pages")


def public_modules(root: Path) -> set[str]:
    """Dotted names of the modules and packages under ``PACKAGES`` with no ``_`` in their path
    (``__init__.py`` stands for its package; an empty one documents nothing)."""
    names = set()
    for package in PACKAGES:
        for path in (root / package).rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                if not path.read_text(encoding="utf-8").strip():
                    continue
                parts = parts[:-1]
            if any(part.startswith("_") for part in parts):
                continue
            names.add(".".join(parts))
    return names


def page_for(name: str, root: Path) -> str:
    """The reference page a module belongs on: its package's (``tasks.data.store`` ->
    ``tasks.data``), ``tasks`` for the modules directly under ``tasks/``."""
    parts = name.split(".")
    if parts[0] != "tasks" or len(parts) == 1:
        return parts[0]
    return f"tasks.{parts[1]}" if (root / "tasks" / parts[1]).is_dir() else "tasks"


def on_page_markdown(markdown: str, page: Any, config: Any, **kwargs: Any) -> str:
    path = Path(page.file.src_uri)
    if path.parent != Path("reference") or path.stem == "index":
        return markdown
    root = Path(config["docs_dir"]).parent
    listed = set(BLOCK.findall(markdown))
    missing = sorted(n for n in public_modules(root) - listed if page_for(n, root) == path.stem)
    for name in missing:
        log.info("docs/reference/%s has no '::: %s' block: appended", path.name, name)
    return markdown + "".join(f"\n::: {name}\n" for name in missing)
