"""1. ingest: metric points per second made durable, from 1, 4 and 16 client processes.

Each process has its own run (created before the clock starts), logs N points one
``log_metric`` call at a time and then calls ``flush()``; its clock stops when ``flush()``
returns, i.e. when the gateway has acknowledged every point, which it does only after the
points are committed to the event log (SQLite WAL). The figure is all points over the time
from the common start to the last process's end.

MLflow does the same work twice — ``mlflow.log_metric`` per point, and
``MlflowClient.log_batch`` with 1,000 points per call — for a bounded time per process
(its calls are synchronous, so every counted point is already in its store; a call that
fails, e.g. when its connection pool is exhausted under 16 processes, is not counted and is
reported in the details); the faster way is its figure.
"""

from __future__ import annotations

from typing import Any

from bench.common import Ctx, Row, fan_out
from bench.compare import mlflow_best, mlflow_worker
from bench.servers import MlflowServer, RssSampler, RunlakeServer

NAME = "ingest"

RUNLAKE = """
import runlake
runlake.set_tracking_uri(A["uri"])
runlake.start_run(run_name=A["name"])
runlake.flush()
n, log = A["n"], runlake.log_metric
begin = ready()
for i in range(n):
    log("loss", i * 0.001, step=i)
runlake.flush()
end = time.time()
runlake.end_run()
result(points=n, begin=begin, end=end)
"""

MLFLOW_FLUENT = """
import mlflow
mlflow.set_tracking_uri(A["uri"])
mlflow.start_run(run_name=A["name"])
n, log = A["n"], mlflow.log_metric
begin = ready()
deadline = begin + A["budget"]
i = errors = 0
while i < n and time.time() < deadline:
    try:
        log("loss", i * 0.001, step=i)
        i += 1
    except Exception:
        errors += 1
end = time.time()
mlflow.end_run()
result(points=i, errors=errors, begin=begin, end=end)
"""

MLFLOW_BATCH = """
from mlflow import MlflowClient
from mlflow.entities import Metric
c = MlflowClient(A["uri"])
rid = c.create_run("0", run_name=A["name"]).info.run_id
n = A["n"]
begin = ready()
deadline = begin + A["budget"]
i = errors = 0
while i < n and time.time() < deadline:
    now = int(time.time() * 1000)
    batch = [Metric("loss", j * 0.001, now, j) for j in range(i, min(n, i + 1000))]
    try:
        c.log_batch(rid, metrics=batch)
        i += len(batch)
    except Exception:
        errors += 1
end = time.time()
result(points=i, errors=errors, begin=begin, end=end)
"""


def rate(results: list[dict[str, Any]]) -> float:
    """All points over the time from the common start to the last worker's end."""
    points = sum(r["points"] for r in results)
    wall = max(r["end"] for r in results) - results[0]["start"]
    return points / wall if wall > 0 else 0.0


def run(ctx: Ctx) -> list[Row]:
    procs = ctx.pick((1, 4, 16), (1, 4, 16))
    n = ctx.pick(20_000, 200_000)
    budget = ctx.pick(4.0, 20.0)
    rows: list[Row] = []
    with RunlakeServer(ctx.dir("ingest")).start() as server:
        for p in procs:
            ctx.say(f"ingest: runlake, {p} processes x {n:,} points")
            with RssSampler(server.pid) as rss:
                res = fan_out(
                    RUNLAKE,
                    [{"uri": server.uri, "n": n, "name": f"ingest-{p}-{i}"} for i in range(p)],
                    barrier=True,
                    timeout_s=ctx.pick(300, 1200),
                )
            row = Row(NAME, f"ingest, {p} process{'es' if p > 1 else ''}", rate(res), "points/s")
            row.detail.append(
                f"runlake: {p} x {n:,} points in {max(r['end'] for r in res) - res[0]['start']:.2f}"
                f" s, server RSS max {max(rss.values, default=0):.0f} MiB"
            )
            rows.append(row)
    if ctx.mlflow:
        _mlflow(ctx, rows, procs, n, budget)
    last = rows[-1]
    last.target = "≥ 300,000 points/s and ≥ 50x MLflow"
    assert last.runlake is not None
    ratio = last.ratio()
    last.met = last.runlake >= 300_000 and (ratio is None or ratio >= 50)
    return rows


_WAYS = (("log_metric", MLFLOW_FLUENT), ("log_batch(1000)", MLFLOW_BATCH))


def _mlflow(ctx: Ctx, rows: list[Row], procs: tuple[int, ...], n: int, budget: float) -> None:
    """One MLflow server per configuration, measured at every process count and both ways."""

    def measure(server: MlflowServer) -> dict[int, dict[str, float]]:
        out: dict[int, dict[str, float]] = {}
        for p in procs:
            out[p] = {}
            for way, script in _WAYS:
                ctx.say(f"ingest: MLflow {server.label}, {p} processes, {way}")
                args = [
                    {"uri": server.uri, "n": n, "budget": budget, "name": f"ingest-{p}-{i}"}
                    for i in range(p)
                ]
                with RssSampler(server.pid) as rss:
                    res = mlflow_worker(script, args, barrier=True, timeout_s=budget + 600)
                out[p][way] = rate(res)
                out[p][f"{way} errors"] = sum(r.get("errors", 0) for r in res)
                out[p]["rss"] = max(out[p].get("rss", 0.0), max(rss.values, default=0.0))
        return out

    def at_16(r: dict[int, dict[str, float]]) -> float:
        return max(r[procs[-1]][w] for w, _ in _WAYS)

    _, _, every = mlflow_best(ctx, "ingest", measure, at_16, higher_is_better=True)
    if not every:
        rows[-1].detail.append("MLflow: failed (see log above)")
        return
    for row, p in zip(rows, procs, strict=True):
        candidates = [(r[p][w], lab, w) for lab, r in every.items() for w, _ in _WAYS]
        best, label, way = max(candidates)
        row.mlflow = best
        row.detail.append(f"MLflow best: {label}, {way}")
        for lab, r in every.items():
            row.detail.append(
                f"MLflow {lab}: log_metric {r[p]['log_metric']:,.0f}/s, "
                f"log_batch(1000) {r[p]['log_batch(1000)']:,.0f}/s "
                f"(server RSS summed over its processes, max {r[p]['rss']:.0f} MiB)" + _errors(r[p])
            )


def _errors(r: dict[str, float]) -> str:
    failed = {w: int(r[f"{w} errors"]) for w, _ in _WAYS if r.get(f"{w} errors")}
    if not failed:
        return ""
    return "; failed calls (not counted): " + ", ".join(f"{w} {k}" for w, k in failed.items())
