"""10. scoring: rows/s of a sklearn model over a table with ``runlake score``'s path, vs its peers.

One Parquet table (10M rows of 8 float32 features in 16 files; quick: 500k) and one
sklearn model (GradientBoostingRegressor, 100 trees of depth 3, trained on 20k rows),
saved with ``runlake.sklearn.save_model`` (an MLflow-format directory both tools load).
Measured in separate worker processes, one after the other, on the same files:

- **predict**: the model's own ``predict`` on all rows at once, in one process, the rows
  already in memory (only ``predict`` is timed): the per-core ceiling;
- **runlake**: what ``runlake score --model M --input T --output O`` runs, in the Spark
  session it builds (``local[2]``, Delta): ``runlake.spark.score_table`` from the Parquet
  table into a new Delta table, recorded as a run on an embedded runlake server. The whole
  call is timed: reading the input's schema, staging the model, the run, the Python
  workers started and the model loaded, reading, scoring, writing every output file, the
  Delta commit (the JVM warmed by one small read first, as ``runlake score`` has it warm by
  the time it scores). **Cold** is the session's first job (what one ``runlake score``
  process gets); **warm** a second job in the same session (Python workers and the model
  already loaded: a notebook or a job scoring several tables);
- **UDF path**: ``runlake.spark.score(df, model)`` written to Spark's ``noop`` sink: the
  DataFrame API, which goes through the pandas UDF;
- **MLflow**: ``mlflow.pyfunc.spark_udf(spark, model_dir)`` in MLflow 3.17.2's venv
  (pyspark installed beside it by ``bench/mlflow_env.py``), written to ``noop`` (MLflow has no
  table-to-table command; runlake's figure includes writing its output, MLflow's does not);
- **ceiling**: runlake's cold job with a model that does no work (``DummyRegressor``);
- **end to end**: ``runlake score`` itself, timed from its process's start to its exit, with
  the job's own duration as its run records it, and once more with the JVM's class-data
  archive off; beside it the same scoring without Spark in one process (read the table,
  load the model, predict, write Parquet).

Every process has OMP/BLAS threads at 1, and CPU seconds are read per process (JVM,
Python workers, driver). Targets: runlake ≥ 0.8x predict per core used (2 cores: ≥ 1.6x
predict's rows/s), judged on the cold job, and ≥ 1.5x MLflow.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import mlflow_env
from bench.common import Ctx, Row, run_worker, runlake_env
from bench.servers import RunlakeServer

NAME = "scoring"
CORES = 2
FEATURES = [f"f{i}" for i in range(8)]
_THREADS = {v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
#: what the MLflow venv needs beside mlflow for this benchmark and the sweeps one
MLFLOW_EXTRA = ("pyspark==4.2.0", "hyperopt==0.3.0", "scikit-learn==1.9.1")

PREPARE = """
import numpy as np, pyarrow as pa, pyarrow.parquet as pq
from pathlib import Path
from sklearn.dummy import DummyRegressor
from sklearn.ensemble import GradientBoostingRegressor
import runlake.sklearn
rng = np.random.default_rng(0)
names = A["features"]
w = rng.normal(size=len(names))
out = Path(A["data"]); out.mkdir()
per = A["rows"] // A["files"]
for i in range(A["files"]):
    X = rng.normal(size=(per, len(names))).astype(np.float32)
    table = pa.table({n: X[:, j] for j, n in enumerate(names)})
    pq.write_table(table, out / f"part-{i:03d}.parquet")
X = rng.normal(size=(20_000, len(names))).astype(np.float32)
y = X @ w + np.sin(3 * X[:, 0])
import pandas as pd
frame = pd.DataFrame(X, columns=names)
model = GradientBoostingRegressor(n_estimators=100, max_depth=3, random_state=0).fit(frame, y)
runlake.sklearn.save_model(model, A["model"], input_example=frame[:5])
runlake.sklearn.save_model(DummyRegressor().fit(frame, y), A["dummy"], input_example=frame[:5])
result(rows=per * A["files"])
"""

PREDICT = """
import pyarrow.parquet as pq
import runlake.pyfunc
model = runlake.pyfunc.load_model(A["model"]).get_raw_model()
frame = pq.read_table(A["data"]).to_pandas()
t = time.perf_counter()
pred = model.predict(frame)
secs = time.perf_counter() - t
result(secs=secs, rows=len(pred))
"""

SPARK_SESSION = """
import os, sys
os.environ["PYSPARK_PYTHON"] = sys.executable
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
from pyspark.sql import SparkSession
spark = (SparkSession.builder.master("local[2]").appName("bench-scoring")
         .config("spark.driver.memory", "2g").config("spark.ui.enabled", "false")
         .config("spark.ui.showConsoleProgress", "false").config("spark.driver.host", "127.0.0.1")
         .config("spark.driver.bindAddress", "127.0.0.1")
         .config("spark.sql.shuffle.partitions", "2")
         .getOrCreate())
