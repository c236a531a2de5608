"""Run the scoring server: bind the port, load the model, serve; with N workers, supervise.

One process (``--workers 1``) binds, loads the model and serves. With N > 1 the launcher
binds the listening socket itself and starts N worker processes that inherit it (as
gunicorn and uvicorn do), so they share the port and the kernel hands each new connection
to one of them; each worker loads the model once. The launcher prints the ``ready`` line
only when every worker has loaded its model and listens, restarts a worker that dies, and on
Ctrl-C or SIGTERM stops them all (SIGTERM to each, SIGKILL past the graceful timeout).

Workers are started as ``python -m runlake.serving.worker`` with the socket and two pipes
passed by file descriptor: one to say "ready", and a lifeline the launcher never writes to,
so a worker sees end-of-file and stops if the launcher is killed without a chance to stop it.
Workers run in their own session, so a terminal's Ctrl-C reaches the launcher only, and each
worker gets exactly one stop signal.

HTTP is uvicorn's httptools protocol on a uvloop event loop (docs/decisions/0009 has the
measurements behind that choice).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType

import uvicorn

from runlake.serving.config import ServeConfig
from runlake.serving.errors import ServerStartError

__all__ = ["bind", "format_url", "run", "serve_in_process"]

logger = logging.getLogger("runlake.serving")

_BACKLOG = 2048
#: Restarts of crashed workers allowed within _RESTART_WINDOW_S before the server gives up.
_MAX_RESTARTS = 5
_RESTART_WINDOW_S = 60.0


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free port), inheritable."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    if not infos:
        raise OSError(f"cannot resolve {host!r}")
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(_BACKLOG)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def format_url(sock: socket.socket) -> str:
    """``http://host:port`` of a bound socket (IPv6 hosts in brackets)."""
    host, port = sock.getsockname()[:2]
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _announce(url: str, config: ServeConfig) -> None:
    workers = f"{config.workers} worker{'s' if config.workers > 1 else ''}"
    print(f"runlake models serve: ready {url} ({workers}, model {config.model_uri})", flush=True)


def setup_logging() -> None:
    """Warnings and errors on stderr, one line each (the server logs no access lines)."""
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s",
        stream=sys.stderr,
    )


def run(config: ServeConfig) -> int:
    """Serve until Ctrl-C or SIGTERM; the exit status (0 after a clean stop).

    Raises ServerStartError when the address cannot be bound, and the model's load errors
    when the launcher loads it itself (one worker), before anything is printed as ready.
    """
    setup_logging()
    try:
        sock = bind(config.host, config.port)
    except OSError as exc:
        raise ServerStartError(
            f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}",
            field="--port" if exc.errno == errno.EADDRINUSE else "--host",
        ) from None
    try:
        if config.workers == 1:
            serve_in_process(config, sock, on_ready=lambda: _announce(format_url(sock), config))
            return 0
        return _Supervisor(config, sock).run()
    finally:
        sock.close()


# -- one worker ------------------------------------------------------------------------------


def serve_in_process(
    config: ServeConfig,
    sock: socket.socket,
    *,
    on_ready: Callable[[], None],
    lifeline_fd: int | None = None,
) -> None:
    """Load the model, then serve on ``sock`` in this process until told to stop.

    ``on_ready`` runs once the server accepts requests. With ``lifeline_fd``, end-of-file
    on it (the launcher is gone) stops the server as a signal would.
    """
    # imported here: a launcher of N workers never loads a model, so it stays small
    import runlake.pyfunc
    from runlake.serving.app import ScoringApp

    if config.tracking_uri:
        runlake.set_tracking_uri(config.tracking_uri)
    model = runlake.pyfunc.load_model(config.model_uri)
    app = ScoringApp(model, config)
    uv_config = uvicorn.Config(
        app,
        loop="none",
        http="httptools",
        ws="none",
        lifespan="off",
        interface="asgi3",
        access_log=False,
        proxy_headers=False,  # client addresses are not used: skip the middleware
        log_level="warning",
        server_header=False,
        date_header=True,
        timeout_keep_alive=int(max(1, config.keep_alive_s)),
        timeout_graceful_shutdown=int(max(1, config.graceful_timeout_s)),
        backlog=_BACKLOG,
    )
    server = _Server(uv_config)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        if lifeline_fd is not None:
            loop.add_reader(lifeline_fd, server.stop)
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not serving.done():
            await asyncio.sleep(0.005)
        if server.started:
            on_ready()
        await serving

    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(main())
    finally:
        app.close()
        stats = app.batcher.stats
        if stats.merged_calls:
            logger.info(
                "%d requests in %d predict calls (%d merged, largest %d requests)",
                stats.requests,
                stats.calls,
                stats.merged_calls,
                stats.largest,
            )


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it exists (not on Windows), else asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


