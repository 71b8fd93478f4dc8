"""The DVC remote on S3-compatible object storage.

No MinIO server binary comes from PyPI, npm or Debian, so moto's S3 server stands in for it, with
its IAM checks on: a request signed with a wrong key fails as it would on MinIO. Rounds pushed
to ``s3://`` through ``versioning.endpoint_url`` come back byte-identical in a fresh clone of the
data repo, and the keys (environment or Prefect Secret blocks) never land in a file of it.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from tasks.data import store, versioning
from tasks.data.ingest import ingest
from tasks.data.labels import collect_labels
from tasks.secrets import block_for, store_secret
from tasks.settings import Settings
from tests.conftest import project_settings
from tests.data.conftest import good_rows

pytestmark = [
    pytest.mark.integration,
    pytest.mark.data,
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:_NoneStep.value:DeprecationWarning"),  # inside DVC 3.67
]

BUCKET = "dvc"
KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
FILES = ("pool.parquet", "labels.parquet", "holdout.parquet")


@dataclass
class S3:
    endpoint: str
    key_id: str
    secret: str

    def keys(self, prefix: str) -> list[str]:
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.key_id,
            aws_secret_access_key=self.secret,
            region_name="us-east-1",
        )
        listing = client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
        return [item["Key"] for item in listing.get("Contents", [])]


def _enforce_auth(endpoint: str, after: str) -> None:
    """moto checks signatures and IAM policies after ``after`` more requests ("inf": never)."""
    request = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth",
        data=after.encode(),
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


@pytest.fixture(scope="module")
def s3():
    """An S3 server on 127.0.0.1 with the bucket ``dvc`` and one IAM user allowed on S3."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    admin = {
        "endpoint_url": endpoint,
        "aws_access_key_id": "bootstrap",
        "aws_secret_access_key": "bootstrap",
        "region_name": "us-east-1",
    }
    try:
        iam = boto3.client("iam", **admin)
        iam.create_user(UserName="dvc")
        key = iam.create_access_key(UserName="dvc")["AccessKey"]
        policy = {"Effect": "Allow", "Action": "s3:*", "Resource": "*"}
        iam.put_user_policy(
            UserName="dvc",
            PolicyName="s3",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [policy]}),
        )
        boto3.client("s3", **admin).create_bucket(Bucket=BUCKET)
        _enforce_auth(endpoint, "0")
        yield S3(endpoint, key["AccessKeyId"], key["SecretAccessKey"])
    finally:
        _enforce_auth(endpoint, "inf")
        server.stop()


