"""``score_table``'s Arrow engine on a real local Spark, real Delta tables and a real server.

The tasks read and write the files with pyarrow and the driver commits with delta-rs, so
every test reads the result back with Spark (and delta-rs where the log matters) and
compares it with the model's own predictions, or with Spark's own engine's output.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cloudpickle
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import runlake
import runlake.pyfunc
import runlake.sklearn
import runlake.spark
from deltalake import DeltaTable
from pyarrow import fs as pafs
from runlake.errors import InvalidArgument
from runlake.spark.locations import locate

from tests.integration.spark.scoring_models import CountsLoads, FailsToLoad, Verdict

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _data(n: int = 600) -> pd.DataFrame:
    """Features a, b and columns of other kinds that must come through unchanged."""
    rng = np.random.default_rng(1)
    start = pd.Timestamp("2024-03-01T00:00:00")
    return pd.DataFrame({
        "id": np.arange(n, dtype=np.int64),
        "a": rng.normal(size=n),
        "b": rng.normal(size=n),
        "kind": rng.choice(["x", "y", "z"], size=n),
        "at": start + pd.to_timedelta(rng.integers(0, 10**9, size=n), unit="us"),
        "n": rng.integers(-5, 5, size=n).astype(np.int32),
    })  # fmt: skip


def _spark_df(spark: SparkSession, data: pd.DataFrame, files: int = 4) -> DataFrame:
    from pyspark.sql import functions as F

    df = spark.createDataFrame(data).withColumn("day", F.to_date("at"))
    return df.repartition(files)


def _write(df: DataFrame, fmt: str, path: str) -> None:
    (df.write.format("delta").save(path) if fmt == "delta" else df.write.parquet(path))


def _read(spark: SparkSession, fmt: str, path: str) -> DataFrame:
    return spark.read.format("delta").load(path) if fmt == "delta" else spark.read.parquet(path)


@pytest.fixture
def linear(tracking: str) -> tuple[str, Any]:
    """A logged sklearn model of a and b (signature: two doubles); its URI and the model."""
    from sklearn.linear_model import LinearRegression

    X = _data(50)[["a", "b"]]
    model = LinearRegression().fit(X, 2 * X["a"] - X["b"] + 0.5)
    runlake.set_experiment(f"arrow-scoring-{uuid.uuid4().hex[:8]}")
    with runlake.start_run():
        info = runlake.sklearn.log_model(model, "model", input_example=X[:3])
    return info.model_uri, model


BOTH_WAYS = [("delta", "delta"), ("delta", "parquet"), ("parquet", "delta"), ("parquet", "parquet")]


@pytest.mark.parametrize(("in_fmt", "out_fmt"), BOTH_WAYS)
def test_both_formats_both_ways_score_what_the_model_predicts(
    local_spark: SparkSession, linear: tuple[str, Any], tmp_path: Path, in_fmt: str, out_fmt: str
) -> None:
    uri, model = linear
    src, dst = str(tmp_path / "in"), str(tmp_path / "out")
    data = _data()
    _write(_spark_df(local_spark, data), in_fmt, src)

    job = runlake.spark.score_table(local_spark, uri, src, dst, output_format=out_fmt)  # type: ignore[arg-type]

    assert job.engine == "arrow" and job.rows == len(data)
    out = _read(local_spark, out_fmt, dst)
    source = _read(local_spark, in_fmt, src)
    assert out.columns == [*source.columns, "prediction"]
    assert [f.dataType for f in out.schema.fields][:-1] == [f.dataType for f in source.schema]
    got = out.toPandas().sort_values("id").reset_index(drop=True)
    want = source.toPandas().sort_values("id").reset_index(drop=True)
    pd.testing.assert_frame_equal(got.drop(columns="prediction"), want)
    np.testing.assert_allclose(got["prediction"], model.predict(want[["a", "b"]]), rtol=1e-12)
    if out_fmt == "delta":
        (commit,) = DeltaTable(dst).history()
        assert json.loads(commit["userMetadata"])["runlake_run_id"] == job.run_id
    else:
        names = sorted(os.listdir(dst))
        assert "_SUCCESS" in names and "_temporary" not in names
        assert all(n.endswith(".parquet") for n in names if n != "_SUCCESS")


def test_the_arrow_engine_writes_what_the_spark_engine_writes(
    local_spark: SparkSession, linear: tuple[str, Any], tmp_path: Path
) -> None:
    uri, _ = linear
    src = str(tmp_path / "in")
    _write(_spark_df(local_spark, _data(300), files=3), "delta", src)
    fast = runlake.spark.score_table(local_spark, uri, src, str(tmp_path / "a"), engine="arrow")
    slow = runlake.spark.score_table(local_spark, uri, src, str(tmp_path / "s"), engine="spark")
    assert (fast.engine, slow.engine) == ("arrow", "spark")
    a = local_spark.read.format("delta").load(str(tmp_path / "a"))
    s = local_spark.read.format("delta").load(str(tmp_path / "s"))
    assert a.schema.simpleString() == s.schema.simpleString()
    pd.testing.assert_frame_equal(
        a.toPandas().sort_values("id").reset_index(drop=True),
        s.toPandas().sort_values("id").reset_index(drop=True),
    )
    assert runlake.get_run(slow.run_id).data.tags["runlake.score.engine"] == "spark"


def test_a_multi_output_model_writes_a_struct_column(
    local_spark: SparkSession, tracking: str, tmp_path: Path
) -> None:
    data = _data(200)
    with runlake.start_run():
        info = runlake.pyfunc.log_model(Verdict(), "verdict", input_example=data[["a"]][:3])
    src, dst = str(tmp_path / "in"), str(tmp_path / "out")
    _write(_spark_df(local_spark, data), "parquet", src)
    job = runlake.spark.score_table(local_spark, info.model_uri, src, dst)
    assert job.engine == "arrow"
    out = local_spark.read.format("delta").load(dst)
    fields = {f.name: f.dataType.simpleString() for f in out.schema["prediction"].dataType}
    assert fields == {"label": "string", "score": "double"}
    rows = out.select("id", "prediction.label", "prediction.score").toPandas().sort_values("id")
    assert rows["score"].tolist() == pytest.approx((data["a"] * 2).tolist())
    assert rows["label"].tolist() == np.where(data["a"] > 0, "pos", "neg").tolist()


class FailsOnBigA(runlake.pyfunc.PythonModel):
    """Scores a + 1, and raises on a batch that holds an ``a`` above 100."""

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
        if (model_input["a"] > 100).any():
            raise ValueError("a is out of range")
        return np.asarray(model_input["a"], dtype=float) + 1.0


@pytest.mark.parametrize("out_fmt", ["delta", "parquet"])
def test_a_failed_job_leaves_no_output_and_a_failed_run(
    local_spark: SparkSession, tracking: str, tmp_path: Path, out_fmt: str
) -> None:
    data = _data(400)
    runlake.set_experiment(f"failing-{uuid.uuid4().hex[:8]}")
    with runlake.start_run():
        info = runlake.pyfunc.log_model(FailsOnBigA(), "m", input_example=data[["a"]][:3])
    good, bad = str(tmp_path / "good"), str(tmp_path / "bad")
    _write(_spark_df(local_spark, data), "delta", good)
    poisoned = data.copy()
    poisoned.loc[350, "a"] = 1e6  # one row of one file
    _write(_spark_df(local_spark, poisoned, files=8), "delta", bad)

    new = str(tmp_path / "new")
    with pytest.raises(Exception, match="a is out of range"):
        runlake.spark.score_table(local_spark, info.model_uri, bad, new, output_format=out_fmt)  # type: ignore[arg-type]
    assert not os.path.exists(new)  # not even an empty directory

    existing = str(tmp_path / "existing")
    first = runlake.spark.score_table(local_spark, info.model_uri, good, existing,
                                      output_format=out_fmt)  # type: ignore[arg-type]  # fmt: skip
    before = sorted(os.listdir(existing))
    for mode in ("append", "overwrite"):
        with pytest.raises(Exception, match="a is out of range"):
            runlake.spark.score_table(local_spark, info.model_uri, bad, existing,
                                      output_format=out_fmt, mode=mode)  # type: ignore[arg-type]  # fmt: skip
        assert sorted(os.listdir(existing)) == before  # no stray file, nothing staged
        out = _read(local_spark, out_fmt, existing).toPandas().sort_values("id")
        np.testing.assert_allclose(out["prediction"], data["a"] + 1.0)
    if out_fmt == "delta":
        assert DeltaTable(existing).version() == first.output_version == 0
    failed = runlake.search_runs(filter_string="attributes.status = 'FAILED'",
                                 output_format="list")  # fmt: skip
    assert len(failed) == 3
    assert all("a is out of range" in r.data.tags["runlake.score.error"] for r in failed)


def test_append_and_overwrite_commit_once_each_with_lineage(
    local_spark: SparkSession, linear: tuple[str, Any], tmp_path: Path
) -> None:
    uri, model = linear
    src, dst = str(tmp_path / "in"), str(tmp_path / "out")
    data = _data(100)
    _write(_spark_df(local_spark, data, files=2), "delta", src)
    jobs = [runlake.spark.score_table(local_spark, uri, src, dst, mode=m)
            for m in ("error", "append", "overwrite")]  # fmt: skip
    assert [j.output_version for j in jobs] == [0, 1, 2]
    history = {h["version"]: h for h in DeltaTable(dst).history()}
    for job in jobs:
        meta = json.loads(history[job.output_version]["userMetadata"])
        assert meta == {"runlake_run_id": job.run_id, "model_uri": uri}
    assert local_spark.read.format("delta").option("versionAsOf", 1).load(dst).count() == 200
    out = local_spark.read.format("delta").load(dst).toPandas().sort_values("id")
    assert len(out) == 100
    np.testing.assert_allclose(out["prediction"], model.predict(data[["a", "b"]]), rtol=1e-12)

    other = str(tmp_path / "other")
    local_spark.range(3).write.format("delta").save(other)
    with pytest.raises(InvalidArgument, match=r"^output: the table at .* has other columns"):
        runlake.spark.score_table(local_spark, uri, src, other, mode="append")
    assert DeltaTable(other).version() == 0


def test_delta_statistics_are_right_for_data_skipping(
    local_spark: SparkSession, tracking: str, tmp_path: Path
) -> None:
    from pyspark.sql import functions as F

    with runlake.start_run():
        info = runlake.pyfunc.log_model(FailsOnBigA(), "m",
                                        input_example=pd.DataFrame({"a": [1.0]}))  # fmt: skip
    src, dst = str(tmp_path / "in"), str(tmp_path / "out")
    df = local_spark.range(0, 1000, numPartitions=4).select(
        F.when(F.col("id") == 7, F.lit(float("nan"))).otherwise(F.col("id") / 10).alias("a"),
        F.col("id"),
    )
    df.write.parquet(src)
    runlake.spark.score_table(local_spark, info.model_uri, src, dst)
    adds = pa.table(DeltaTable(dst).get_add_actions(flatten=True)).to_pydict()
    assert sum(adds["num_records"]) == 1000
    assert sorted(v for v in adds["max.id"] if v is not None) == [249, 499, 749, 999]
    # the same counts with file statistics and row-group pruning as without them
    queries = ["a > 90", "a < 1", "prediction > 50", "id >= 990", "prediction is null"]
    pruned = [local_spark.read.format("delta").load(dst).where(q).count() for q in queries]
    off = {"spark.databricks.delta.stats.skipping": "false",
           "spark.sql.parquet.filterPushdown": "false"}  # fmt: skip
    for key, value in off.items():
        local_spark.conf.set(key, value)
    try:
        full = [local_spark.read.format("delta").load(dst).where(q).count() for q in queries]
    finally:
        for key in off:
            local_spark.conf.unset(key)
    assert pruned == full
    assert full[0] == 1 + 99  # Spark orders NaN above every number: the NaN row, 90.1 … 99.9


def test_tables_the_arrow_engine_cannot_read_go_to_spark(
    local_spark: SparkSession, linear: tuple[str, Any], tmp_path: Path
) -> None:
    uri, model = linear
    src = str(tmp_path / "in")
    data = _data(120)
    _spark_df(local_spark, data).write.format("delta").partitionBy("kind").save(src)
    refused = r"^engine: the Arrow engine cannot run this job: the input is partitioned by"
    with pytest.raises(InvalidArgument, match=refused + r" \['kind'\]"):
        runlake.spark.score_table(local_spark, uri, src, str(tmp_path / "x"), engine="arrow")
    assert not os.path.exists(tmp_path / "x")
    job = runlake.spark.score_table(local_spark, uri, src, str(tmp_path / "out"))
    assert job.engine == "spark" and job.rows == 120
    tags = runlake.get_run(job.run_id).data.tags
    assert tags["runlake.score.engine"] == "spark"
    assert "partitioned" in tags["runlake.score.engine_reason"]
    out = local_spark.read.format("delta").load(str(tmp_path / "out")).toPandas().sort_values("id")
    np.testing.assert_allclose(out["prediction"], model.predict(data[["a", "b"]]), rtol=1e-12)


def test_the_model_is_loaded_once_per_python_worker(
    local_spark: SparkSession, tracking: str, tmp_path: Path
) -> None:
    log = tmp_path / "loads.txt"
    with runlake.start_run():
        info = runlake.pyfunc.log_model(CountsLoads(str(log), scale=3.0), "m",
                                        input_example=pd.DataFrame({"a": [1.0]}))  # fmt: skip
    log.write_text("")
    src = str(tmp_path / "in")
    local_spark.range(0, 4000, numPartitions=16).selectExpr("cast(id as double) as a") \
        .write.parquet(src)  # fmt: skip
    job = runlake.spark.score_table(local_spark, info.model_uri, src, str(tmp_path / "out"),
                                    output_format="parquet")  # fmt: skip
    assert job.engine == "arrow" and job.rows == 4000
    total = local_spark.read.parquet(str(tmp_path / "out")).agg({"prediction": "sum"}).first()
    assert total is not None and total[0] == 3 * sum(range(4000))
    pids = log.read_text().split()
    assert pids and len(pids) == len(set(pids)), f"a worker loaded the model twice: {pids}"


def test_a_model_that_cannot_load_fails_the_job_and_leaves_nothing_running(
    local_spark: SparkSession, tracking: str, tmp_path: Path
) -> None:
    runlake.set_experiment(f"cannot-load-{uuid.uuid4().hex[:8]}")
    with runlake.start_run():
        info = runlake.pyfunc.log_model(FailsToLoad(), "m",
                                        input_example=pd.DataFrame({"a": [1.0]}))  # fmt: skip
    src = str(tmp_path / "in")
    local_spark.range(0, 100, numPartitions=2).selectExpr("cast(id as double) as a") \
        .write.parquet(src)  # fmt: skip
    with pytest.raises(Exception, match="this model cannot load here"):
        runlake.spark.score_table(local_spark, info.model_uri, src, str(tmp_path / "out"))
    assert not os.path.exists(tmp_path / "out")
    assert local_spark.sparkContext.statusTracker().getActiveJobsIds() == []
    (run,) = runlake.search_runs(filter_string="attributes.status = 'FAILED'",
                                 output_format="list")  # fmt: skip
    assert "this model cannot load here" in run.data.tags["runlake.score.error"]


def test_timestamps_reach_the_model_in_the_session_time_zone(
    local_spark: SparkSession, tracking: str, tmp_path: Path
) -> None:
    """The Arrow engine hands the model what the UDF path does: naive session-local times."""

    class Hour(runlake.pyfunc.PythonModel):
        def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> Any:
            return model_input["at"].dt.hour.astype("int64").to_numpy()

    at = [dt.datetime(2024, 5, 1, h, 30) for h in (0, 5, 23)]
    with runlake.start_run():
        info = runlake.pyfunc.log_model(Hour(), "m", input_example=pd.DataFrame({"at": at}))
    src = str(tmp_path / "in")
    local_spark.createDataFrame(pd.DataFrame({"at": at})).write.parquet(src)
    outs = {}
    for engine in ("arrow", "spark"):
        path = str(tmp_path / engine)
        runlake.spark.score_table(local_spark, info.model_uri, src, path, engine=engine)  # type: ignore[arg-type]
        outs[engine] = local_spark.read.format("delta").load(path).toPandas().sort_values("at")
    assert outs["arrow"]["prediction"].tolist() == outs["spark"]["prediction"].tolist()
    assert outs["arrow"]["prediction"].tolist() == [0, 5, 23]


def test_tables_on_s3_both_ways(
    local_spark: SparkSession, linear: tuple[str, Any], s3_env: str, tmp_path: Path
) -> None:
    uri, model = linear
    root = f"{s3_env}/scoring-{uuid.uuid4().hex[:8]}"
    data = _data(300)
    _write(_spark_df(local_spark, data, files=3), "parquet", f"{root}/in")
    to_delta = runlake.spark.score_table(local_spark, uri, f"{root}/in", f"{root}/scored")
    to_parquet = runlake.spark.score_table(local_spark, uri, f"{root}/scored", f"{root}/again",
                                           output_format="parquet", output_col="again")  # fmt: skip
    assert (to_delta.engine, to_parquet.engine) == ("arrow", "arrow")
    assert (to_delta.output_version, to_parquet.input_version) == (0, 0)
    want = model.predict(data[["a", "b"]])
    scored = local_spark.read.format("delta").load(f"{root}/scored")
    again = local_spark.read.parquet(f"{root}/again")
    assert scored.columns == [*local_spark.read.parquet(f"{root}/in").columns, "prediction"]
    assert again.columns == [*scored.columns, "again"]
    out = again.toPandas().sort_values("id")
    np.testing.assert_allclose(out["prediction"], want, rtol=1e-12)
    np.testing.assert_allclose(out["again"], want, rtol=1e-12)
    # the Delta log names the run, read by delta-rs with the same S3 settings
    loc = locate(f"{root}/scored")
    assert loc is not None
    (commit,) = DeltaTable(loc.delta_uri, storage_options=loc.storage_options).history()
    assert json.loads(commit["userMetadata"])["runlake_run_id"] == to_delta.run_id
    copied = locate(f"{root}/again")
    assert copied is not None
    infos = copied.filesystem.get_file_info(pafs.FileSelector(copied.path, recursive=True))
    names = [i.path[len(copied.path) + 1 :] for i in infos]
    assert "_SUCCESS" in names and not any(n.startswith("_temporary") for n in names)
