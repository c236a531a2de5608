"""One scoring worker process, started by the launcher (``runlake.serving.server``).

``python -m runlake.serving.worker CONFIG_JSON LISTEN_FD READY_FD LIFELINE_FD``: serve on
the inherited listening socket, write ``ready PID`` to READY_FD once accepting, and stop
when LIFELINE_FD reaches end-of-file (the launcher is gone) or on SIGTERM/SIGINT.
Not a user command: the launcher is.
"""

from __future__ import annotations

import os
import socket
import sys

from runlake.serving.config import ServeConfig
from runlake.serving.server import serve_in_process, setup_logging

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Serve as the launcher asked; the exit status."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 4:
        print(
            "usage: python -m runlake.serving.worker CONFIG LISTEN_FD READY_FD LIFELINE_FD",
            file=sys.stderr,
        )
        return 2
    config = ServeConfig.from_json(args[0])
    listen_fd, ready_fd, lifeline_fd = (int(a) for a in args[1:])
    setup_logging()
    sock = socket.socket(fileno=listen_fd)

    def ready() -> None:
        os.write(ready_fd, f"ready {os.getpid()}\n".encode())

    try:
        serve_in_process(config, sock, on_ready=ready, lifeline_fd=lifeline_fd)
    except Exception as exc:  # one line, as the CLI reports errors; the launcher stops
        print(f"error: worker {os.getpid()}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
