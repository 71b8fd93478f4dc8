"""``labelwise secret set|status``: credentials as Prefect Secret blocks."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from flows.cli.common import (
    PARAMS,
    console,
    fail,
    load_or_fail,
)

secret_app = typer.Typer(
    help="Credentials as Prefect Secret blocks (an environment variable of the same name wins).",
    no_args_is_help=True,
)


def _stdin_is_tty() -> bool:
    return sys.stdin.isatty()


@secret_app.command("set")
def secret_set(
    name: str = typer.Argument(
        ..., help="its environment variable, e.g. LABEL_STUDIO_API_KEY or AWS_SECRET_ACCESS_KEY"
    ),
    params: Path = PARAMS,
) -> None:
    """Store a credential as the Prefect Secret block labelwise-<name> (on PREFECT_API_URL, or
    the project's local Prefect store). The value is read from standard input when it is piped,
    else from a hidden prompt; never from the command line."""
    import os

    from flows.runtime.environment import setup_environment
    from tasks.secrets import KNOWN, SecretError, block_for, store_secret

    name = name.upper()
    try:
        block = block_for(name)
    except SecretError as exc:
        fail(str(exc))
    setup_environment(load_or_fail(params, []), quiet_logs=True)
    if _stdin_is_tty():
        value = typer.prompt(name, hide_input=True, confirmation_prompt=True)
    else:
        value = sys.stdin.read().rstrip("\r\n")
    if not value:
        fail(
            f"no value given for {name}: nothing stored", f"echo ... | labelwise secret set {name}"
        )
    try:
        store_secret(name, value)
    except Exception as exc:  # the Prefect API is down or refuses: never echo the value
        fail(
            f"could not store the Prefect Secret block {block!r}: "
            f"{type(exc).__name__}: {str(exc).replace(value, '***')}",
            "check PREFECT_API_URL (unset: the project's local Prefect store is used)",
        )
    from prefect.settings import PREFECT_API_URL

    where = PREFECT_API_URL.value() or f"local store, PREFECT_HOME={os.environ['PREFECT_HOME']}"
    console.print(f"stored {name} as the Prefect Secret block {block!r} ({where})")
    if name not in KNOWN:
        console.print(f"[yellow]note: labelwise reads {', '.join(KNOWN)}; not {name}[/]")
    if os.environ.get(name):
        console.print(f"[yellow]note: the environment variable {name} is set and wins[/]")


@secret_app.command("status")
def secret_status(params: Path = PARAMS) -> None:
    """Where each credential labelwise reads comes from: the environment, a Prefect Secret block,
    or nowhere (values are never shown)."""
    from flows.runtime.environment import setup_environment
    from tasks.secrets import KNOWN, SecretError, block_for, secret_source

    setup_environment(load_or_fail(params, []), quiet_logs=True)
    try:
        for name, purpose in KNOWN.items():
            source = secret_source(name)
            if source == "missing":
                source = f"missing (the variable, or the block {block_for(name)})"
            console.print(f"{name}: {source}  [dim]{purpose}[/]", soft_wrap=True)
    except SecretError as exc:
        fail(str(exc), "check PREFECT_API_URL")
