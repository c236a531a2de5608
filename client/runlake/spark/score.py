"""``score(df, model_uri)`` and ``score_table``: a whole table scored and recorded as a run.

``score`` is lazy, like any DataFrame transformation: it adds the ``prediction`` column
and runs nothing. ``score_table`` reads a Delta or Parquet table, scores it, writes the
result as Delta or Parquet and records the job as a run, with lineage both ways:

- the run's tags name the model (URI, registered name and version, source run), the input
  (path, format, Delta version read), the output (path, format, Delta version written),
  and its metrics the row count, duration and rows/s;
- the output's Delta commit carries the run id in its ``userMetadata``
  (``DESCRIBE HISTORY`` shows which run wrote each version), and the runs that scored a
  model version are found with ``tags.runlake.score.model_name`` /
  ``tags.runlake.score.model_version``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from runlake.errors import InvalidArgument, RunlakeError
from runlake.models.schema import ColSpec, DataType

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql import types as T

    from runlake.spark.udf import ModelUdf

__all__ = ["ScoringJob", "check_job", "score", "score_table"]

Format = Literal["auto", "delta", "parquet"]
WriteMode = Literal["error", "overwrite", "append"]
Engine = Literal["auto", "arrow", "spark"]
TAG = "runlake.score."


def _check_inputs(df: DataFrame, model: ModelUdf) -> list[str]:
    """The columns to feed the model: the signature's (each must exist), else all."""
    columns = list(df.columns)
    names = model.input_names
    if not names:
        return columns
    sig = model.staged.meta.signature
    required = sig.inputs.required_input_names() if sig is not None and sig.inputs else names
    missing = [n for n in required if n not in columns]
    if missing:
        raise InvalidArgument(
            f"the model needs columns {missing} that the input lacks (it has {columns})",
            field=missing[0],
        )
    types = {f.name: f.dataType.simpleString() for f in df.schema.fields}
    if sig is not None and sig.inputs is not None:
        for spec in sig.inputs:
            if spec.name in types and isinstance(spec, ColSpec) and isinstance(spec.type, DataType):
                have = types[spec.name]
                if _KIND.get(have.split("(")[0], have) != _KIND[spec.type.value]:
                    raise InvalidArgument(
                        f"is {have}; the model's signature wants {spec.type.value}",
                        field=spec.name,
                    )
    return [n for n in names if n in columns]


#: What a Spark column may hold for each signature type (values converted on the workers).
_NUMERIC = ("tinyint", "smallint", "int", "bigint", "float", "double", "decimal")
_KIND = {
    **dict.fromkeys(_NUMERIC, "number"),
    **dict.fromkeys(("integer", "long"), "number"),
    "boolean": "boolean",
    "string": "string",
    "binary": "binary",
    "datetime": "time",
    "timestamp": "time",
    "timestamp_ntz": "time",
    "date": "time",
}


def _with_prediction(
    df: DataFrame, model: ModelUdf, output_col: str, names: list[str] | None = None
) -> DataFrame:
    if output_col in df.columns:
        raise InvalidArgument(f"the input already has a column {output_col!r}", field="output_col")
    return df.withColumn(output_col, model(*(names or _check_inputs(df, model))))


def score(
    df: DataFrame,
    model_uri: str,
    *,
    result_type: T.DataType | str | None = None,
    output_col: str = "prediction",
    params: dict[str, Any] | None = None,
) -> DataFrame:
    """``df`` with a ``prediction`` column (a struct for a multi-output model).

    The model's signature names the input columns (every column when it has none).
    """
    from runlake.spark.udf import udf

    return _with_prediction(df, udf(df.sparkSession, model_uri, result_type, params=params),
                            output_col)  # fmt: skip


@dataclass(frozen=True)
class ScoringJob:
    """What ``score_table`` did; the same is on its run."""

    run_id: str
    rows: int
    duration_s: float
    model_uri: str
    model_name: str | None
    model_version: int | None
    input: str
    input_format: str
    input_version: int | None
    output: str
    output_format: str
    output_version: int | None
    #: ``arrow`` (files read, scored and written by pyarrow in the tasks) or ``spark``
    engine: str = "spark"


def _is_delta(spark: SparkSession, path: str) -> bool:
    from delta.tables import DeltaTable

    return bool(DeltaTable.isDeltaTable(spark, path))


