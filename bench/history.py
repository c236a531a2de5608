"""6. metric history: fetching every point of one metric of one run.

runlake: the points are logged through the normal SDK (``log_metric`` in a loop, then
``flush()``), one untimed ``get_metric_history`` waits for them to be folded, then the
median of a few timed ``RunlakeClient.get_metric_history`` calls (the stream plus decoding
into ``Metric`` objects). MLflow: the points are logged with ``MlflowClient.log_batch`` of
1,000 (its fastest way), then ``MlflowClient.get_metric_history`` is timed the same way.
"""

from __future__ import annotations

from typing import Any

from bench.common import Ctx, Row, run_worker
from bench.compare import mlflow_best, mlflow_worker
from bench.servers import MlflowServer, RunlakeServer

NAME = "history"

RUNLAKE = """
import statistics
import runlake
c = runlake.RunlakeClient(A["uri"])
rid = c.create_run("0", run_name="history").info.run_id
n = A["n"]
t = time.perf_counter()
for i in range(n):
    c.log_metric(rid, "h", i * 0.5, timestamp=1_700_000_000_000 + i, step=i)
c.flush()
load_s = time.perf_counter() - t
t = time.perf_counter()
assert len(c.get_metric_history(rid, "h")) == n
first_s = time.perf_counter() - t
times = []
for _ in range(A["reps"]):
    t = time.perf_counter()
    pts = c.get_metric_history(rid, "h")
    times.append(time.perf_counter() - t)
assert len(pts) == n and pts[-1].step == n - 1, len(pts)
result(median_s=statistics.median(times), times=times, load_s=load_s, first_s=first_s)
"""

MLFLOW = """
import statistics
from mlflow import MlflowClient
from mlflow.entities import Metric
c = MlflowClient(A["uri"])
n = A["n"]
rid, load_s = A.get("run_id"), None
if rid is None:
    rid = c.create_run("0", run_name="history").info.run_id
    t = time.perf_counter()
    for s in range(0, n, 1000):
        c.log_batch(rid, metrics=[Metric("h", i * 0.5, 1_700_000_000_000 + i, i)
                                  for i in range(s, min(n, s + 1000))])
    load_s = time.perf_counter() - t
times = []
deadline = time.time() + A["budget"]
for _ in range(A["reps"]):
    t = time.perf_counter()
    pts = c.get_metric_history(rid, "h")
    times.append(time.perf_counter() - t)
    if time.time() > deadline:
        break
assert len(pts) == n, len(pts)
result(median_s=statistics.median(times), times=times, load_s=load_s, run_id=rid)
"""


def run(ctx: Ctx) -> list[Row]:
    compare_n = ctx.pick(20_000, 100_000)
    sizes = ctx.pick((compare_n,), (compare_n, 1_000_000))
    rows = []
    with RunlakeServer(ctx.dir("history")).start() as server:
        for n in sizes:
            ctx.say(f"history: runlake, logging and fetching {n:,} points")
            r = run_worker(RUNLAKE, {"uri": server.uri, "n": n, "reps": 5}, timeout_s=1200)
            ms = r["median_s"] * 1000
            row = Row(NAME, f"metric history, {n:,} points", ms, "ms", higher_is_better=False)
            row.detail.append(
                f"runlake: median of {len(r['times'])} fetches; logged through the SDK in "
                f"{r['load_s']:.1f} s ({n / r['load_s']:,.0f} points/s), first fetch (waits "
                f"for the fold) {r['first_s'] * 1000:.0f} ms"
            )
            if n == 1_000_000:
                row.target, row.met = "≤ 1,000 ms", ms <= 1000
            rows.append(row)
    first = rows[0]
    first.target = "≥ 50x MLflow"
    if ctx.mlflow:
        _mlflow(ctx, first, compare_n)
        ratio = first.ratio()
        first.met = None if ratio is None else ratio >= 50
    return rows


def _mlflow(ctx: Ctx, row: Row, n: int) -> None:
    loaded: dict[str, Any] = {}

    def measure(s: MlflowServer) -> dict[str, Any]:
        args = {"uri": s.uri, "n": n, "reps": 5, "budget": ctx.pick(20.0, 60.0), **loaded}
        ctx.say(f"history: MLflow {s.label}, {n:,} points" + ("" if loaded else " (logging)"))
        out = mlflow_worker(MLFLOW, [args], timeout_s=1800)[0]
        loaded.setdefault("run_id", out["run_id"])
        return out

    best, label, every = mlflow_best(
        ctx, "history", measure, lambda r: r["median_s"], higher_is_better=False, shared_root=True
    )
    if best is None:
        row.detail.append("MLflow: failed (see log above)")
        return
    row.mlflow = best["median_s"] * 1000
    row.detail.append(f"MLflow best: {label}")
    for lab, r in every.items():
        load = f"; logged with log_batch(1000) in {r['load_s']:.1f} s" if r["load_s"] else ""
        row.detail.append(
            f"MLflow {lab}: median {r['median_s'] * 1000:,.0f} ms over {len(r['times'])}{load}"
        )
