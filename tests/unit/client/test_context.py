"""Automatic run context tags, in and out of a (temporary) git repository."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from runlake import _context

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(repo: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


@needs_git
def test_git_commit_and_dirty_state_are_recorded(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    script = repo / "train.py"
    script.write_text("print('train')\n")
    _git(repo, "add", "train.py")
    _git(repo, "commit", "-q", "-m", "first")
    head = _git(repo, "rev-parse", "HEAD")

    tags = _context.compute_context_tags(str(script), str(tmp_path))
    assert tags["mlflow.source.name"] == str(script)
    assert tags["mlflow.source.type"] == "LOCAL"
    assert tags["mlflow.source.git.commit"] == head
    assert tags["runlake.source.git.dirty"] == "false"

    script.write_text("print('changed')\n")
    assert _context.compute_context_tags(str(script), "")["runlake.source.git.dirty"] == "true"


def test_outside_git_the_git_tags_are_left_out(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text("")
    tags = _context.compute_context_tags(str(script), str(tmp_path))
    assert "mlflow.source.git.commit" not in tags and "runlake.source.git.dirty" not in tags


def test_missing_git_binary_is_fine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no git on PATH
    tags = _context.compute_context_tags("", str(tmp_path))
    assert tags["mlflow.source.name"] == "<interactive>"
    assert "mlflow.source.git.commit" not in tags


def test_user_host_python_and_packages() -> None:
    tags = _context.compute_context_tags("", ".")
    assert tags["mlflow.user"] == _context.user()
    assert tags["runlake.host"] and tags["runlake.python_version"].count(".") == 2
    packages = json.loads(tags["runlake.packages"])
    assert set(packages) <= set(_context.PACKAGES)
    assert {"numpy", "pandas", "runlake"} <= set(packages)


def test_context_is_computed_once_per_process() -> None:
    assert _context.run_context_tags() is _context.run_context_tags()
