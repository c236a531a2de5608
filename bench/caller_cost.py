"""2. log_metric caller cost: how long one call holds the training loop's thread.

``time.perf_counter_ns()`` around each of ~200,000 ``runlake.log_metric`` calls in an
active run (after 2,000 warm-up calls), the background sender running as it normally
does; median and p99 of those. The timer's own cost (an empty pair of clock reads) is
reported beside it and not subtracted. MLflow's ``mlflow.log_metric`` is synchronous
(one HTTP request per call), so it is timed the same way over fewer calls.
"""

from __future__ import annotations

from bench.common import Ctx, Row, run_worker
from bench.compare import mlflow_best, mlflow_worker
from bench.servers import MlflowServer, RunlakeServer

NAME = "caller_cost"

_TIMING = """
def timed(log, n, deadline=None):
    clock = time.perf_counter_ns
    times = []
    add = times.append
    for i in range(n):
        t = clock()
        log("loss", i * 0.001, step=i)
        add(clock() - t)
        if deadline is not None and (i & 15) == 0 and time.time() > deadline:
            break
    empty = []
    for _ in range(10000):
        t = clock()
        empty.append(clock() - t)
    times.sort()
    empty.sort()
    q = lambda s, p: s[min(len(s) - 1, int(len(s) * p))] / 1000.0
    return dict(calls=len(times), median_us=q(times, 0.5), p99_us=q(times, 0.99),
                p999_us=q(times, 0.999), mean_us=sum(times) / len(times) / 1000.0,
                timer_us=q(empty, 0.5))
"""

RUNLAKE = (
    _TIMING
    + """
import runlake
runlake.set_tracking_uri(A["uri"])
runlake.start_run(run_name="caller-cost")
for i in range(2000):
    runlake.log_metric("warmup", 0.5, step=i)
runlake.flush()
out = timed(runlake.log_metric, A["n"])
t = time.perf_counter()
runlake.flush()
out["flush_s"] = time.perf_counter() - t
runlake.end_run()
result(**out)
"""
)

MLFLOW = (
    _TIMING
    + """
import mlflow
mlflow.set_tracking_uri(A["uri"])
mlflow.start_run(run_name="caller-cost")
for i in range(20):
    mlflow.log_metric("warmup", 0.5, step=i)
out = timed(mlflow.log_metric, A["n"], time.time() + A["budget"])
mlflow.end_run()
result(**out)
"""
)


def run(ctx: Ctx) -> list[Row]:
    n = ctx.pick(50_000, 200_000)
    with RunlakeServer(ctx.dir("caller")).start() as server:
        ctx.say(f"caller_cost: runlake, {n:,} calls")
        r = run_worker(RUNLAKE, {"uri": server.uri, "n": n}, timeout_s=ctx.pick(300, 900))
    med = Row(
        NAME,
        "log_metric caller cost, median",
        r["median_us"],
        "µs",
        higher_is_better=False,
        target="≤ 5 µs",
        met=r["median_us"] <= 5,
    )
    p99 = Row(NAME, "log_metric caller cost, p99", r["p99_us"], "µs", higher_is_better=False)
    med.detail.append(
        f"runlake: {r['calls']:,} calls, mean {r['mean_us']:.2f} µs, p99.9 {r['p999_us']:.1f} µs,"
        f" timer overhead {r['timer_us']:.2f} µs (not subtracted); the flush after took "
        f"{r['flush_s']:.2f} s"
    )
    if ctx.mlflow:

        def measure(s: MlflowServer) -> dict[str, float]:
            args = {"uri": s.uri, "n": ctx.pick(500, 5000), "budget": ctx.pick(5.0, 30.0)}
            return mlflow_worker(MLFLOW, [args], timeout_s=600)[0]

        best, label, every = mlflow_best(
            ctx, "caller", measure, lambda x: x["median_us"], higher_is_better=False
        )
        if best is not None:
            med.mlflow, p99.mlflow = best["median_us"], best["p99_us"]
            med.detail.append(f"MLflow best: {label} (synchronous mlflow.log_metric)")
            for lab, x in every.items():
                med.detail.append(
                    f"MLflow {lab}: {x['calls']:,} calls, median {x['median_us']:,.0f} µs, "
                    f"p99 {x['p99_us']:,.0f} µs"
                )
    return [med, p99]
