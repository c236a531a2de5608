"""Batch scoring on a real local Spark with models from a real embedded server's registry."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cloudpickle
import numpy as np
import pandas as pd
import pytest
import runlake
import runlake.pyfunc
import runlake.sklearn
import runlake.spark
from runlake.cli.app import app
from runlake.errors import InvalidArgument
from typer.testing import CliRunner

from tests.integration.spark.scoring_models import CountsLoads, Verdict

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(600)]

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _frame(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "id": np.arange(n)})


@pytest.fixture
def linear(tracking: str) -> tuple[str, Any]:
    """A registered sklearn model with the alias 'champion' on version 2 (of 2)."""
    from sklearn.linear_model import LinearRegression

    name = f"lin-{uuid.uuid4().hex[:8]}"
    X = _frame()[["a", "b"]]
    for k in (1.0, 3.0):
        model = LinearRegression().fit(X, k * X["a"] - X["b"])
        with runlake.start_run():
            runlake.sklearn.log_model(model, "model", input_example=X[:3],
                                      registered_model_name=name)  # fmt: skip
    runlake.RunlakeClient().set_registered_model_alias(name, "champion", 2)
    return name, model


def test_score_a_delta_table_into_a_delta_table_with_lineage(
    local_spark: SparkSession, linear: tuple[str, Any], tmp_path: Path
) -> None:
    name, model = linear
    src, dst = str(tmp_path / "in"), str(tmp_path / "out")
    data = _frame()
    local_spark.createDataFrame(data[:50]).write.format("delta").save(src)
    local_spark.createDataFrame(data[50:]).write.format("delta").mode("append").save(src)
    runlake.set_experiment(f"scoring-{uuid.uuid4().hex[:8]}")

    job = runlake.spark.score_table(local_spark, f"models:/{name}@champion", src, dst)

    assert (job.model_name, job.model_version, job.input_version) == (name, 2, 1)
    assert job.rows == 200 and job.output_version == 0
    assert job.engine == "arrow"  # plain tables: the tasks read and write the files
    out = local_spark.read.format("delta").load(dst).toPandas().sort_values("id")
    expected = model.predict(data[["a", "b"]])
    np.testing.assert_allclose(out["prediction"].to_numpy(), expected, rtol=1e-12)
    assert list(out.columns) == ["a", "b", "id", "prediction"]

    run = runlake.get_run(job.run_id)
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags["runlake.score.model_name"] == name and tags["runlake.score.model_version"] == "2"
    assert tags["runlake.score.input"] == src and tags["runlake.score.input_version"] == "1"
    assert tags["runlake.score.output"] == dst and tags["runlake.score.output_version"] == "0"
    assert tags["runlake.score.engine"] == "arrow" and "runlake.score.engine_reason" not in tags
    mv = runlake.RunlakeClient().get_model_version(name, 2)
    assert tags["runlake.score.model_run_id"] == mv.run_id
    assert run.data.metrics["rows"] == 200 and run.data.metrics["duration_s"] > 0
    # lineage the other way: the table names the run, the model version finds it
    (commit,) = local_spark.sql(f"DESCRIBE HISTORY delta.`{dst}`").collect()
    assert json.loads(commit["userMetadata"])["runlake_run_id"] == job.run_id
    found = runlake.search_runs(
        filter_string=f"tags.`runlake.score.model_name` = '{name}' AND "
        "tags.`runlake.score.model_version` = '2'",
        output_format="list",
    )
    assert [r.info.run_id for r in found] == [job.run_id]

    with pytest.raises(InvalidArgument, match=r"^output: .* already exists"):
        runlake.spark.score_table(local_spark, f"models:/{name}/1", src, dst)
    pinned = runlake.spark.score_table(local_spark, f"models:/{name}/1", src, dst + "_v0",
                                       input_version=0, output_format="parquet")  # fmt: skip
    assert pinned.rows == 50 and pinned.input_version == 0 and pinned.output_version is None
    assert local_spark.read.parquet(dst + "_v0").count() == 50


def test_a_multi_output_model_gives_a_struct_column(
    local_spark: SparkSession, tracking: str
) -> None:
    data = _frame(40)
    with runlake.start_run():
        info = runlake.pyfunc.log_model(Verdict(), "verdict", input_example=data[["a"]][:3])
    df = local_spark.createDataFrame(data)
    scored = runlake.spark.score(df, info.model_uri)
    fields = {f.name: f.dataType.simpleString() for f in scored.schema["prediction"].dataType}
    assert fields == {"label": "string", "score": "double"}
    rows = scored.select("id", "prediction.label", "prediction.score").toPandas().sort_values("id")
    assert rows["score"].tolist() == pytest.approx((data["a"] * 2).tolist())
    assert rows["label"].tolist() == np.where(data["a"] > 0, "pos", "neg").tolist()


def test_the_model_is_loaded_once_per_python_worker(
    local_spark: SparkSession, tracking: str, tmp_path: Path
) -> None:
    log = tmp_path / "loads.txt"
    with runlake.start_run():
        info = runlake.pyfunc.log_model(CountsLoads(str(log), shift=1.0), "m",
                                        input_example=pd.DataFrame({"a": [1.0]}))  # fmt: skip
    log.write_text("")  # log_model loaded it once to infer the output
    df = local_spark.range(0, 4000, numPartitions=16).selectExpr("cast(id as double) as a")
    predict = runlake.spark.udf(local_spark, info.model_uri, "double")
    out = df.withColumn("p", predict("a")).agg({"p": "sum"}).collect()[0][0]
    assert out == sum(range(4000)) + 4000
    pids = log.read_text().split()
    assert pids and len(pids) == len(set(pids)), f"a worker loaded the model twice: {pids}"
    assert len(pids) < 16  # 16 tasks, far fewer loads


def test_the_signature_is_applied(
    local_spark: SparkSession, linear: tuple[str, Any], tmp_path: Path
) -> None:
    name, _ = linear
    df = local_spark.createDataFrame(_frame(10)).drop("b")
    with pytest.raises(InvalidArgument, match=r"^b: the model needs columns \['b'\]"):
        runlake.spark.score(df, f"models:/{name}/1")
    as_text = local_spark.createDataFrame(_frame(10)).selectExpr(
        "a", "cast(b as string) as b", "id"
    )
    # strings that are numbers are not silently converted: the signature says double
    with pytest.raises(InvalidArgument, match=r"^b: is string; the model's signature wants double"):
        runlake.spark.score(as_text, f"models:/{name}/1")
    # a Column argument skips the driver's check: the worker's enforcement names the column
    from pyspark.sql import functions as F

    predict = runlake.spark.udf(local_spark, f"models:/{name}/1")
    with pytest.raises(Exception, match="b: expected double, got strings"):
        as_text.select(predict(F.col("a"), F.col("b"))).collect()
    # an explicit result type (DDL) is honoured
    scored = runlake.spark.score(local_spark.createDataFrame(_frame(10)), f"models:/{name}/1",
                                 result_type="float")  # fmt: skip
    assert scored.schema["prediction"].dataType.simpleString() == "float"


def test_runlake_score_cli(
    local_spark: SparkSession, linear: tuple[str, Any], tmp_path: Path, tracking: str
) -> None:
    name, model = linear
    src = str(tmp_path / "in.parquet")
    local_spark.createDataFrame(_frame(120)).write.parquet(src)
    dst = str(tmp_path / "out")
    args = ["--tracking-uri", tracking, "score", "--model", f"models:/{name}/2", "--input", src,
            "--output", dst, "--print", "json"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (job,) = json.loads(result.stdout)
    assert job["rows"] == 120 and job["model"] == f"{name}/2" and job["output_version"] == 0
    run = runlake.get_run(job["run_id"])
    assert run.data.tags["runlake.score.input_format"] == "parquet"
    assert "runlake.score.input_version" not in run.data.tags
    out = local_spark.read.format("delta").load(dst).toPandas().sort_values("id")
    np.testing.assert_allclose(out["prediction"], model.predict(out[["a", "b"]]), rtol=1e-12)

    again = CliRunner().invoke(app, args)
    assert again.exit_code == 1
    assert again.stderr.strip().startswith(f"error: output: {dst} already exists")
    missing = CliRunner().invoke(app, [*args[:6], str(tmp_path / "nope"), "--output",
                                       str(tmp_path / "o2")])  # fmt: skip
    assert missing.exit_code == 1
    assert missing.stderr.startswith("error: input: cannot read"), repr(missing.exception)
