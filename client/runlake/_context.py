"""What a run records about where it came from, computed once per process."""

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

__all__ = ["run_context_tags", "user"]

_PACKAGES = (
    "numpy",
    "pandas",
    "scikit-learn",
    "torch",
    "tensorflow",
    "xgboost",
    "lightgbm",
    "runlake",
)


@functools.cache
def user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"


def _git(args: list[str], cwd: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=2, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


@functools.cache
def run_context_tags() -> dict[str, str]:
    entry = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] not in ("", "-c") else ""
    tags = {
        "mlflow.user": user(),
        "mlflow.source.type": "LOCAL",
        "mlflow.source.name": entry or "<interactive>",
        "runlake.host": socket.gethostname(),
        "runlake.python_version": platform.python_version(),
    }
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    tags["runlake.packages"] = json.dumps(versions, sort_keys=True)
    cwd = os.path.dirname(entry) if entry else os.getcwd()
    commit = _git(["rev-parse", "HEAD"], cwd)
    if commit:
        tags["mlflow.source.git.commit"] = commit
        status = _git(["status", "--porcelain", "--untracked-files=no"], cwd)
        tags["runlake.source.git.dirty"] = "true" if status else "false"
    return tags
