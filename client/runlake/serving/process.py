"""Run the scoring server as a child process: start, wait for its ready line, stop by PID.

For tests and benchmarks (and anything else that needs a real server on loopback), so the
ready-line contract — ``... ready http://HOST:PORT ...`` — is parsed in one place. Port 0
lets the server pick a free port, read back from that line.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

__all__ = ["READY_PATTERN", "ServingProcess"]

READY_PATTERN = re.compile(r"ready (http://(\[[0-9a-fA-F:]+\]|[\w.-]+):(\d+))")
_MAX_OUTPUT_LINES = 2_000


@dataclass
class ServingProcess:
    """One scoring server child; ``args`` are the serve command's options.

    ``command`` is what runs before them: ``python -m runlake.serving`` by default, or e.g.
    ``["runlake", "models", "serve"]``. The child's stdout and stderr are collected in
    ``output``; its environment drops the caller's ``RUNLAKE_*`` settings.
    """

    args: Sequence[str]
    command: Sequence[str] = (sys.executable, "-m", "runlake.serving")
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[str] | None = None
    url: str = ""
    port: int = 0
    ready_s: float = 0.0
    output: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def start(self, timeout_s: float = 300.0) -> Self:
        """Start and return once the server prints its ready line; RuntimeError if it never does."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("RUNLAKE_")}
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.env)
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [*self.command, *self.args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        ready = threading.Event()

        def pump() -> None:
            assert self.proc is not None and self.proc.stdout is not None
            for line in self.proc.stdout:
                if len(self.output) < _MAX_OUTPUT_LINES:
                    self.output.append(line)
                match = READY_PATTERN.search(line)
                if match and not ready.is_set():
                    self.url, self.port = match.group(1), int(match.group(3))
                    self.ready_s = time.perf_counter() - t0
                    ready.set()

        threading.Thread(target=pump, daemon=True).start()
        deadline = time.monotonic() + timeout_s
        while not ready.wait(0.02):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("the scoring server did not become ready:\n" + self.text())
        return self

    def text(self) -> str:
        """Everything the server printed so far."""
        return "".join(self.output)

    def kill(self) -> None:
        """kill -9 of the launcher (its workers stop when they see it gone)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self, sig: int = signal.SIGINT, timeout_s: float = 30.0) -> int:
        """Stop as a user would (Ctrl-C by default); kill -9 past ``timeout_s``; exit status."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return int(self.proc.returncode or 0)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
