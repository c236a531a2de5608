"""Start and stop the two servers under test on loopback, and sample their memory."""

from __future__ import annotations

import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench import mlflow_env
from tests.integration.server import ServerProcess, free_port


def start_runlake(data_dir: Path) -> tuple[ServerProcess, float]:
    """A runlake server; returns it and its ready time (process start → ready line)."""
    t0 = time.perf_counter()
    proc = ServerProcess(data_dir).start()
    return proc, time.perf_counter() - t0


@dataclass
class MlflowServer:
    root: Path
    workers: int
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MlflowServer:
        self.port = free_port()
        exe = Path(mlflow_env.python()).parent / "mlflow"
        self.root.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                str(exe),
                "server",
                "--backend-store-uri",
                f"sqlite:///{self.root / 'mlflow.db'}",
                "--default-artifact-root",
                str(self.root / "artifacts"),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(self.workers),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=mlflow_env.ENV,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=1):
                    return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("mlflow server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            for child in psutil.Process(self.proc.pid).children(recursive=True):
                child.kill()
            self.proc.kill()
            self.proc.wait(10)


@dataclass
class RssSampler:
    """Samples the resident memory of a process tree every ``interval_s`` in a thread."""

    pid: int
    interval_s: float = 0.5
    samples: list[float] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> RssSampler:
        threading.Thread(target=self._run, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    def _run(self) -> None:
        root = psutil.Process(self.pid)
        while not self._stop.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
                self.samples.append(sum(p.memory_info().rss for p in procs) / 2**20)
            except psutil.Error:
                return
            self._stop.wait(self.interval_s)
