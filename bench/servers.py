"""The two servers under test, as child processes on 127.0.0.1, and their memory.

Both are started with free ports, timed from process start to ready (runlake: its
``ready grpc=...`` line; MLflow: ``/health`` answering), and stopped by PID in
``stop()``; use them as context managers so they stop on any error.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import psutil
from runlake_services.embedded.process import ServerProcess, free_port

from bench import mlflow_env

__all__ = [
    "MlflowServer",
    "RssSampler",
    "RunlakeServer",
    "free_port",
    "tree_pss_mb",
    "tree_rss_mb",
]

_START_TIMEOUT_S = 300.0


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MiB (shared pages counted
    once per process: an overestimate for a tree of forked workers, see ``tree_pss_mb``)."""
    root = psutil.Process(pid)
    total = 0
    for p in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total / 2**20


def tree_pss_mb(pid: int) -> float:
    """Proportional set size of a process tree, in MiB: shared pages split between sharers."""
    root = psutil.Process(pid)
    total = 0
    for p in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error, AttributeError):
            total += p.memory_full_info().pss
    return total / 2**20


def _stop_tree(proc: subprocess.Popen[str] | None, sig: int) -> None:
    """Signal ``proc``, wait, then kill it and any descendant left (all by PID)."""
    if proc is None or proc.poll() is not None:
        return
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        children = []
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    for child in children:
        with contextlib.suppress(psutil.Error):
            if child.is_running():
                child.kill()


class _Managed:
    proc: subprocess.Popen[str] | None

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> _Managed:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def rss_mb(self) -> float:
        return tree_rss_mb(self.pid)


class RunlakeServer(ServerProcess):
    """``runlake server`` on this interpreter (the shared launcher), plus its memory."""

    def rss_mb(self) -> float:
        return tree_rss_mb(self.pid)


@dataclass
class MlflowServer(_Managed):
    """``mlflow server`` with a SQLite backend under ``root`` and ``workers`` workers."""

    root: Path
    workers: int | None = None  #: None: MLflow's default (4)
    port: int = 0
    ready_s: float = 0.0
    proc: subprocess.Popen[str] | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def db(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def label(self) -> str:
        return "default (4) workers" if self.workers is None else f"--workers {self.workers}"

    def start(self) -> MlflowServer:
        exe = mlflow_env.mlflow_exe()
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        cmd = [
            exe,
            "server",
            "--backend-store-uri",
            f"sqlite:///{self.db}",
            "--default-artifact-root",
            str(self.root / "art"),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        if self.workers is not None:
            cmd += ["--workers", str(self.workers)]
        log = (self.root / "server.log").open("a")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            env=mlflow_env.env(),
            cwd=self.root,
        )
        log.close()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as r:
                    if r.status == 200:
                        self.ready_s = time.perf_counter() - t0
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        tail = (self.root / "server.log").read_text()[-3000:]
        raise RuntimeError(f"mlflow server did not become ready:\n{tail}")

    def stop(self) -> None:
        _stop_tree(self.proc, signal.SIGTERM)

    def __enter__(self) -> MlflowServer:
        return self


@dataclass
class RssSampler:
    """Samples a process tree's RSS (MiB) every ``interval_s`` in a thread, with timestamps."""

    pid: int
    interval_s: float = 1.0
    samples: list[tuple[float, float]] = field(default_factory=list)
    #: Also sample the tree's PSS (slower; for servers with worker processes).
    pss: bool = False
    pss_samples: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        t0 = time.monotonic()
        while not self._stop.is_set():
            try:
                self.samples.append((time.monotonic() - t0, tree_rss_mb(self.pid)))
                if self.pss:
                    self.pss_samples.append(tree_pss_mb(self.pid))
            except psutil.Error:
                return
            self._stop.wait(self.interval_s)

    @property
    def values(self) -> list[float]:
        return [v for _, v in self.samples]

    def slope_mb_per_min(self, skip_fraction: float = 0.0) -> float:
        """Least-squares slope of RSS over time, skipping the first ``skip_fraction``."""
        pts = self.samples[int(len(self.samples) * skip_fraction) :]
        if len(pts) < 2:
            return 0.0
        n = len(pts)
        mt = sum(t for t, _ in pts) / n
        mv = sum(v for _, v in pts) / n
        var = sum((t - mt) ** 2 for t, _ in pts)
        if var == 0:
            return 0.0
        return sum((t - mt) * (v - mv) for t, v in pts) / var * 60.0