@pytest.fixture
def aws_env(tmp_path_factory, monkeypatch):
    """No AWS keys, profile or endpoint from the machine; no git identity (as on CI)."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / "gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "aws-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "aws-config"))
    for name in (
        *KEYS,
        "AWS_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _settings(root: Path, endpoint: str, prefix: str, data_dir: str = "data") -> Settings:
    return project_settings(
        root,
        project={"data_dir": str(root / data_dir)},
        data={"feature_columns": ["x1", "x2"], "classes": ["cat", "dog"]},
        versioning={
            "enabled": True,
            "remote_url": f"s3://{BUCKET}/{prefix}",
            "endpoint_url": endpoint,
        },
    )


def _state(settings: Settings) -> dict[str, bytes | None]:
    root = Path(settings.project.data_dir)
    files = {n: (root / n).read_bytes() if (root / n).exists() else None for n in FILES}
    for path in sorted((root / "manifests").glob("*")):
        files[f"manifests/{path.name}"] = path.read_bytes()
    return files


def _play_rounds(settings: Settings, rounds: tuple[int, ...], cwd: Path) -> dict[int, dict]:
    """Ingest a pool, then per round: two labels, a manifest, ``commit_round`` (which pushes)."""
    good_rows(8).to_csv(cwd / "pool.csv", index=False)
    ingest(cwd / "pool.csv", settings)
    states = {}
    for round_ in rounds:
        if round_ == 2:
            holdout = good_rows(2, start=50).assign(label=["cat", "dog"])
            holdout.to_csv(cwd / "holdout.csv", index=False)
            ingest(cwd / "holdout.csv", settings, holdout=True)
        pool, labeled = store.read_pool(settings), set(store.read_labels(settings)["id"])
        todo = [i for i in pool["id"] if i not in labeled][:2]
        frame = pd.DataFrame({"id": todo, "label": ["cat", "dog"], "annotator": f"a{round_}"})
        collect_labels(frame, settings, round_=round_)
        store.write_manifest(settings, round_, todo, [0.9, 0.8], strategy="margin")
        assert versioning.commit_round(settings, round_) == f"round-{round_}"
        states[round_] = _state(settings)
    return states


def _fresh_clone(settings: Settings, root: Path, endpoint: str, prefix: str) -> Settings:
    """The data repo cloned by git alone (no DVC cache), the original deleted."""
    source = Path(settings.project.data_dir)
    subprocess.run(["git", "clone", "-q", str(source), str(root / "clone")], check=True)
    shutil.rmtree(source)
    return _settings(root, endpoint, prefix, data_dir="clone")


def test_rounds_pushed_to_s3_come_back_byte_identical_in_a_fresh_clone(s3, aws_env, tmp_path):
    aws_env.chdir(tmp_path)
    aws_env.setenv("AWS_ACCESS_KEY_ID", s3.key_id)
    aws_env.setenv("AWS_SECRET_ACCESS_KEY", s3.secret)
    settings = _settings(tmp_path, s3.endpoint, "env-keys")
    states = _play_rounds(settings, (1, 2), tmp_path)
    assert len(s3.keys("env-keys/files/md5/")) >= 4  # pool, labels, holdout, manifests
    config = (Path(settings.project.data_dir) / ".dvc" / "config").read_text()
    assert f"url = s3://{BUCKET}/env-keys" in config and f"endpointurl = {s3.endpoint}" in config

    clone = _fresh_clone(settings, tmp_path, s3.endpoint, "env-keys")
    for round_ in (1, 2):
        assert versioning.checkout(clone, round_) == f"round-{round_}"
        assert _state(clone) == states[round_]


def _committed_text(data_dir: Path) -> str:
    """Every file of every commit of the data repo, and every file in its folder (DVC's too)."""
    revs = subprocess.run(
        ["git", "-C", str(data_dir), "rev-list", "--all"], capture_output=True, text=True
    ).stdout.split()
    parts = []
    for rev in revs:
        names = subprocess.run(
            ["git", "-C", str(data_dir), "ls-tree", "-r", "--name-only", rev],
            capture_output=True,
            text=True,
        ).stdout.split()
        for name in names:
            blob = subprocess.run(
                ["git", "-C", str(data_dir), "show", f"{rev}:{name}"], capture_output=True
            ).stdout
            parts.append(blob.decode("latin-1"))
    for path in data_dir.rglob("*"):
        if path.is_file() and ".git/objects" not in path.as_posix():
            parts.append(path.read_bytes().decode("latin-1"))
    return "\n".join(parts)


@pytest.fixture
def all_logs(caplog):
    """Every record at DEBUG, Prefect's too (its loggers do not propagate to the root logger)."""
    caplog.set_level(logging.DEBUG)
    prefect_logger = logging.getLogger("prefect")
    prefect_logger.addHandler(caplog.handler)
    yield caplog
    prefect_logger.removeHandler(caplog.handler)


@pytest.fixture
def key_blocks(prefect_harness, s3):
    """The S3 keys as Prefect Secret blocks only (deleted afterwards)."""
    from prefect.blocks.system import Secret

    store_secret("AWS_ACCESS_KEY_ID", s3.key_id)
    store_secret("AWS_SECRET_ACCESS_KEY", s3.secret)
    yield
    for name in KEYS:
        Secret.delete(block_for(name))


def test_keys_from_secret_blocks_push_and_pull_and_never_land_in_the_data_repo(
    s3, aws_env, key_blocks, tmp_path, all_logs
):
    caplog = all_logs
    aws_env.chdir(tmp_path)
    settings = _settings(tmp_path, s3.endpoint, "block-keys")
    states = _play_rounds(settings, (1,), tmp_path)
    assert s3.keys("block-keys/files/md5/")
    data_dir = Path(settings.project.data_dir)
    assert not (data_dir / ".dvc" / "config.local").exists()
    committed = _committed_text(data_dir)
    assert s3.secret not in committed and s3.key_id not in committed
    # botocore's DEBUG records name the key id (the signature's "Credential="), never the secret
    assert s3.secret not in caplog.text

    clone = _fresh_clone(settings, tmp_path, s3.endpoint, "block-keys")
    versioning.checkout(clone, 1)
    assert _state(clone) == states[1]
    assert s3.secret not in _committed_text(Path(clone.project.data_dir))
    assert s3.secret not in caplog.text


def test_missing_or_wrong_keys_fail_with_the_variable_and_block_but_never_the_secret(
    s3, aws_env, prefect_harness, tmp_path, all_logs
):
    caplog = all_logs
    aws_env.chdir(tmp_path)
    settings = _settings(tmp_path, s3.endpoint, "bad-keys")
    good_rows(4).to_csv(tmp_path / "pool.csv", index=False)
    ingest(tmp_path / "pool.csv", settings)
    with pytest.raises(versioning.VersioningError) as info:
        versioning.commit_round(settings, 1)
    message = str(info.value)
    for name in KEYS:
        assert name in message and block_for(name) in message
    assert versioning.tags(settings) == []  # stopped before committing anything

    wrong = "wrong-secret-3b8d0f6e9a"
    aws_env.setenv("AWS_ACCESS_KEY_ID", s3.key_id)
    aws_env.setenv("AWS_SECRET_ACCESS_KEY", wrong)
    with pytest.raises(versioning.VersioningError, match="dvc push for round-1 failed") as info:
        versioning.commit_round(settings, 1)
    assert wrong not in str(info.value) and wrong not in caplog.text
    assert not s3.keys("bad-keys/")
