"""Data versions with DVC: one git commit and tag ``round-N`` per round, pushed to a DVC remote.

Design: ``settings.project.data_dir`` (``data/``) is its own small git + DVC repository, the *data
repo*, nested in the project and git-ignored by it. Each data file or folder (``pool.parquet``,
``labels.parquet``, ``holdout.parquet``, ``gold_answers.parquet``, ``manifests/``, ``quarantine/``,
``validation/``) is a DVC output; git holds only their ``.dvc`` pointers. A round is a commit
tagged ``<tag_prefix>N`` whose content goes to the DVC remote (``versioning.remote_url``, by
default the local directory ``<project.work_dir>/dvc-remote``; S3 and the rest by URL). This
keeps one commit per round out of the code history, lets tests build a whole data repo in a
temporary directory, and lets the root ``dvc.yaml`` pipeline read ``data/`` like any other path.

An ``s3://`` remote may live on an S3-compatible server (MinIO: ``versioning.endpoint_url``,
written to ``.dvc/config`` as ``endpointurl``). Its keys come from ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` or the Prefect Secret blocks of the same names (:mod:`tasks.secrets`)
and reach DVC in memory, as configuration of the open repo: never a file of the data repo.

``checkout(N)`` makes the files byte-identical to round N (from the cache, or pulled from the
remote) while the branch stays where it is; it refuses to run over data not yet committed.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tasks.failpoints import step_point
from tasks.telemetry import telemetry_off

TRACKED = (
    "pool.parquet",
    "labels.parquet",
    "holdout.parquet",
    "gold_answers.parquet",  # answers on gold (holdout) items, kept out of the label log
    "weak_labels.parquet",  # the labeling functions' labels of the round, apart from the log
    "manifests",
    "quarantine",
    "validation",
)
GITIGNORE = "# labelwise data repo: temporary and lock files\n.lock\n.*.tmp\n"
S3_KEYS = {"AWS_ACCESS_KEY_ID": "access_key_id", "AWS_SECRET_ACCESS_KEY": "secret_access_key"}


class VersioningError(RuntimeError):
    """A git or DVC step on the data repo failed or would lose data; the message says which."""


def _env() -> dict[str, str]:
    return telemetry_off(dict(os.environ))


def git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run git in the data repo (with a fallback identity: CI machines have no git config)."""
    identity: list[str] = []
    probe = subprocess.run(
        ["git", "-C", str(root), "config", "user.name"], capture_output=True, text=True
    )
    if not probe.stdout.strip():
        identity = ["-c", "user.name=labelwise", "-c", "user.email=labelwise@localhost"]
    proc = subprocess.run(
        ["git", "-C", str(root), *identity, *args], capture_output=True, text=True, env=_env()
    )
    if check and proc.returncode != 0:
        raise VersioningError(f"git {' '.join(args)} in {root}: {proc.stderr.strip()}")
    return proc


def _root(settings: Any) -> Path:
    return Path(settings.project.data_dir)


def remote_url(settings: Any) -> str:
    """The configured remote, or ``<project.work_dir>/dvc-remote`` as an absolute path."""
    if settings.versioning.remote_url:
        return settings.versioning.remote_url
    return str((Path(settings.project.work_dir) / "dvc-remote").resolve())


def remote_credentials(settings: Any) -> dict[str, str]:
    """The keys of an ``s3://`` remote as DVC remote options (``access_key_id``,
    ``secret_access_key``), from the environment or Prefect Secret blocks; ``{}`` for other
    remotes, or when ``AWS_PROFILE`` names boto's profile instead."""
    url = remote_url(settings)
    if not url.startswith("s3://"):
        return {}
    from tasks.secrets import SecretError, missing_message, resolve_secret

    try:
        found = {option: resolve_secret(variable) for variable, option in S3_KEYS.items()}
    except SecretError as exc:
        raise VersioningError(f"DVC remote {url}: {exc}") from None
    if all(found.values()):
        return {option: str(value) for option, value in found.items()}
    if not any(found.values()) and os.environ.get("AWS_PROFILE"):
        return {}
    missing = [var for var, option in S3_KEYS.items() if not found[option]]
    raise VersioningError(f"DVC remote {url}: " + "; ".join(map(missing_message, missing)))


def _repo(settings: Any, *, remote: bool = False) -> Any:
    """The data repo; with ``remote``, its remote's credentials merged into DVC's in-memory
    configuration (nothing is written)."""
    telemetry_off()
    from dvc.repo import Repo

    credentials = remote_credentials(settings) if remote else {}
    config = {"remote": {settings.versioning.remote_name: credentials}} if credentials else None
    return Repo(str(_root(settings)), config=config)


def init(settings: Any) -> Path:
    """Create the data repo (git + DVC + remote) in ``project.data_dir`` if it is not one yet."""
    telemetry_off()
    from dvc.repo import Repo

    root = _root(settings)
    root.mkdir(parents=True, exist_ok=True)
    if not (root / ".git").exists():
        git(root, "init", "-q", "-b", "main")
    clear_stale_git_locks(root)
    if not (root / ".dvc").exists():
        with contextlib.redirect_stdout(io.StringIO()):  # "Initialized DVC repository." noise
            Repo.init(str(root)).close()
        ignore = root / ".gitignore"
        text = ignore.read_text(encoding="utf-8") if ignore.exists() else ""
        if GITIGNORE not in text:
            ignore.write_text(GITIGNORE + text, encoding="utf-8")
    with _repo(settings) as repo, repo.config.edit() as conf:
        name = settings.versioning.remote_name
        conf["core"]["analytics"] = False
        conf["core"]["autostage"] = True  # we stage everything anyway; keeps DVC quiet
        conf["core"]["remote"] = name
        conf["remote"][name] = {"url": remote_url(settings)}
        if settings.versioning.endpoint_url:
            conf["remote"][name]["endpointurl"] = settings.versioning.endpoint_url
    return root


