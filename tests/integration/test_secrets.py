"""Credentials from the environment or Prefect Secret blocks, against a real temporary
Prefect server; the value never reaches a log record, an error message or the CLI's output."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows import cli
from tasks.annotation.base import AnnotationBackendError
from tasks.secrets import (
    SecretError,
    block_for,
    require_secret,
    resolve_secret,
    secret_source,
    store_secret,
)
from tasks.settings import Settings

pytestmark = pytest.mark.integration

TOKEN = "LABEL_STUDIO_API_KEY"
BLOCK_VALUE = "block-token-5f1e9c0a7b"
ENV_VALUE = "env-token-0d3c8e2b41"


def _delete_block(name: str) -> None:
    from prefect.blocks.system import Secret

    try:
        Secret.delete(name)
    except Exception:  # already gone
        pass


@pytest.fixture
def clean(prefect_harness, monkeypatch, tmp_path, caplog):
    """No token in the environment or in Prefect; every log record captured at DEBUG (Prefect's
    loggers do not propagate to the root logger, so the capture handler is added to them too)."""
    for name in (TOKEN, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    for key in ("PREFECT_HOME", "PREFECT_LOGGING_LEVEL", "MLFLOW_LOGGING_LEVEL"):
        monkeypatch.setenv(key, str(tmp_path / "prefect") if key == "PREFECT_HOME" else "DEBUG")
    _delete_block(block_for(TOKEN))
    caplog.set_level(logging.DEBUG)
    prefect_logger = logging.getLogger("prefect")
    prefect_logger.addHandler(caplog.handler)
    yield caplog
    prefect_logger.removeHandler(caplog.handler)
    _delete_block(block_for(TOKEN))


def _assert_not_logged(caplog, *values: str) -> None:
    text = caplog.text + "\n".join(str(r.args) for r in caplog.records)
    for value in values:
        assert value not in text


def test_block_names_follow_the_variable():
    assert block_for("LABEL_STUDIO_API_KEY") == "labelwise-label-studio-api-key"
    assert block_for("AWS_SECRET_ACCESS_KEY") == "labelwise-aws-secret-access-key"
    with pytest.raises(SecretError, match="not an environment variable name"):
        block_for("aws secret; rm -rf")


def test_the_environment_wins_then_the_block_then_none(clean, monkeypatch):
    assert resolve_secret(TOKEN) is None and secret_source(TOKEN) == "missing"
    assert store_secret(TOKEN, BLOCK_VALUE) == "labelwise-label-studio-api-key"
    assert resolve_secret(TOKEN) == BLOCK_VALUE
    assert secret_source(TOKEN) == "block labelwise-label-studio-api-key"
    monkeypatch.setenv(TOKEN, ENV_VALUE)
    assert resolve_secret(TOKEN) == ENV_VALUE and secret_source(TOKEN) == "environment"
    monkeypatch.delenv(TOKEN)
    assert resolve_secret(TOKEN, "labelwise-no-such-block") is None
    _assert_not_logged(clean, BLOCK_VALUE, ENV_VALUE)


def test_a_missing_secret_names_the_variable_and_the_block(clean):
    with pytest.raises(SecretError) as info:
        require_secret(TOKEN)
    message = str(info.value)
    assert "LABEL_STUDIO_API_KEY" in message and "'labelwise-label-studio-api-key'" in message
    assert "labelwise secret set LABEL_STUDIO_API_KEY" in message


def _ls_settings() -> Settings:
    return Settings.model_validate(
        {"annotation": {"backend": "label_studio"}, "data": {"classes": ["a", "b"]}}
    )


def test_label_studio_token_comes_from_the_block_and_stays_out_of_repr_and_logs(clean, monkeypatch):
    from tasks.annotation import make_backend

    monkeypatch.setenv("LABEL_STUDIO_URL", "http://127.0.0.1:9")
    with pytest.raises(AnnotationBackendError) as info:
        make_backend(_ls_settings())
    assert "LABEL_STUDIO_API_KEY" in str(info.value)
    assert "labelwise-label-studio-api-key" in str(info.value)
    store_secret(TOKEN, BLOCK_VALUE)
    backend = make_backend(_ls_settings())
    assert backend.token == BLOCK_VALUE and BLOCK_VALUE not in repr(backend)
    backend.retry_seconds = 0.5
    with pytest.raises(AnnotationBackendError) as info:  # nobody listens on port 9
        backend.collect()
    assert BLOCK_VALUE not in str(info.value)
    _assert_not_logged(clean, BLOCK_VALUE)


def _params(tmp_path: Path) -> str:
    path = tmp_path / "params.yaml"
    path.write_text(f"project:\n  work_dir: {tmp_path / 'w'}\n")
    return str(path)


def test_cli_secret_set_reads_piped_stdin_and_never_prints_the_value(clean, tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        cli.app, ["secret", "set", TOKEN, "--params", _params(tmp_path)], input=BLOCK_VALUE + "\n"
    )
    assert result.exit_code == 0, result.output
    assert "labelwise-label-studio-api-key" in result.output
    assert BLOCK_VALUE not in result.output
    assert resolve_secret(TOKEN) == BLOCK_VALUE  # the trailing newline is not part of it
    status = runner.invoke(cli.app, ["secret", "status", "--params", _params(tmp_path)])
    assert status.exit_code == 0, status.output
    assert "LABEL_STUDIO_API_KEY: block labelwise-label-studio-api-key" in status.output
    assert "AWS_SECRET_ACCESS_KEY: missing (the variable, or the block labelwise-aws-secret-" in (
        status.output
    )
    assert BLOCK_VALUE not in status.output
    _assert_not_logged(clean, BLOCK_VALUE)


def test_cli_secret_set_prompts_hidden_on_a_terminal(clean, tmp_path, monkeypatch):
    monkeypatch.setattr(cli.secrets, "_stdin_is_tty", lambda: True)
    result = CliRunner().invoke(
        cli.app,
        ["secret", "set", "label_studio_api_key", "--params", _params(tmp_path)],
        input=f"{BLOCK_VALUE}\n{BLOCK_VALUE}\n",  # value and its confirmation
    )
    assert result.exit_code == 0, result.output
    assert BLOCK_VALUE not in result.output  # hidden input is not echoed
    assert resolve_secret(TOKEN) == BLOCK_VALUE


def test_cli_secret_set_refuses_a_value_on_the_command_line(clean, tmp_path):
    result = CliRunner().invoke(
        cli.app, ["secret", "set", TOKEN, BLOCK_VALUE, "--params", _params(tmp_path)], input=""
    )
    assert result.exit_code != 0
    assert resolve_secret(TOKEN) is None
    empty = CliRunner().invoke(
        cli.app, ["secret", "set", TOKEN, "--params", _params(tmp_path)], input=""
    )
    assert empty.exit_code == 1 and "nothing stored" in empty.output
    assert resolve_secret(TOKEN) is None
