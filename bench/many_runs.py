"""3. many runs: runs per second, each with 5 params, 3 tags and 10 metric points, 16 processes.

runlake: ``RunlakeClient.create_run``, ``log_batch`` (params and tags), 10 ``log_metric``
calls and ``set_terminated`` per run, then one ``flush()``; the clock stops when it
returns (every run durable). MLflow: ``create_run``, one ``log_batch`` with the params,
tags and points, and ``set_terminated`` (its fastest way: three requests per run), for a
bounded time per process; every counted run is already in its store.
"""

from __future__ import annotations

from typing import Any

from bench.common import Ctx, Row, fan_out
from bench.compare import mlflow_best, mlflow_worker
from bench.servers import MlflowServer, RunlakeServer

NAME = "many_runs"
PROCS = 16

RUNLAKE = """
import runlake
c = runlake.RunlakeClient(A["uri"])
c.flush()
begin = ready()
for r in range(A["runs"]):
    rid = c.create_run("0", run_name=f"w{A['w']}-r{r}").info.run_id
    c.log_batch(rid, params={f"p{j}": f"v{j}-{r}" for j in range(5)},
                tags={f"t{j}": f"x{j}" for j in range(3)})
    for s in range(10):
        c.log_metric(rid, "loss", 1.0 / (s + 1), step=s)
    c.set_terminated(rid)
c.flush()
result(runs=A["runs"], begin=begin, end=time.time())
"""

MLFLOW = """
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
c = MlflowClient(A["uri"])
begin = ready()
deadline = begin + A["budget"]
r = errors = 0
while r < A["runs"] and time.time() < deadline:
    try:
        rid = c.create_run("0", run_name=f"w{A['w']}-r{r}").info.run_id
        now = int(time.time() * 1000)
        c.log_batch(rid, metrics=[Metric("loss", 1.0 / (s + 1), now, s) for s in range(10)],
                    params=[Param(f"p{j}", f"v{j}-{r}") for j in range(5)],
                    tags=[RunTag(f"t{j}", f"x{j}") for j in range(3)])
        c.set_terminated(rid)
        r += 1
    except Exception:
        errors += 1
result(runs=r, errors=errors, begin=begin, end=time.time())
"""


def rate(results: list[dict[str, Any]]) -> float:
    runs = sum(r["runs"] for r in results)
    wall = max(r["end"] for r in results) - results[0]["start"]
    return runs / wall if wall > 0 else 0.0


def run(ctx: Ctx) -> list[Row]:
    total = ctx.pick(400, 2_000)
    per = total // PROCS
    with RunlakeServer(ctx.dir("many")).start() as server:
        ctx.say(f"many_runs: runlake, {PROCS} processes x {per} runs")
        res = fan_out(
            RUNLAKE,
            [{"uri": server.uri, "runs": per, "w": w} for w in range(PROCS)],
            barrier=True,
            timeout_s=ctx.pick(300, 900),
        )
    wall = max(r["end"] for r in res) - res[0]["start"]
    row = Row(
        NAME,
        f"many runs ({PROCS * per:,} runs, {PROCS} processes)",
        rate(res),
        "runs/s",
        target="≥ 50x MLflow",
    )
    row.detail.append(f"runlake: {PROCS * per:,} runs durable in {wall:.2f} s")
    if ctx.mlflow:
        budget = ctx.pick(5.0, 30.0)

        def measure(s: MlflowServer) -> tuple[float, int]:
            args = [{"uri": s.uri, "runs": per, "w": w, "budget": budget} for w in range(PROCS)]
            out = mlflow_worker(MLFLOW, args, barrier=True, timeout_s=budget + 600)
            return rate(out), sum(r.get("errors", 0) for r in out)

        best, label, every = mlflow_best(
            ctx, "many", measure, lambda x: x[0], higher_is_better=True
        )
        if best is not None:
            row.mlflow = best[0]
            row.detail.append(
                f"MLflow best: {label} (create_run + log_batch + set_terminated); "
                + "; ".join(
                    f"{k}: {v:,.1f} runs/s" + (f" ({e} failed runs not counted)" if e else "")
                    for k, (v, e) in every.items()
                )
            )
            ratio = row.ratio()
            row.met = ratio is not None and ratio >= 50
    return [row]