class _Server(uvicorn.Server):
    """uvicorn's server, stopping on SIGINT/SIGTERM without re-raising them after.

    uvicorn re-raises a caught signal once it has shut down (so a plain script dies of it);
    runlake's CLI ends with its own exit status instead, after the clean stop.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {s: signal.signal(s, self.handle_exit) for s in handled}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)

    def stop(self) -> None:
        """Begin a graceful stop, as the first SIGTERM does."""
        self.should_exit = True


# -- many workers ----------------------------------------------------------------------------


@dataclass
class _Worker:
    proc: subprocess.Popen[bytes]
    started: float
    ready: bool = False


class _Supervisor:
    """Starts N workers on one socket, waits for all to be ready, keeps them running."""

    def __init__(self, config: ServeConfig, sock: socket.socket) -> None:
        self.config = config
        self.sock = sock
        self.workers: list[_Worker] = []
        self.stopping = False
        self.restarts: list[float] = []
        self.ready_r, self.ready_w = os.pipe()
        self.lifeline_r, self.lifeline_w = os.pipe()
        os.set_blocking(self.ready_r, False)
        self._pending = b""

    def run(self) -> int:
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            for _ in range(self.config.workers):
                self.workers.append(self._spawn())
            if not self._wait_ready():
                return 1
            _announce(format_url(self.sock), self.config)
            return self._supervise()
        finally:
            self._stop_all()
            for s, handler in previous.items():
                signal.signal(s, handler)
            for fd in (self.ready_r, self.ready_w, self.lifeline_r, self.lifeline_w):
                with contextlib.suppress(OSError):
                    os.close(fd)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def _spawn(self) -> _Worker:
        fds = (self.sock.fileno(), self.ready_w, self.lifeline_r)
        cmd = [
            sys.executable,
            "-m",
            "runlake.serving.worker",
            self.config.to_json(),
            *map(str, fds),
        ]
        proc = subprocess.Popen(cmd, pass_fds=fds, stdin=subprocess.DEVNULL, start_new_session=True)
        return _Worker(proc, time.monotonic())

    def _read_ready(self) -> None:
        """Mark the workers whose ``ready PID`` line has arrived on the pipe."""
        try:
            self._pending += os.read(self.ready_r, 4096)
        except BlockingIOError:
            return
        *lines, self._pending = self._pending.split(b"\n")
        pids = {int(line.split()[1]) for line in lines if line.startswith(b"ready ")}
        for worker in self.workers:
            if worker.proc.pid in pids:
                worker.ready = True

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + self.config.startup_timeout_s
        while not self.stopping:
            self._read_ready()
            if all(w.ready for w in self.workers):
                return True
            for w in self.workers:
                if w.proc.poll() is not None:
                    logger.error(
                        "a worker exited with status %s before it was ready; stopping",
                        w.proc.returncode,
                    )
                    return False
            if time.monotonic() > deadline:
                logger.error(
                    "workers not ready after %.0f s (--startup-timeout); stopping",
                    self.config.startup_timeout_s,
                )
                return False
            time.sleep(0.02)
        return False

    def _supervise(self) -> int:
        while not self.stopping:
            time.sleep(0.1)
            self._read_ready()
            for i, w in enumerate(self.workers):
                if w.proc.poll() is None or self.stopping:
                    continue
                now = time.monotonic()
                self.restarts = [t for t in self.restarts if now - t < _RESTART_WINDOW_S]
                if len(self.restarts) >= _MAX_RESTARTS:
                    logger.error(
                        "workers died %d times within %.0f s; stopping",
                        len(self.restarts) + 1,
                        _RESTART_WINDOW_S,
                    )
                    return 1
                self.restarts.append(now)
                logger.warning(
                    "worker %d exited with status %s; starting another",
                    w.proc.pid,
                    w.proc.returncode,
                )
                self.workers[i] = self._spawn()
        return 0

    def _stop_all(self) -> None:
        for w in self.workers:
            if w.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    w.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.config.graceful_timeout_s + 5
        for w in self.workers:
            try:
                w.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait(10)
