"""Run `runlake server` as a child process on loopback: start, wait for ready, stop by PID.

A :class:`~runlake_services.launcher.RunlakeProcess` with the server's flags, for the
end-to-end tests and the benchmarks; the ready line is parsed in runlake_services.launcher.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

from runlake_services.launcher import RunlakeProcess

__all__ = ["ServerProcess", "free_port"]


def free_port() -> int:
    """A port free on 127.0.0.1 now (for a server that must come back on the same port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess(RunlakeProcess):
    """One `runlake server` child; port 0 lets it choose, read back from its ready line."""

    data_dir: Path = Path()
    #: More ``runlake server`` flags.
    extra_args: list[str] = field(default_factory=list)

    def __init__(
        self,
        data_dir: Path,
        port: int = 0,
        http_port: int = 0,
        *,
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        super().__init__(args=[], name="runlake server", env=dict(env or {}))
        self.data_dir = data_dir
        self.port = port
        self.http_port = http_port
        self.extra_args = list(extra_args or [])

    def start(self, timeout_s: float = 120.0) -> ServerProcess:
        self.args = [
            "server", "--data-dir", str(self.data_dir), "--host", "127.0.0.1",
            "--port", str(self.port), "--http-port", str(self.http_port), *self.extra_args,
        ]  # fmt: skip
        super().start(timeout_s)
        return self
