"""The foreground life of every runlake server process: ready line, signals, clean stop.

``runlake server``, ``gateway`` and ``query`` all start, print one line containing
``ready`` with their addresses (the contract runlake_services.launcher parses), serve until
SIGINT or SIGTERM, then stop in their own order. One implementation, so the line's shape
and the shutdown messages never drift apart.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Protocol, TypeVar

__all__ = ["Stoppable", "serve_until_signalled"]


class Stoppable(Protocol):
    port: int

    def stop(self, grace_s: float = 5.0) -> None: ...


S = TypeVar("S", bound=Stoppable)


def serve_until_signalled(
    name: str,
    start: Callable[[], S],
    *,
    host: str,
    http_port: Callable[[S], int | None],
    detail: str,
    stopping: str = "shutting down",
) -> None:
    """Start, print ``runlake NAME ready grpc=… [http=…] DETAIL in Ns``, wait, stop."""
    t0 = time.perf_counter()
    server = start()
    done = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
    port = http_port(server)
    http = f" http=http://{host}:{port}" if port is not None else ""
    print(
        f"runlake {name} ready grpc=grpc://{host}:{server.port}{http} {detail} "
        f"in {time.perf_counter() - t0:.2f}s",
        flush=True,
    )
    done.wait()
    print(f"runlake {name}: {stopping}", file=sys.stderr, flush=True)
    server.stop()
    print(f"runlake {name}: stopped", file=sys.stderr, flush=True)
