"""5. search: p50 latency of a filtered, ordered search over N bulk-loaded runs.

``metrics.m1 < 0.5 AND params.p1 = 'v1'`` ordered by ``metrics.m2 DESC``, top 100 (about
5% of the runs match), from a separate client process after a few warm-up calls, timed
around the SDK call (request, server, decoding into Run objects). runlake's store is
written as Delta tables before its server starts, so its ready time includes building
the in-memory index from them; MLflow's SQLite store gets the same rows by SQL inserts
(:mod:`bench.bulk`). Both answers must hold 100 runs and the same top run ids.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench import bulk
from bench.common import Ctx, Row, percentile, run_worker
from bench.compare import mlflow_best, mlflow_worker
from bench.servers import MlflowServer, RunlakeServer

NAME = "search"
FILTER = "metrics.m1 < 0.5 AND params.p1 = 'v1'"
ORDER = ["metrics.m2 DESC"]

_CHECK = """
def check(runs):
    assert len(runs) == 100, len(runs)
    m2 = [r.data.metrics["m2"] for r in runs]
    assert m2 == sorted(m2, reverse=True), "not ordered by m2 DESC"
    assert all(r.data.metrics["m1"] < 0.5 and r.data.params["p1"] == "v1" for r in runs)
    return [r.info.run_id for r in runs]
"""

RUNLAKE = (
    _CHECK
    + """
import runlake
c = runlake.RunlakeClient(A["uri"])
call = lambda: c.search_runs(["0"], A["filter"], order_by=A["order"], max_results=100)
for _ in range(A["warm"]):
    call()
times = []
for _ in range(A["reps"]):
    t = time.perf_counter()
    runs = call()
    times.append(time.perf_counter() - t)
result(times=times, ids=check(runs))
"""
)

MLFLOW = (
    _CHECK
    + """
from mlflow import MlflowClient
c = MlflowClient(A["uri"])
call = lambda: c.search_runs(["0"], A["filter"], order_by=A["order"], max_results=100)
for _ in range(A["warm"]):
    call()
times = []
deadline = time.time() + A["budget"]
for _ in range(A["reps"]):
    t = time.perf_counter()
    runs = call()
    times.append(time.perf_counter() - t)
    if time.time() > deadline:
        break
result(times=times, ids=check(runs))
"""
)


def run(ctx: Ctx) -> list[Row]:
    sizes = ctx.pick((10_000, 100_000), (10_000, 100_000, 1_000_000))
    reps = ctx.pick(10, 30)
    rows = []
    for n in sizes:
        ctx.say(f"search: generating {n:,} runs")
        data = bulk.make(n)
        d = ctx.dir(f"search{n}")
        ctx.say(f"search: writing {n:,} runs as Delta tables")
        bulk.load_runlake(d, data)
        ctx.say(f"search: starting runlake over {n:,} runs (index build)")
        with RunlakeServer(d).start() as server:
            rss = server.rss_mb()
            ctx.say(f"search: runlake over {n:,} runs")
            args = {"uri": server.uri, "filter": FILTER, "order": ORDER, "warm": 3, "reps": reps}
            res = run_worker(RUNLAKE, args, timeout_s=600)
        p50 = percentile(res["times"], 50) * 1000
        row = Row(NAME, f"search p50, {n:,} runs", p50, "ms", higher_is_better=False)
        row.detail.append(
            f"runlake: p50 {p50:.1f} ms, p99 {percentile(res['times'], 99) * 1000:.1f} ms over "
            f"{len(res['times'])} searches; server ready in {server.ready_s:.1f} s with the "
            f"index built from the Delta tables, RSS after start {rss:.0f} MiB"
        )
        if n == 10_000:
            row.target = "≥ 20x MLflow"
            if ctx.mlflow:
                _mlflow(ctx, row, data, reps, res["ids"])
                ratio = row.ratio()
                row.met = None if ratio is None else ratio >= 20
        if n == 1_000_000:
            row.target, row.met = "≤ 100 ms", p50 <= 100
        rows.append(row)
    return rows


def _mlflow(ctx: Ctx, row: Row, data: bulk.Data, reps: int, ids: list[str]) -> None:
    def prepare(root: Path) -> None:
        ctx.say("search: creating MLflow's schema (one server start)")
        with MlflowServer(root, 1).start() as s:
            db = s.db
        ctx.say(f"search: inserting {data.n:,} runs into MLflow's SQLite store")
        bulk.load_mlflow(db, data)

    def measure(s: MlflowServer) -> dict[str, Any]:
        args = {
            "uri": s.uri,
            "filter": FILTER,
            "order": ORDER,
            "warm": 2,
            "reps": reps,
            "budget": ctx.pick(30.0, 120.0),
        }
        return mlflow_worker(MLFLOW, [args], timeout_s=900)[0]

    def p50(r: dict[str, Any]) -> float:
        return percentile(r["times"], 50)

    best, label, every = mlflow_best(
        ctx, "search", measure, p50, higher_is_better=False, prepare=prepare, shared_root=True
    )
    if best is None:
        row.detail.append("MLflow: failed (see log above)")
        return
    row.mlflow = p50(best) * 1000
    row.detail.append(f"MLflow best: {label}")
    for lab, r in every.items():
        row.detail.append(
            f"MLflow {lab}: p50 {p50(r) * 1000:,.1f} ms over {len(r['times'])} searches"
        )
    if best["ids"] != ids:
        row.detail.append("WARNING: runlake and MLflow returned different top-100 run ids")
    else:
        row.detail.append("runlake and MLflow returned the same 100 run ids in the same order")
