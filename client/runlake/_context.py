"""What a run records about where it came from: user, entry point, git state, host, packages.

Computed once per process (``functools.cache``) and cheaply: package versions come
from ``importlib.metadata`` without importing the packages, and git is asked with
a short timeout (no git, or not a repository, just leaves the git tags out).
"""

from __future__ import annotations

import functools
import getpass
import json
import os
import platform
import socket
import subprocess
import sys
from importlib import metadata

__all__ = ["PACKAGES", "compute_context_tags", "run_context_tags", "user"]

#: Libraries whose installed version a run records in ``runlake.packages``.
PACKAGES = (
    "numpy",
    "pandas",
    "scikit-learn",
    "torch",
    "tensorflow",
    "xgboost",
    "lightgbm",
    "runlake",
)
_GIT_TIMEOUT_S = 2.0


@functools.cache
def user() -> str:
    """The user a run is recorded under: RUNLAKE_USER, else the login name."""
    env = os.environ.get("RUNLAKE_USER")
    if env:
        return env
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (some containers)
        return "unknown"


def _git(args: list[str], cwd: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=_GIT_TIMEOUT_S,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def entry_point() -> str:
    """The script the process was started with, absolute; "" when interactive or ``-c``."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None) or (sys.argv[0] if sys.argv else "")
    if not path or path in ("-c", "-m") or path.startswith("<"):
        return ""
    return os.path.abspath(path)


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """Installed versions of ``names`` (the absent ones left out), without importing them."""
    versions: dict[str, str] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def compute_context_tags(entry: str, cwd: str) -> dict[str, str]:
    """The context tags for a process started from ``entry`` in ``cwd`` (uncached)."""
    tags = {
        "mlflow.user": user(),
        "mlflow.source.type": "LOCAL",
        "mlflow.source.name": entry or "<interactive>",
        "runlake.host": socket.gethostname(),
        "runlake.python_version": platform.python_version(),
        "runlake.packages": json.dumps(package_versions(), sort_keys=True),
    }
    where = os.path.dirname(entry) if entry else cwd
    if where and os.path.isdir(where):
        commit = _git(["rev-parse", "HEAD"], where)
        if commit:
            tags["mlflow.source.git.commit"] = commit
            status = _git(["status", "--porcelain", "--untracked-files=no"], where)
            if status is not None:
                tags["runlake.source.git.dirty"] = "true" if status else "false"
    return tags


@functools.cache
def run_context_tags() -> dict[str, str]:
    """This process's context tags, computed on the first run it starts."""
    return compute_context_tags(entry_point(), os.getcwd())
