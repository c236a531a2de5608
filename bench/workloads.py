"""Client-side work in separate processes: runlake with this interpreter, MLflow with its own.

Each worker waits for a common start time, does its work, and prints its elapsed seconds,
measured until its writes are durable (runlake: ``flush()`` returned; MLflow: the
synchronous call returned).
"""

from __future__ import annotations

import subprocess
import sys
import time

from bench import mlflow_env

RUNLAKE_INGEST = """
import sys, time, runlake
uri, n, start = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
runlake.set_tracking_uri(uri)
run = runlake.start_run()
runlake.flush()
time.sleep(max(0.0, start - time.time()))
t = time.perf_counter()
for i in range(n):
    runlake.log_metric("m", float(i), step=i)
runlake.flush()
print("ELAPSED", time.perf_counter() - t)
runlake.end_run()
"""

MLFLOW_INGEST = """
import sys, time
from mlflow import MlflowClient
from mlflow.entities import Metric
uri, n, start = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
c = MlflowClient(uri)
run = c.create_run("0")
time.sleep(max(0.0, start - time.time()))
t = time.perf_counter()
now = int(time.time() * 1000)
for s in range(0, n, 1000):
    batch = [Metric("m", float(i), now, i) for i in range(s, min(n, s + 1000))]
    c.log_batch(run.info.run_id, metrics=batch)
print("ELAPSED", time.perf_counter() - t)
"""

RUNLAKE_MANY_RUNS = """
import sys, time, runlake
uri, n, start = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
runlake.set_tracking_uri(uri)
c = runlake.RunlakeClient()
c.flush()
time.sleep(max(0.0, start - time.time()))
t = time.perf_counter()
for r in range(n):
    run = c.create_run("0")
    rid = run.info.run_id
    c.log_batch(rid, params={f"p{j}": j for j in range(5)}, tags={f"t{j}": j for j in range(3)})
    for s in range(10):
        c.log_metric(rid, "m", float(s), step=s)
    c.set_terminated(rid)
c.flush()
print("ELAPSED", time.perf_counter() - t)
"""

MLFLOW_MANY_RUNS = """
import sys, time
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
uri, n, start = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
c = MlflowClient(uri)
time.sleep(max(0.0, start - time.time()))
t = time.perf_counter()
now = int(time.time() * 1000)
for r in range(n):
    rid = c.create_run("0").info.run_id
    c.log_batch(rid, metrics=[Metric("m", float(s), now, s) for s in range(10)],
                params=[Param(f"p{j}", str(j)) for j in range(5)],
                tags=[RunTag(f"t{j}", str(j)) for j in range(3)])
    c.set_terminated(rid)
print("ELAPSED", time.perf_counter() - t)
"""


def fan_out(script: str, uri: str, per_worker: int, workers: int, *, mlflow: bool) -> float:
    """Run ``workers`` processes; returns the wall time until the slowest is durable."""
    exe = mlflow_env.python() if mlflow else sys.executable
    env = mlflow_env.ENV
    start = time.time() + 3.0 + 0.3 * workers  # every worker is connected before the start
    procs = [
        subprocess.Popen(
            [exe, "-c", script, uri, str(per_worker), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(workers)
    ]
    times = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=1800)
            if p.returncode != 0:
                raise RuntimeError(f"worker failed: {err[-2000:]}")
            times.append(elapsed(out))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return max(times)


def elapsed(stdout: str) -> float:
    """The worker's figure, on its ``ELAPSED`` line (MLflow prints other lines to stdout)."""
    for line in stdout.splitlines():
        if line.startswith("ELAPSED "):
            return float(line.split()[1])
    raise RuntimeError(f"no ELAPSED line in worker output: {stdout[-500:]!r}")
