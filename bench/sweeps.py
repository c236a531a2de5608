"""9. sweeps: overhead per trial of runlake.sweep vs Hyperopt's SparkTrials; pruning latency.

Overhead: the same sweep — 200 trivial trials (``x ** 2``, no work), TPE over one uniform
parameter, parallelism 2 on a local[2] Spark — timed from the call to its return (trials
all done), divided by the number of trials. runlake's sweep records everything (a parent
run, a child run per trial with its params, metric and state, the results table and
plot); Hyperopt 0.3.0's ``fmin(..., trials=SparkTrials(parallelism=2))`` (in the MLflow
venv, installed by ``bench/mlflow_env.py``) records nothing outside the driver. Each runs
in its own worker process with its own JVM, warmed by one small Spark job first.

Pruning latency (decision 0014): what the driver's early stopping waits for. A writer
process logs a point and flushes (acknowledged); a reader process that never writes polls
``get_metric_history`` until it sees the point, as the sweep driver does for each running
trial. p50/p99 of acknowledged → seen; the driver adds at most its poll interval (0.25 s).
"""

from __future__ import annotations

from bench.common import Ctx, Row, fan_out, percentile, run_worker, runlake_env
from bench.scoring import MLFLOW_EXTRA, _env
from bench.servers import RunlakeServer

NAME = "sweeps"

_SESSION = """
import os, sys
os.environ["PYSPARK_PYTHON"] = sys.executable
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
from pyspark.sql import SparkSession
spark = (SparkSession.builder.master("local[2]").appName("bench-sweeps")
         .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
         .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
         .getOrCreate())
spark.sparkContext.setLogLevel("ERROR")
spark.sparkContext.parallelize(range(4), 2).map(lambda x: x).collect()  # JVM and workers up
"""

RUNLAKE = (
    _SESSION
    + """
import runlake
from runlake.sweeps import uniform
runlake.set_tracking_uri(A["uri"])
def objective(params):
    return params["x"] ** 2
t = time.perf_counter()
res = runlake.sweep(objective, {"x": uniform(-10, 10)}, metric="loss", mode="min", algo="tpe",
                    max_trials=A["trials"], parallelism=2, spark=spark, seed=0, progress=False)
secs = time.perf_counter() - t
result(secs=secs, complete=res.n_complete, best=res.best_value)
"""
)

HYPEROPT = (
    _SESSION
    + """
import numpy as np
from hyperopt import SparkTrials, fmin, hp, tpe
def objective(x):
    return x ** 2
t = time.perf_counter()
best = fmin(objective, hp.uniform("x", -10, 10), algo=tpe.suggest, max_evals=A["trials"],
            trials=SparkTrials(parallelism=2, spark_session=spark),
            rstate=np.random.default_rng(0), show_progressbar=False)
secs = time.perf_counter() - t
result(secs=secs, best=best["x"] ** 2)
"""
)

LATENCY = """
import runlake
c = runlake.RunlakeClient(A["uri"])
if A["role"] == "writer":
    run = c.create_run("0", run_name="latency")
    c.flush()
    ready()
    acks = []
    for step in range(A["points"]):
        c.log_metric(run.info.run_id, "loss", 1.0 / (step + 1), step=step)
        c.flush()
        acks.append(time.time())
        time.sleep(0.05)
    result(acks=acks)
    sys.exit(0)
ready()
seen = {}
deadline = time.time() + 120
run_id = None
while len(seen) < A["points"] and time.time() < deadline:
    if run_id is None:
        found = c.search_runs(["0"], "attributes.run_name = 'latency'")
        run_id = found[0].info.run_id if found else None
        continue
    for m in c.get_metric_history(run_id, "loss"):
        seen.setdefault(m.step, time.time())
    time.sleep(0.005)
result(seen={str(k): v for k, v in seen.items()})
"""


def run(ctx: Ctx) -> list[Row]:
    from runlake.sweeps.executor import default_spark  # noqa: F401 - fail early without pyspark

    trials = ctx.pick(40, 200)
    rows: list[Row] = []
    with RunlakeServer(ctx.dir("sweeps")).start() as server:
        ctx.say(f"sweeps: runlake.sweep, {trials} trivial trials, parallelism 2")
        ours = run_worker(RUNLAKE, {"uri": server.uri, "trials": trials},
                          env=_env(runlake_env()), timeout_s=3600)  # fmt: skip
        theirs = None
        if ctx.mlflow:
            from bench import mlflow_env

            ctx.say(f"sweeps: hyperopt SparkTrials, {trials} trivial trials, parallelism 2")
            theirs = run_worker(HYPEROPT, {"trials": trials}, exe=mlflow_env.python(MLFLOW_EXTRA),
                                env=_env(mlflow_env.env()), timeout_s=3600)  # fmt: skip
        ours_ms = ours["secs"] / trials * 1000
        theirs_ms = None if theirs is None else theirs["secs"] / trials * 1000
        row = Row(
            NAME, f"sweep overhead per trial ({trials} trivial trials, parallelism 2)", ours_ms,
            "ms", mlflow=theirs_ms, higher_is_better=False,
            target="lower than Hyperopt SparkTrials",
            met=None if theirs_ms is None else ours_ms < theirs_ms,
        )  # fmt: skip
        row.detail.append(
            f"runlake: {ours['secs']:.1f} s for {trials} trials ({ours['complete']} complete, "
            f"best {ours['best']:.3g}), each a run with params, metric and state"
        )
        if theirs is not None:
            row.detail.append(
                f"the MLflow best column is Hyperopt 0.3.0 SparkTrials (no tracking): "
                f"{theirs['secs']:.1f} s, best {theirs['best']:.3g}"
            )
        rows.append(row)

        points = ctx.pick(20, 60)
        ctx.say(f"sweeps: intermediate value → driver latency, {points} points")
        args = {"uri": server.uri, "points": points}
        writer, reader = fan_out(LATENCY, [{**args, "role": "writer"}, {**args, "role": "reader"}],
                                 barrier=True, timeout_s=600)  # fmt: skip
        acks, seen = writer["acks"], reader["seen"]
        lags = [(seen[str(i)] - acks[i]) * 1000 for i in range(points) if str(i) in seen]
        lat = Row(
            NAME, "intermediate value → sweep driver, p99 (acknowledged → in metric history)",
            percentile(lags, 99), "ms", higher_is_better=False,
        )  # fmt: skip
        lat.detail.append(
            f"p50 {percentile(lags, 50):.0f} ms over {len(lags)} of {points} points; the driver "
            "polls every 0.25 s on top"
        )
        rows.append(lat)
    return rows
