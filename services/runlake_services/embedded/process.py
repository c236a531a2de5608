"""Run `runlake server` as a child process on loopback: start, wait for ready, stop by PID.

One implementation for everything that needs a real server process — the end-to-end
tests, the benchmarks, and later the local dev cluster — so the ready-line contract
("... ready grpc=grpc://HOST:PORT http=http://HOST:PORT ...") is parsed in one place.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

__all__ = ["ServerProcess", "free_port"]

_READY = re.compile(r"ready grpc=grpc://([\d.]+):(\d+)(?: http=http://[\d.]+:(\d+))?")
_MAX_OUTPUT_LINES = 2_000


def free_port() -> int:
    """A port free on 127.0.0.1 now (for a server that must come back on the same port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    """One `runlake server` child; port 0 lets it choose, read back from its ready line."""

    data_dir: Path
    port: int = 0
    http_port: int = 0
    ready_s: float = 0.0
    proc: subprocess.Popen[str] | None = None
    output: list[str] = field(default_factory=list)
    #: More ``runlake server`` flags, and environment variables set for the child only.
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        return f"grpc://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def start(self, timeout_s: float = 120.0) -> ServerProcess:
        """Start and return once the server prints its ready line (``ready_s`` measures it)."""
        cmd = [
            sys.executable, "-c", "from runlake.cli import main; main()", "server",
            "--data-dir", str(self.data_dir), "--host", "127.0.0.1",
            "--port", str(self.port), "--http-port", str(self.http_port),
            *self.extra_args,
        ]  # fmt: skip
        # The child takes its settings from these flags only, not from the caller's RUNLAKE_*.
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNLAKE_")}
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.env)
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env=env,
        )  # fmt: skip
        ready = threading.Event()

        def pump() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                if len(self.output) < _MAX_OUTPUT_LINES:
                    self.output.append(line)
                m = _READY.search(line)
                if m and not ready.is_set():
                    self.port = int(m.group(2))
                    if m.group(3):
                        self.http_port = int(m.group(3))
                    self.ready_s = time.perf_counter() - t0
                    ready.set()

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout_s
        while not ready.wait(0.01):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("runlake server did not become ready:\n" + "".join(self.output))
        return self

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

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
