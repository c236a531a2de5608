"""Run a ``runlake`` command as a child process: start, wait for its ready line, stop by PID.

Every long-running runlake command (``server``, ``gateway``, ``query``, ``compactor``)
prints one line containing ``ready`` once it accepts work, with its addresses as
``grpc=grpc://HOST:PORT`` and ``http=http://HOST:PORT`` where it has them. This is the
one place that parses that line, for the end-to-end tests, the benchmarks and
``runlake dev-cluster``.

Two ways to keep the child's output: in memory (``log_path`` None: the child dies with
its parent's pipe, right for tests) or in a file with the child in its own session
(``log_path`` set: it outlives the command that started it, right for ``dev-cluster up``).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

__all__ = ["RunlakeProcess", "parse_ready", "pid_alive", "stop_pid"]

_READY = re.compile(r"\bready\b")
_GRPC = re.compile(r"\bgrpc=grpc://\S+:(\d+)\b")
_HTTP = re.compile(r"\bhttp=http://\S+:(\d+)\b")
_MAX_OUTPUT_LINES = 2_000


def parse_ready(line: str) -> tuple[int | None, int | None] | None:
    """(grpc port, http port) of a ready line (None where it names none); None if not one."""
    if _READY.search(line) is None:
        return None
    grpc_port, http_port = _GRPC.search(line), _HTTP.search(line)
    return (
        int(grpc_port.group(1)) if grpc_port else None,
        int(http_port.group(1)) if http_port else None,
    )


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists (and is not a zombie of ours)."""
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False  # it was our child and has just been reaped
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_pid(pid: int, timeout_s: float, sig: int = signal.SIGTERM) -> bool:
    """Signal ``pid`` and wait; SIGKILL past ``timeout_s``. Whether it had to be killed."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return False
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return True


@dataclass
class RunlakeProcess:
    """One ``runlake <args>`` child on this interpreter; ports read back from its ready line."""

    args: Sequence[str]
    name: str = "runlake"
    #: Environment variables set for the child only. The child never inherits the
    #: caller's RUNLAKE_* variables: its settings are its flags plus these.
    env: dict[str, str] = field(default_factory=dict)
    log_path: Path | None = None
    port: int = 0
    http_port: int = 0
    ready_s: float = 0.0
    ready_line: str = ""
    proc: subprocess.Popen[str] | None = None
    output: list[str] = field(default_factory=list)

    @property
    def uri(self) -> str:
        return f"grpc://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def _match(self, line: str) -> bool:
        if len(self.output) < _MAX_OUTPUT_LINES:
            self.output.append(line)
        ready = parse_ready(line)
        if ready is None:
            return False
        grpc_port, http_port = ready
        if grpc_port is not None:
            self.port = grpc_port
        if http_port is not None:
            self.http_port = http_port
        self.ready_line = line.strip()
        return True

    def start(self, timeout_s: float = 120.0) -> RunlakeProcess:
        """Start; return once the ready line is out (``ready_s`` measures it)."""
        cmd = [sys.executable, "-c", "from runlake.cli import main; main()", *self.args]
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNLAKE_")}
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.env)
        t0 = time.perf_counter()
        ready = threading.Event()
        if self.log_path is None:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True, env=env,
            )  # fmt: skip

            def pump() -> None:
                assert self.proc is not None and self.proc.stdout is not None
                for line in self.proc.stdout:
                    if self._match(line) and not ready.is_set():
                        self.ready_s = time.perf_counter() - t0
                        ready.set()

            threading.Thread(target=pump, daemon=True).start()
        else:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "w") as out:
                self.proc = subprocess.Popen(
                    cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    text=True, env=env, start_new_session=True,
                )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        seen = 0
        while not ready.wait(0.02):
            if self.log_path is not None:
                lines = self.log_path.read_text(errors="replace").splitlines(keepends=True)
                for line in lines[seen:]:
                    if self._match(line) and not ready.is_set():
                        self.ready_s = time.perf_counter() - t0
                        ready.set()
                seen = len(lines)
                if ready.is_set():
                    break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                what = "exited" if self.proc.poll() is not None else f"not ready in {timeout_s}s"
                raise RuntimeError(
                    f"{self.name} ({' '.join(self.args[:1])}) {what}:\n" + "".join(self.output)
                )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """kill -9: no shutdown code runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout_s: float = 30.0) -> int:
        """Ctrl-C as a user would (a clean shutdown), kill -9 past ``timeout_s``; exit code."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return int(self.proc.returncode or 0)

    def __enter__(self) -> RunlakeProcess:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
