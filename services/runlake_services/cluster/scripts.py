"""Run the repository's service scripts (scripts/*.sh) from Python.

The scripts are the one implementation of installing, starting, checking and stopping the
real services; this module only finds them, runs them, and turns a failure into a
:class:`ServiceError` that carries what the script printed (including the service's log
tail, which the scripts print when a start fails).
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ScriptResult",
    "ServiceError",
    "repo_root",
    "run_script",
    "runlake_dir",
]

_STDERR_TAIL_LINES = 200


class ServiceError(RuntimeError):
    """A service script failed; the message ends with what it printed to stderr."""


@dataclass(frozen=True)
class ScriptResult:
    returncode: int
    stdout: str
    stderr: str


def repo_root() -> Path:
    """The source checkout that holds scripts/ (the dev cluster runs from a checkout)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "scripts" / "kafka.sh").is_file() and (parent / "pyproject.toml").is_file():
            return parent
    raise ServiceError(
        f"no runlake source checkout above {here}: the dev cluster scripts (scripts/*.sh) "
        "are part of the repository, not of the installed package"
    )


def runlake_dir() -> Path:
    """The checkout's ignored .runlake/ folder: downloads, built binaries, default data."""
    return repo_root() / ".runlake"


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def run_script(
    name: str,
    args: Sequence[str],
    *,
    timeout_s: float,
    env: Mapping[str, str] | None = None,
    ok_codes: Sequence[int] = (0,),
    echo_stderr: bool = True,
) -> ScriptResult:
    """Run ``scripts/<name>`` with ``args``; stderr is echoed live (installs can take minutes).

    Raises :class:`ServiceError` when the exit code is not in ``ok_codes`` or the script
    runs past ``timeout_s`` (it is killed then; services it started record their own PIDs).
    """
    script = repo_root() / "scripts" / name
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    proc = subprocess.Popen(
        [str(script), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
        cwd=repo_root(),
        # Its own process group, so a timeout ends the script with its children (mvn, go,
        # a Kafka tool); the services it starts run in sessions of their own (setsid).
        start_new_session=True,
    )
    tail: collections.deque[str] = collections.deque(maxlen=_STDERR_TAIL_LINES)
    out: list[str] = []

    def pump_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            tail.append(line)
            if echo_stderr:
                sys.stderr.write(line)
                sys.stderr.flush()

    def pump_stdout() -> None:
        assert proc.stdout is not None
        out.append(proc.stdout.read())

    pumps = [threading.Thread(target=f, daemon=True) for f in (pump_stderr, pump_stdout)]
    for t in pumps:
        t.start()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise ServiceError(
            f"scripts/{name} {' '.join(args)} ran past {timeout_s:.0f}s:\n" + "".join(tail)
        ) from None
    except BaseException:  # KeyboardInterrupt: do not leave a half-done install running
        _kill_group(proc)
        raise
    finally:
        for t in pumps:
            t.join(5)
    result = ScriptResult(proc.returncode, "".join(out), "".join(tail))
    if result.returncode not in ok_codes:
        raise ServiceError(
            f"scripts/{name} {' '.join(args)} failed (exit {result.returncode}):\n" + result.stderr
        )
    return result