def _delta_version(spark: SparkSession, path: str) -> tuple[int, str | None]:
    """(latest version, its userMetadata)."""
    from delta.tables import DeltaTable

    row = DeltaTable.forPath(spark, path).history(1).collect()[0]
    return int(row["version"]), row["userMetadata"]


def _exists(spark: SparkSession, path: str) -> bool:
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    fs = hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    return bool(fs.exists(hadoop_path))


def _read(
    spark: SparkSession, path: str, fmt: Format, version: int | None
) -> tuple[DataFrame, str, int | None]:
    if fmt == "auto":
        fmt = "delta" if _is_delta(spark, path) else "parquet"
    if fmt == "delta":
        if not _is_delta(spark, path):
            raise InvalidArgument(f"{path} is not a Delta table", field="input")
        latest, _ = _delta_version(spark, path)
        pinned = latest if version is None else version
        if not 0 <= pinned <= latest:
            raise InvalidArgument(
                f"{path} has versions 0 to {latest}, not {pinned}", field="input_version"
            )
        df = spark.read.format("delta").option("versionAsOf", pinned).load(path)
        return df, "delta", pinned
    if version is not None:
        raise InvalidArgument("only a Delta input has versions", field="input_version")
    try:
        return spark.read.parquet(path), "parquet", None
    except Exception as exc:  # AnalysisException: path does not exist, not Parquet
        raise InvalidArgument(
            f"cannot read {path} as Parquet: {str(exc).splitlines()[0]}", field="input"
        ) from None


def check_job(
    input: str, output: str, input_format: str, output_format: str, mode: str,
    engine: str = "auto",
) -> None:  # fmt: skip
    """The options of a scoring job, checked before any Spark work (errors name the option)."""
    if engine not in ("auto", "arrow", "spark"):
        raise InvalidArgument(f"{engine!r} is not auto, arrow or spark", field="engine")
    if input_format not in ("auto", "delta", "parquet"):
        raise InvalidArgument(f"{input_format!r} is not auto, delta or parquet",
                              field="input_format")  # fmt: skip
    if output_format not in ("delta", "parquet"):
        raise InvalidArgument(f"{output_format!r} is not delta or parquet", field="output_format")
    if mode not in ("error", "overwrite", "append"):
        raise InvalidArgument(f"{mode!r} is not error, overwrite or append", field="mode")
    if not input or not output:
        raise InvalidArgument("needs an input and an output path", field="input" if not input
                              else "output")  # fmt: skip
    if input.rstrip("/") == output.rstrip("/"):
        raise InvalidArgument("must differ from the input", field="output")


