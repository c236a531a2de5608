"""What every benchmark shares: the result row, the run context, statistics, worker processes.

Client-side work runs in worker processes, never in the process that prints the table: a
runlake worker runs on this interpreter, an MLflow worker on the MLflow venv's. A worker is
a small script given as ``python -c SCRIPT ARGS_JSON``; it prints its answer as one line
``RESULT {json}`` (MLflow prints other things on stdout, so only that line is read).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

__all__ = [
    "Ctx",
    "Row",
    "fan_out",
    "percentile",
    "run_worker",
    "runlake_env",
]


@dataclass
class Row:
    """One printed figure: runlake's, MLflow's from the same run, and the issue's target."""

    bench: str
    name: str
    runlake: float | None
    unit: str
    mlflow: float | None = None
    #: Throughputs are better high, latencies low; decides how the ratio reads.
    higher_is_better: bool = True
    target: str = ""
    met: bool | None = None
    detail: list[str] = field(default_factory=list)

    def ratio(self) -> float | None:
        """How many times better runlake is than MLflow (> 1: runlake is better)."""
        if not self.mlflow or not self.runlake:
            return None
        if self.higher_is_better:
            return self.runlake / self.mlflow
        return self.mlflow / self.runlake

    def as_dict(self) -> dict[str, Any]:
        return {
            "bench": self.bench,
            "name": self.name,
            "runlake": self.runlake,
            "mlflow": self.mlflow,
            "unit": self.unit,
            "ratio": self.ratio(),
            "target": self.target,
            "met": self.met,
            "detail": self.detail,
        }


@dataclass
class Ctx:
    """Options of this run of the suite, and where to report progress."""

    quick: bool
    mlflow: bool
    tmp: Path
    flood_seconds: float
    say: Callable[[str], None] = print

    def pick(self, quick: Any, full: Any) -> Any:
        return quick if self.quick else full

    def dir(self, name: str) -> Path:
        """A fresh directory for one server's data."""
        return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.tmp))


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by the nearest-rank method; NaN for no values."""
    if not values:
        return math.nan
    s = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(s)))
    return float(s[min(rank, len(s)) - 1])


def runlake_env() -> dict[str, str]:
    """Environment of runlake worker processes (no tracking URI leaking from the caller)."""
    out = {k: v for k, v in os.environ.items() if not k.startswith("RUNLAKE_")}
    out["PYTHONUNBUFFERED"] = "1"
    return out


def _parse(stdout: str, stderr: str, rc: int | None) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        if line.startswith("RESULT "):
            return dict(json.loads(line[len("RESULT ") :]))
    raise RuntimeError(
        f"worker exited with {rc} and no RESULT line\n--- stdout ---\n{stdout[-1500:]}"
        f"\n--- stderr ---\n{stderr[-3000:]}"
    )


#: Prepended to every worker script: its arguments ``A``, the start barrier, the answer.
PRELUDE = """
import json, sys, time
A = json.loads(sys.argv[1])

def ready():
    \"\"\"Tell the parent set-up is done; block until every worker is told to go.\"\"\"
    print("READY", flush=True)
    sys.stdin.readline()
    return time.time()

def result(**kw):
    print("RESULT " + json.dumps(kw), flush=True)
"""


def run_worker(
    script: str,
    args: dict[str, Any],
    *,
    exe: str | None = None,
    env: dict[str, str] | None = None,
    timeout_s: float = 600,
) -> dict[str, Any]:
    """Run one worker to completion (killed after ``timeout_s``) and return its RESULT."""
    return fan_out(script, [args], exe=exe, env=env, timeout_s=timeout_s)[0]


def fan_out(
    script: str,
    per_worker: Sequence[dict[str, Any]],
    *,
    exe: str | None = None,
    env: dict[str, str] | None = None,
    timeout_s: float = 600,
    barrier: bool = False,
) -> list[dict[str, Any]]:
    """Run one worker per entry of ``per_worker`` at once; their RESULTs, in order.

    With ``barrier`` each worker calls ``ready()`` after its set-up (imports, connection,
    creating its run); once all have, the parent notes ``start`` (``time.time()``, added to
    every result) and releases them together, so ``end - start`` is comparable across
    workers. Every worker is killed when ``timeout_s`` has passed.
    """
    exe = exe or sys.executable
    env = env or runlake_env()
    procs: list[subprocess.Popen[str]] = []
    expired = threading.Event()

    def kill_all() -> None:
        expired.set()
        for p in procs:
            if p.poll() is None:
                p.kill()

    timer = threading.Timer(timeout_s, kill_all)
    timer.daemon = True
    timer.start()
    with contextlib.ExitStack() as stack:
        errs = [stack.enter_context(tempfile.TemporaryFile(mode="w+")) for _ in per_worker]
        try:
            for a, err in zip(per_worker, errs, strict=True):
                procs.append(
                    subprocess.Popen(
                        [exe, "-c", PRELUDE + script, json.dumps(a)],
                        stdin=subprocess.PIPE if barrier else subprocess.DEVNULL,
                        stdout=subprocess.PIPE,
                        stderr=err,
                        text=True,
                        env=env,
                        cwd=tempfile.gettempdir(),  # never import the repository's modules
                    )
                )
            start = _release(procs, errs, expired) if barrier else None
            results = []
            for p, err in zip(procs, errs, strict=True):
                assert p.stdout is not None
                out = p.stdout.read()
                p.wait()
                if expired.is_set():
                    raise RuntimeError(f"workers ran past {timeout_s:.0f} s and were killed")
                err.seek(0)
                res = _parse(out, err.read(), p.returncode)
                if start is not None:
                    res["start"] = start
                results.append(res)
            return results
        finally:
            timer.cancel()
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait(10)


def _release(
    procs: list[subprocess.Popen[str]], errs: list[IO[str]], expired: threading.Event
) -> float:
    """Wait for every worker's READY, then send GO to all; the start time."""
    for p, err in zip(procs, errs, strict=True):
        assert p.stdout is not None
        line = p.stdout.readline()
        while line and line.strip() != "READY":
            line = p.stdout.readline()
        if not line:
            p.wait(10)
            err.seek(0)
            raise RuntimeError(
                f"worker exited with {p.returncode} before it was ready"
                + (" (timed out)" if expired.is_set() else "")
                + f"\n--- stderr ---\n{err.read()[-3000:]}"
            )
    start = time.time()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("GO\n")
        p.stdin.close()
    return start