spark.sparkContext.setLogLevel("ERROR")
df = spark.read.parquet(A["data"])
df.limit(1000).count()  # warm the JVM
"""

#: CPU seconds of this process's descendants (the JVM, the Python workers), read from /proc
#: so that it runs in both venvs (psutil is not in MLflow's)
CPU = """
def cpu():
    tick = os.sysconf("SC_CLK_TCK")
    parent, times, names = {}, {}, {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        parent[int(d)] = int(fields[1])
        times[int(d)] = (int(fields[11]) + int(fields[12])) / tick
        names[int(d)] = stat[stat.index("(") + 1 : stat.rindex(")")]
    out = {"jvm": 0.0, "python": 0.0}
    todo, me = [os.getpid()], os.getpid()
    while todo:
        pid = todo.pop()
        todo += [c for c, p in parent.items() if p == pid]
        if pid != me:
            out["jvm" if "java" in names[pid] else "python"] += times[pid]
    return out
"""

UDF = (
    SPARK_SESSION
    + CPU
    + """
import warnings
warnings.filterwarnings("ignore")
import runlake.spark
c0 = cpu()
t = time.perf_counter()
scored = runlake.spark.score(df, A["model"])
scored.write.format("noop").mode("overwrite").save()
secs = time.perf_counter() - t
c1 = cpu()
result(secs=secs, jvm_cpu=c1["jvm"] - c0["jvm"], python_cpu=c1["python"] - c0["python"])
"""
)

#: the session ``runlake score`` builds (runlake_services.cluster.spark_session, its defaults)
SCORE_SESSION = """
import os, sys, warnings
warnings.filterwarnings("ignore")
os.environ["PYSPARK_PYTHON"] = sys.executable
from runlake_services.cluster import spark_session
spark = spark_session("runlake-score", master="local[2]", driver_memory="1g")
spark.sparkContext.setLogLevel("ERROR")
spark.read.parquet(A["data"]).limit(1000).count()  # warm the JVM
"""

TABLE = (
    SCORE_SESSION
    + CPU
    + """
import runlake, runlake.spark
runlake.set_tracking_uri(A["uri"])
runlake.set_experiment("bench-scoring")
me = os.getpid()
out = {}
for name in A["jobs"]:
    c0, d0 = cpu(), os.times()
    t = time.perf_counter()
    job = runlake.spark.score_table(spark, A["model"], A["data"], A["out"] + "-" + name)
    secs = time.perf_counter() - t
    c1, d1 = cpu(), os.times()
    assert job.rows == A["rows"], job
    out[name] = dict(secs=secs, engine=job.engine, jvm_cpu=c1["jvm"] - c0["jvm"],
                     python_cpu=c1["python"] - c0["python"],
                     driver_cpu=(d1.user + d1.system) - (d0.user + d0.system))
result(**out)
"""
)

MLFLOW = (
    SPARK_SESSION
    + CPU
    + """
import warnings
warnings.filterwarnings("ignore")
import mlflow.pyfunc
c0 = cpu()
t = time.perf_counter()
udf = mlflow.pyfunc.spark_udf(spark, A["model"], result_type="double", env_manager="local")
scored = df.withColumn("prediction", udf(*A["features"]))
scored.write.format("noop").mode("overwrite").save()
secs = time.perf_counter() - t
c1 = cpu()
result(secs=secs, jvm_cpu=c1["jvm"] - c0["jvm"], python_cpu=c1["python"] - c0["python"])
"""
)


#: what one would run without Spark: read the table, load the model, predict, write it out
PLAIN = """
import sys
import pyarrow as pa, pyarrow.parquet as pq
import runlake.pyfunc
model = runlake.pyfunc.load_model(sys.argv[1])
table = pq.read_table(sys.argv[2])
pred = model.predict(table.to_pandas())
pq.write_table(table.append_column("prediction", pa.array(pred)), sys.argv[3])
"""


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    """(wall seconds from process start to exit, its stdout)."""
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800, check=False)
    secs = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed: {proc.stderr[-2000:]}")
    return secs, proc.stdout


def _env(base: dict[str, str]) -> dict[str, str]:
    return {**base, **_THREADS}


def _cpu(job: dict[str, Any]) -> float:
    return float(job["jvm_cpu"] + job["python_cpu"] + job.get("driver_cpu", 0.0))


def _cpu_text(job: dict[str, Any]) -> str:
    driver = f", driver {job['driver_cpu']:.1f} s" if "driver_cpu" in job else ""
    return f"CPU: JVM {job['jvm_cpu']:.1f} s, Python workers {job['python_cpu']:.1f} s{driver}"


def run(ctx: Ctx) -> list[Row]:
    rows_wanted = ctx.pick(500_000, 10_000_000)
    tmp = Path(ctx.dir("scoring"))
    args: dict[str, Any] = {
        "data": str(tmp / "table"),
        "model": str(tmp / "gbr"),
        "dummy": str(tmp / "dummy"),
        "features": FEATURES,
        "rows": rows_wanted,
        "files": 16,
    }
    ctx.say(f"scoring: writing {rows_wanted:,} rows of {len(FEATURES)} features, training")
    n = run_worker(PREPARE, args, env=_env(runlake_env()), timeout_s=1800)["rows"]
    args["rows"] = n
    ctx.say("scoring: the model's own predict, one process")
    single = run_worker(PREDICT, args, env=_env(runlake_env()), timeout_s=1800)
    single_rate = n / single["secs"]
    with RunlakeServer(ctx.dir("scoring-server")).start() as server:
        table = {**args, "uri": server.uri, "out": str(tmp / "scored")}
        ctx.say("scoring: runlake.spark.score_table (runlake score's path) on local[2], twice")
        jobs = run_worker(TABLE, {**table, "jobs": ["cold", "warm"]}, env=_env(runlake_env()),
                          timeout_s=3600)  # fmt: skip
        ctx.say("scoring: the same job with a model that does nothing (the pipeline's ceiling)")
        ceiling = run_worker(TABLE, {**table, "model": args["dummy"], "out": str(tmp / "dummy"),
                                     "jobs": ["cold"]}, env=_env(runlake_env()),
                             timeout_s=3600)["cold"]  # fmt: skip
        ctx.say("scoring: runlake score (the CLI), process start to exit; the same without Spark")
        cli = str(Path(sys.executable).with_name("runlake"))
        score = [cli, "--tracking-uri", server.uri, "score", "--model", args["model"],
                 "--input", args["data"], "--print", "json"]  # fmt: skip
        cli_s, out = _timed([*score, "--output", str(tmp / "cli")], _env(runlake_env()))
        cli_job = json.loads(out)[0]
        ctx.say("scoring: runlake score again, its JVM without the class-data archive")
        off = {**_env(runlake_env()), "RUNLAKE_SPARK_CLASS_DATA": "off"}
        cli_off_s, _ = _timed([*score, "--output", str(tmp / "cli-off")], off)
        plain_s, _ = _timed([sys.executable, "-c", PLAIN, args["model"], args["data"],
                             str(tmp / "plain.parquet")], _env(runlake_env()))  # fmt: skip
    cold, warm = jobs["cold"], jobs["warm"]
    ours_rate, warm_rate = n / cold["secs"], n / warm["secs"]
    ctx.say("scoring: runlake.spark.score (the DataFrame API: the pandas UDF) on local[2]")
    udf = run_worker(UDF, args, env=_env(runlake_env()), timeout_s=3600)
    udf_rate = n / udf["secs"]
    mlflow_rate = None
    theirs: dict[str, Any] = {}
    if ctx.mlflow:
        ctx.say("scoring: mlflow.pyfunc.spark_udf on local[2]")
        exe = mlflow_env.python(MLFLOW_EXTRA)
        theirs = run_worker(MLFLOW, args, exe=exe, env=_env(mlflow_env.env()), timeout_s=3600)
        mlflow_rate = n / theirs["secs"]
    per_core = ours_rate / CORES / single_rate
    vs_predict = Row(
        NAME, f"scoring rows/s per core vs the model's own predict ({n:,} rows)",
        ours_rate / CORES, "rows/s", target="≥ 0.8x predict per core", met=per_core >= 0.8,
    )  # fmt: skip
    vs_predict.detail += [
        f"the model's predict in one process: {single_rate:,.0f} rows/s "
        f"({single['secs']:.2f} s); runlake score_table on local[{CORES}] ({cold['engine']} "
        f"engine), cold: {ours_rate:,.0f} rows/s ({cold['secs']:.2f} s), {per_core:.2f}x "
        f"predict per core; {_cpu_text(cold)} (predict alone: "
        f"{single['secs'] / _cpu(cold):.2f}x of the job's CPU)",
        f"warm (a second job in the same session): {warm_rate:,.0f} rows/s "
        f"({warm['secs']:.2f} s), {warm_rate / CORES / single_rate:.2f}x predict per core; "
        f"{_cpu_text(warm)} (predict alone: {single['secs'] / _cpu(warm):.2f}x of the job's CPU)",
        f"pipeline ceiling (DummyRegressor through the same cold job): {n / ceiling['secs']:,.0f} "
        f"rows/s ({ceiling['secs']:.2f} s; {_cpu_text(ceiling)})",
        f"runlake.spark.score(df) (the pandas UDF) to noop: {udf_rate:,.0f} rows/s "
        f"({udf['secs']:.2f} s), {udf_rate / CORES / single_rate:.2f}x predict per core; "
        f"{_cpu_text(udf)}",
    ]
    job_s = float(cli_job["duration_s"])
    end_to_end = Row(
        NAME, f"runlake score, process start to exit ({n:,} rows)", cli_s, "s",
        higher_is_better=False,
    )  # fmt: skip
    end_to_end.detail += [
        f"the job as its run records it (duration_s: from the Spark job's start to the commit): "
        f"{job_s:.2f} s, {n / job_s:,.0f} rows/s, {n / job_s / CORES / single_rate:.2f}x predict "
        f"per core; the other {cli_s - job_s:.1f} s: the interpreter and the JVM's start (the "
        f"class-data archive mapped), reading the input's schema, staging the model, creating "
        f"the run, and the exit",
        f"with the JVM's class-data archive off (RUNLAKE_SPARK_CLASS_DATA=off): {cli_off_s:.2f} s",
        f"the same in one process without Spark (read the table, load the model, predict, "
        f"write Parquet): {plain_s:.2f} s; runlake score is {plain_s / cli_s:.2f}x as fast",
    ]
    vs_mlflow = Row(
        NAME, f"scoring rows/s vs mlflow.pyfunc.spark_udf ({n:,} rows)", ours_rate, "rows/s",
        mlflow=mlflow_rate, target="≥ 1.5x MLflow",
        met=None if mlflow_rate is None else ours_rate >= 1.5 * mlflow_rate,
    )  # fmt: skip
    if mlflow_rate is not None:
        vs_mlflow.detail.append(
            f"mlflow.pyfunc.spark_udf (env_manager=local, result_type=double) to noop: "
            f"{mlflow_rate:,.0f} rows/s ({theirs['secs']:.2f} s); {_cpu_text(theirs)}; "
            f"CPU-seconds per row, MLflow/runlake (cold score_table, output written) = "
            f"{_cpu(theirs) / _cpu(cold):.2f}x; the runlake UDF path is "
            f"{udf_rate / mlflow_rate:.2f}x MLflow"
        )
    return [vs_predict, end_to_end, vs_mlflow]


if __name__ == "__main__":  # a quick look without the suite: python -m bench.scoring
    import tempfile

    t0 = time.monotonic()
    for r in run(Ctx(quick=True, mlflow=True, tmp=Path(tempfile.mkdtemp()), flood_seconds=0)):
        print(r.name, r.runlake, r.mlflow, r.ratio(), r.met, *r.detail, sep="\n  ")
    print(f"took {time.monotonic() - t0:.0f} s")