def score_table(
    spark: SparkSession,
    model_uri: str,
    input: str,
    output: str,
    *,
    input_format: Format = "auto",
    output_format: Literal["delta", "parquet"] = "delta",
    mode: WriteMode = "error",
    input_version: int | None = None,
    result_type: T.DataType | str | None = None,
    output_col: str = "prediction",
    experiment_id: str | None = None,
    run_name: str | None = None,
    engine: Engine = "auto",
) -> ScoringJob:
    """Score the table at ``input`` into ``output`` and record the job as a run.

    ``input_format="auto"`` reads Delta when ``input`` is a Delta table, else Parquet; a
    Delta input is read at ``input_version`` (default: the latest, pinned when the job
    starts). ``mode`` is Spark's save mode: ``error`` refuses an existing output.

    ``engine="auto"`` scores with the Arrow engine (:mod:`runlake.spark.table_job`: the
    tasks read, score and write the files with pyarrow; no row conversion in the JVM)
    whenever the tables allow, else through the UDF with Spark's reader and writer; the
    run's ``runlake.score.engine`` tag says which, and ``.engine_reason`` why not Arrow.
    ``"arrow"`` refuses a job it cannot take; ``"spark"`` always uses the UDF path.
    """
    from runlake import _context, fluent
    from runlake.client import RunlakeClient
    from runlake.spark.table_job import ArrowJob, NotEligible, prepare_arrow_job
    from runlake.spark.udf import udf

    check_job(input, output, input_format, output_format, mode, engine)
    if mode == "error" and _exists(spark, output):
        raise InvalidArgument(
            f"{output} already exists; pass mode 'overwrite' or 'append'", field="output"
        )
    df, in_fmt, in_version = _read(spark, input, input_format, input_version)
    model = udf(spark, model_uri, result_type)
    names = _check_inputs(df, model)
    scored = _with_prediction(df, model, output_col, names)
    arrow: ArrowJob | None = None
    not_arrow: str | None = None
    if engine != "spark":
        try:
            arrow = prepare_arrow_job(
                spark, df=df, scored=scored, model=model, names=names, input=input,
                input_format=in_fmt, input_version=in_version, output=output,  # type: ignore[arg-type]
                output_format=output_format, mode=mode,
            )  # fmt: skip
        except NotEligible as exc:
            if engine == "arrow":
                raise InvalidArgument(f"the Arrow engine cannot run this job: {exc}",
                                      field="engine") from None  # fmt: skip
            not_arrow = str(exc)
    mv = model.staged.version
    client = RunlakeClient()
    tags: dict[str, Any] = {
        **_context.run_context_tags(),
        f"{TAG}model_uri": model_uri,
        f"{TAG}model_source": model.staged.source,
        f"{TAG}input": input,
        f"{TAG}input_format": in_fmt,
        f"{TAG}output": output,
        f"{TAG}output_format": output_format,
        f"{TAG}mode": mode,
        f"{TAG}engine": "arrow" if arrow is not None else "spark",
    }
    if not_arrow is not None:
        tags[f"{TAG}engine_reason"] = not_arrow
    if in_version is not None:
        tags[f"{TAG}input_version"] = in_version
    if mv is not None:
        tags.update({f"{TAG}model_name": mv.name, f"{TAG}model_version": mv.version})
        if mv.run_id:
            tags[f"{TAG}model_run_id"] = mv.run_id
    elif model.staged.meta.run_id:
        tags[f"{TAG}model_run_id"] = model.staged.meta.run_id
    exp = str(experiment_id) if experiment_id is not None else fluent._experiment_id()
    run = client.create_run(exp, run_name=run_name or "score", tags=tags)
    run_id = run.info.run_id
    client.flush()
    started = time.monotonic()
    meta = json.dumps({"runlake_run_id": run_id, "model_uri": model_uri})
    try:
        if arrow is not None:
            rows, out_version = arrow.run(spark, run_id, meta)
        else:
            rows, out_version = _spark_write(spark, df, scored, output, output_format, mode,
                                             meta, run_id)  # fmt: skip
        duration = time.monotonic() - started
    except BaseException as exc:
        client.log_batch(run_id, tags={f"{TAG}error": f"{type(exc).__name__}: {exc}"[:8000]})
        client.set_terminated(run_id, "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        client.flush()
        raise
    out_tags: dict[str, Any] = {f"{TAG}rows": rows}
    if out_version is not None:
        out_tags[f"{TAG}output_version"] = out_version
    client.log_batch(run_id, tags=out_tags)
    for key, value in (("rows", rows), ("duration_s", duration),
                       ("rows_per_s", rows / duration if duration > 0 else 0.0)):  # fmt: skip
        client.log_metric(run_id, key, float(value))
    client.set_terminated(run_id, "FINISHED")
    client.flush()
    return ScoringJob(
        run_id=run_id, rows=rows, duration_s=duration, model_uri=model_uri,
        model_name=mv.name if mv is not None else None,
        model_version=mv.version if mv is not None else None,
        input=input, input_format=in_fmt, input_version=in_version,
        output=output, output_format=output_format, output_version=out_version,
        engine="arrow" if arrow is not None else "spark",
    )  # fmt: skip


def _spark_write(
    spark: SparkSession, df: DataFrame, scored: DataFrame, output: str, output_format: str,
    mode: str, meta: str, run_id: str,
) -> tuple[int, int | None]:  # fmt: skip
    """The UDF path: Spark reads, the pandas UDF scores, Spark writes; (rows, version)."""
    rows = df.count()  # 1:1 with the output; metadata-only for Delta and Parquet
    writer = scored.write.mode(mode)
    if output_format != "delta":
        writer.parquet(output)
        return rows, None
    writer.format("delta").option("userMetadata", meta).save(output)
    version, written_by = _delta_version(spark, output)
    if written_by is None or run_id not in written_by:
        raise RunlakeError(f"{output}: its latest commit is not this job's")
    return rows, version
