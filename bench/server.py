"""7. server: ready time, and resident memory while 16 processes flood it with metrics.

Ready time: process start → the ``ready grpc=...`` line, on an empty data directory
(median of three starts). Memory: the RSS of the server process (and any children),
sampled every second while 16 processes call ``log_metric`` as fast as they can for
``--flood-seconds`` (default 600 s; quick 20 s) and flush at the end. "Flat" here: the
least-squares slope over the second half of the flood, times that half's length, is
under 25 MiB. MLflow's server RSS is sampled the same way while 16 processes send it
``log_batch`` calls of 1,000 points (at most 120 s per configuration).
"""

from __future__ import annotations

import statistics
from typing import Any

import psutil

from bench.common import Ctx, Row, fan_out
from bench.compare import mlflow_best, mlflow_worker
from bench.servers import MlflowServer, RssSampler, RunlakeServer

NAME = "server"
PROCS = 16
_MLFLOW_MAX_S = 120.0
_FLAT_MIB = 25.0

RUNLAKE = """
import runlake
runlake.set_tracking_uri(A["uri"])
runlake.start_run(run_name=f"flood-{A['w']}")
runlake.flush()
log = runlake.log_metric
begin = ready()
deadline = begin + A["seconds"]
i = 0
while True:
    for _ in range(1000):
        log("loss", i * 0.001, step=i)
        i += 1
    if time.time() > deadline:
        break
runlake.flush()
result(points=i, begin=begin, end=time.time())
runlake.end_run()
"""

MLFLOW = """
from mlflow import MlflowClient
from mlflow.entities import Metric
c = MlflowClient(A["uri"])
rid = c.create_run("0", run_name=f"flood-{A['w']}").info.run_id
begin = ready()
deadline = begin + A["seconds"]
i = errors = 0
while time.time() < deadline:
    now = int(time.time() * 1000)
    try:
        c.log_batch(rid, metrics=[Metric("loss", j * 0.001, now, j) for j in range(i, i + 1000)])
        i += 1000
    except Exception:
        errors += 1
result(points=i, errors=errors, begin=begin, end=time.time())
"""


def _rate(res: list[dict[str, Any]]) -> float:
    wall = max(r["end"] for r in res) - res[0]["start"]
    return sum(r["points"] for r in res) / wall if wall > 0 else 0.0


def run(ctx: Ctx) -> list[Row]:
    readies = []
    for i in range(3):
        ctx.say(f"server: runlake start {i + 1}/3 on an empty data directory")
        with RunlakeServer(ctx.dir("ready")).start() as s:
            readies.append(s.ready_s)
            idle_rss = s.rss_mb()
    ready = statistics.median(readies)
    ready_row = Row(
        NAME,
        "server ready time (empty data dir)",
        ready,
        "s",
        higher_is_better=False,
        target="≤ 3 s",
        met=ready <= 3,
    )
    ready_row.detail.append(
        "runlake: starts took " + ", ".join(f"{r:.2f}" for r in readies) + " s"
        f"; RSS when ready {idle_rss:.0f} MiB"
    )

    seconds = ctx.flood_seconds
    ctx.say(f"server: runlake RSS while {PROCS} processes flood it for {seconds:.0f} s")
    with RunlakeServer(ctx.dir("flood")).start() as s, RssSampler(s.pid, 1.0) as rss:
        res = fan_out(
            RUNLAKE,
            [{"uri": s.uri, "seconds": seconds, "w": w} for w in range(PROCS)],
            barrier=True,
            timeout_s=seconds + 900,
        )
    values = rss.values
    half = rss.samples[len(rss.samples) // 2 :]
    slope = rss.slope_mb_per_min(0.5)
    growth = slope * (half[-1][0] - half[0][0]) / 60 if len(half) > 1 else 0.0
    rss_row = Row(
        NAME,
        f"server RSS max under a {seconds:.0f} s flood",
        max(values),
        "MiB",
        higher_is_better=False,
        target="flat and ≤ 500 MB",
        met=max(values) * 2**20 <= 500e6 and growth <= _FLAT_MIB,
    )
    rss_row.detail.append(
        f"runlake: RSS start {values[0]:.0f}, max {max(values):.0f}, end {values[-1]:.0f} MiB; "
        f"slope over the second half {slope:+.2f} MiB/min ({growth:+.1f} MiB over it); "
        f"{len(values)} samples; sustained {_rate(res):,.0f} points/s durable"
    )
    rows = [ready_row, rss_row]
    if ctx.mlflow:
        mseconds = min(seconds, _MLFLOW_MAX_S)

        def measure(m: MlflowServer) -> dict[str, float]:
            ctx.say(f"server: MLflow {m.label} RSS under {PROCS} x log_batch for {mseconds:.0f} s")
            with RssSampler(m.pid, 1.0, pss=True) as r:
                out = mlflow_worker(
                    MLFLOW,
                    [{"uri": m.uri, "seconds": mseconds, "w": w} for w in range(PROCS)],
                    barrier=True,
                    timeout_s=mseconds + 600,
                )
            return {
                "start": r.values[0],
                "max": max(r.values),
                "end": r.values[-1],
                "rate": _rate(out),
                "ready": m.ready_s,
                "pss": max(r.pss_samples, default=0.0),
                "procs": 1 + len(psutil.Process(m.pid).children(recursive=True)),
            }

        best, label, every = mlflow_best(
            ctx, "flood", measure, lambda x: x["max"], higher_is_better=False
        )
        if best is not None:
            rss_row.mlflow = best["max"]
            ready_row.mlflow = min(x["ready"] for x in every.values())
            ready_row.detail.append(
                "MLflow: its server's start on a new SQLite store (the faster configuration)"
            )
            rss_row.detail.append(f"MLflow best (lowest max RSS): {label}")
            for lab, x in every.items():
                rss_row.detail.append(
                    f"MLflow {lab}: ready in {x['ready']:.1f} s; RSS start {x['start']:.0f}, "
                    f"max {x['max']:.0f}, end {x['end']:.0f} MiB under {x['rate']:,.0f} "
                    f"points/s for {mseconds:.0f} s ({x['procs']:.0f} processes; RSS summed, "
                    f"PSS max {x['pss']:.0f} MiB)"
                )
    return rows
