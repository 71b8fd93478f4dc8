"""Credentials from the environment or Prefect ``Secret`` blocks, never from ``params.yaml``.

Each credential has an environment variable (``LABEL_STUDIO_API_KEY``) and a Prefect Secret block
named after it (``labelwise-label-studio-api-key``); the variable wins. Values are returned to the
caller only: nothing here logs them, puts them in an error or writes them to a file.
"""

from __future__ import annotations

import logging
import os
import re

log = logging.getLogger(__name__)

BLOCK_PREFIX = "labelwise-"
#: the credentials labelwise reads, and what each is for
KNOWN = {
    "LABEL_STUDIO_API_KEY": "Label Studio token (annotation.backend: label_studio)",
    "AWS_ACCESS_KEY_ID": "S3/MinIO access key of an s3:// DVC remote (versioning.remote_url)",
    "AWS_SECRET_ACCESS_KEY": "S3/MinIO secret key of an s3:// DVC remote (versioning.remote_url)",
}
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


class SecretError(RuntimeError):
    """A credential is missing or its store cannot be read; names the variable and the block."""


def block_for(env_var: str) -> str:
    """``LABEL_STUDIO_API_KEY`` -> ``labelwise-label-studio-api-key``."""
    if not _NAME.fullmatch(env_var):
        raise SecretError(
            f"{env_var!r} is not an environment variable name (e.g. AWS_ACCESS_KEY_ID)"
        )
    return BLOCK_PREFIX + env_var.lower().replace("_", "-")


def _from_block(name: str) -> str | None:
    from prefect.blocks.system import Secret

    try:
        block = Secret.load(name)
    except ValueError:  # Prefect's "Unable to find block document named ..."
        return None
    except Exception as exc:  # the API is down or refuses: say where, never a value
        raise SecretError(
            f"could not read Prefect Secret block {name!r}: {type(exc).__name__}: {exc}"
        ) from None
    value = block.get()
    return str(value) if value not in (None, "") else None


def resolve_secret(env_var: str, block_name: str | None = None) -> str | None:
    """The variable ``env_var`` if set, else the Prefect Secret block ``block_name`` (default
    :func:`block_for`), else None. Without ``PREFECT_API_URL`` Prefect's local temporary server
    (``PREFECT_HOME``) is asked."""
    value = os.environ.get(env_var)
    if value:
        return value
    block_name = block_name or block_for(env_var)
    value = _from_block(block_name)
    if value is not None:
        log.debug("%s read from the Prefect Secret block %s", env_var, block_name)
    return value


def missing_message(env_var: str, block_name: str | None = None) -> str:
    """The one line that says how to provide ``env_var``."""
    block_name = block_name or block_for(env_var)
    return (
        f"{env_var} is not set: set the environment variable {env_var} or store the Prefect "
        f"Secret block {block_name!r} (`labelwise secret set {env_var}`)"
    )


def require_secret(env_var: str, block_name: str | None = None) -> str:
    """As :func:`resolve_secret`, but a missing value raises :class:`SecretError`."""
    value = resolve_secret(env_var, block_name)
    if value is None:
        raise SecretError(missing_message(env_var, block_name))
    return value


def store_secret(env_var: str, value: str) -> str:
    """Save ``value`` as the Prefect Secret block of ``env_var`` (replacing it); returns the
    block's name."""
    from prefect.blocks.system import Secret

    if not value:
        raise SecretError(f"refusing to store an empty value for {env_var}")
    name = block_for(env_var)
    Secret(value=value).save(name, overwrite=True)
    return name


def secret_source(env_var: str) -> str:
    """Where :func:`resolve_secret` would find ``env_var``: ``environment``, ``block <name>`` or
    ``missing`` (never the value)."""
    if os.environ.get(env_var):
        return "environment"
    name = block_for(env_var)
    return f"block {name}" if _from_block(name) is not None else "missing"


__all__ = [
    "KNOWN",
    "SecretError",
    "block_for",
    "missing_message",
    "require_secret",
    "resolve_secret",
    "secret_source",
    "store_secret",
]