def clear_stale_git_locks(root: Path) -> list[Path]:
    """Remove the lock files a killed git left in the data repo (``index.lock``, ``HEAD.lock``,
    ref locks), which would fail every later commit; kept while a git process works there."""
    import psutil

    locks = [p for p in (root / ".git").rglob("*.lock") if p.is_file()]
    if not locks:
        return []
    target = root.resolve()
    for proc in psutil.process_iter(["name", "cwd", "cmdline"]):
        try:
            info = proc.info
            if info["name"] == "git" and (
                info["cwd"] == str(target) or str(target) in " ".join(info["cmdline"] or [])
            ):
                return []
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    for lock in locks:
        lock.unlink(missing_ok=True)
    return locks


def _tag(settings: Any, round_: int) -> str:
    return f"{settings.versioning.tag_prefix}{round_}"


def tags(settings: Any) -> list[str]:
    """The round tags in the data repo, oldest round first."""
    root = _root(settings)
    if not (root / ".git").exists():
        return []
    prefix = settings.versioning.tag_prefix
    names = git(root, "tag", "--list", f"{prefix}*").stdout.split()
    return sorted(names, key=lambda t: int(t[len(prefix) :]) if t[len(prefix) :].isdigit() else -1)


def _outputs_present(root: Path) -> list[str]:
    return [name for name in TRACKED if (root / name).exists()]


def uncommitted(settings: Any) -> list[str]:
    """Data paths that differ from their ``.dvc`` pointers or have none (would be lost)."""
    root = _root(settings)
    changed = [n for n in _outputs_present(root) if not (root / f"{n}.dvc").exists()]
    with _repo(settings) as repo:
        for entries in repo.status().values():
            for entry in entries:
                if isinstance(entry, dict):
                    for value in entry.values():
                        if isinstance(value, dict):  # {path: "modified" | "not in cache" | ...}
                            changed += [
                                Path(path).name
                                for path, state in value.items()
                                if state in ("modified", "new")
                            ]
    return sorted(set(changed))


def commit_round(
    settings: Any, round_: int, *, message: str | None = None, force: bool = False
) -> str:
    """Track the data with DVC, commit, tag ``<prefix>N``, push to the remote; returns the tag.

    ``force`` moves an existing tag (e.g. re-running round N after ``checkout(N - 1)``).
    """
    root = init(settings)
    tag = _tag(settings, round_)
    if tag in tags(settings) and not force:
        raise VersioningError(
            f"{root}: tag {tag} already exists (after a checkout, pass force to move it)"
        )
    outputs = _outputs_present(root)
    # credentials first: a missing key stops the round before anything is committed
    with _repo(settings, remote=settings.versioning.push) as repo:
        if outputs:
            repo.add([str(root.resolve() / name) for name in outputs])
        git(root, "add", "-A")
        git(root, "commit", "-q", "--allow-empty", "-m", message or f"round {round_}")
        step_point(f"round-{round_:04d}", "during:version")
        git(root, "tag", *(["-f"] if force else []), tag)
        if settings.versioning.push:
            try:
                repo.push(remote=settings.versioning.remote_name)
            except Exception as exc:  # DVC raises many types; the tag stays, the push can rerun
                raise VersioningError(f"{root}: dvc push for {tag} failed: {exc}") from exc
    return tag


def push(settings: Any) -> None:
    """Push every committed version's data to the remote."""
    with _repo(settings, remote=True) as repo:
        repo.push(remote=settings.versioning.remote_name, all_tags=True, all_branches=True)


def checkout(settings: Any, round_: int, *, force: bool = False) -> str:
    """Restore the data files of round ``round_`` byte for byte; returns its tag.

    Refuses if the current data has changes not committed in a round (``force`` overrides and
    discards them). Files that did not exist in that round are removed. Missing cache is pulled
    from the remote.
    """
    root = _root(settings)
    tag = _tag(settings, round_)
    if tag not in tags(settings):
        known = ", ".join(tags(settings)) or "none"
        raise VersioningError(f"{root}: no data version {tag} (known: {known})")
    if not force:
        dirty = uncommitted(settings)
        if dirty:
            raise VersioningError(
                f"{root}: {', '.join(dirty)} changed since the last committed round; "
                "commit the round first or pass force to discard the changes"
            )
    before = {n for n in TRACKED if (root / f"{n}.dvc").exists() or (root / n).exists()}
    git(root, "restore", f"--source={tag}", "--staged", "--worktree", "--", ".")
    after = {n for n in TRACKED if (root / f"{n}.dvc").exists()}
    for name in before - after:
        path = root / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    from dvc.exceptions import CheckoutError

    with _repo(settings) as repo:
        try:
            repo.checkout(force=True)
        except CheckoutError:
            with _repo(settings, remote=True) as remote_repo:
                remote_repo.pull(remote=settings.versioning.remote_name, force=True)
    with _repo(settings) as repo:
        if repo.status():
            raise VersioningError(f"{root}: {tag} could not be restored exactly: {repo.status()}")
    return tag


__all__ = [
    "VersioningError",
    "checkout",
    "commit_round",
    "init",
    "push",
    "remote_credentials",
    "remote_url",
    "tags",
    "uncommitted",
]
