"""The Arrow engine of ``score_table``: Spark schedules, pyarrow reads and writes, delta-rs commits.

Table → table scoring has no use for Spark's rows: through a pandas UDF every value goes
Parquet → JVM rows → Arrow → Python → Arrow → JVM rows → Parquet, and that conversion cost
more CPU than the model (docs/decisions/0015-batch-scoring.md). Here Spark only distributes
the work: the driver lists the input's files (:mod:`runlake.spark.plan`), one Spark task per
unit reads, scores and writes Parquet in its Python worker (:mod:`runlake.spark.tasks`), and
the driver commits what the tasks wrote (:mod:`runlake.spark.commit`):

1. Plan: pin the input (a Delta version's add actions, or a Parquet directory's files), and
   check the output can take externally written files; anything else is
   :class:`NotEligible` and the job runs on Spark's reader and writer instead.
2. Begin: make the directory the tasks write into (Delta: the table's, invisible until
   committed; Parquet: ``_temporary/runlake-<job>``).
3. Run: one job (job group ``runlake-score-<job>``), one task per unit; the result is the
   list of files the successful attempts wrote.
4. Commit: Delta, one transaction with the lineage ``userMetadata`` and an app transaction;
   Parquet, move the files in and write ``_SUCCESS``.
5. On any failure in 3 or 4: cancel the job group, wait for its tasks to stop, delete what
   they wrote; the output is as it was.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Literal

from runlake.spark.commit import DeltaOutput, OutputCommitter, ParquetOutput
from runlake.spark.locations import locate
from runlake.spark.plan import InputPlan, NotEligible, plan_delta, plan_parquet
from runlake.spark.tasks import TaskSpec, WrittenFile, score_partition

if TYPE_CHECKING:
    from pyspark import SparkContext
    from pyspark.sql import DataFrame, SparkSession

    from runlake.spark.udf import ModelUdf

__all__ = ["ArrowJob", "NotEligible", "prepare_arrow_job"]


@dataclass
class ArrowJob:
    """A planned Arrow-engine job; :meth:`run` does steps 2 to 5."""

    plan: InputPlan
    spec: TaskSpec
    output: OutputCommitter
    job_id: str

    def run(self, spark: SparkSession, run_id: str, user_metadata: str) -> tuple[int, int | None]:
        """(rows written, the output's Delta version or None)."""
        sc = spark.sparkContext
        self.output.begin()
        group = f"runlake-score-{self.job_id}"
        try:
            files = self._tasks(sc, group, run_id)
            version = self.output.commit(files, user_metadata, f"runlake-score/{run_id}")
        except BaseException:
            sc.cancelJobGroup(group)
            _wait_stopped(sc, group)
            self.output.abort()
            raise
        return sum(f.rows for f in files), version

    def _tasks(self, sc: SparkContext, group: str, run_id: str) -> list[WrittenFile]:
        units = self.plan.units
        if not units:
            return []
        sc.setJobGroup(group, f"runlake score ({run_id}): {self.plan.files} files", True)
        try:
            rdd = sc.parallelize(units, len(units))
            return rdd.mapPartitionsWithIndex(partial(score_partition, self.spec)).collect()
        finally:
            sc.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]


def prepare_arrow_job(
    spark: SparkSession,
    *,
    df: DataFrame,
    scored: DataFrame,
    model: ModelUdf,
    names: list[str],
    input: str,
    input_format: Literal["delta", "parquet"],
    input_version: int | None,
    output: str,
    output_format: Literal["delta", "parquet"],
    mode: Literal["error", "overwrite", "append"],
) -> ArrowJob:
    """Step 1: plan the job, or NotEligible (with the reason) when Spark must run it."""
    from pyspark.sql.pandas.types import to_arrow_schema

    in_loc, out_loc = locate(input), locate(output)
    if in_loc is None or out_loc is None:
        raise NotEligible("the Arrow engine reads and writes local and s3:// paths only")
    try:
        in_schema = to_arrow_schema(df.schema, timezone="UTC")
        out_schema = to_arrow_schema(scored.schema, timezone="UTC")
    except Exception as exc:  # a type with no Arrow form (variant, interval)
        raise NotEligible(f"a column has no Arrow type: {str(exc).splitlines()[0]}") from None
    parallelism = spark.sparkContext.defaultParallelism
    if input_format == "delta":
        assert input_version is not None
        plan = plan_delta(in_loc, input_version, parallelism)
    else:
        plan = plan_parquet(in_loc, parallelism)
    job_id = uuid.uuid4().hex[:16]
    committer: OutputCommitter = (
        DeltaOutput(out_loc, mode, job_id, scored.schema)
        if output_format == "delta"
        else ParquetOutput(out_loc, mode, job_id)
    )
    committer.check()
    spec = TaskSpec(
        model=model.staged.shipped,
        names=tuple(names),
        params=model.params,
        result_type=model.result_type,
        input_fs=in_loc.filesystem,
        input_schema=in_schema,
        output_schema=out_schema,
        output_fs=out_loc.filesystem,
        output_dir=committer.files_dir,
        job_id=job_id,
        delta_stats=committer.delta_stats,
        timezone=spark.conf.get("spark.sql.session.timeZone") or "UTC",
    )
    return ArrowJob(plan, spec, committer, job_id)


def _wait_stopped(sc: SparkContext, group: str, timeout_s: float = 30.0) -> None:
    """Until no task of ``group`` runs (a cancelled task may still be writing a file)."""
    tracker = sc.statusTracker()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        active = 0
        for job in tracker.getJobIdsForGroup(group):
            info = tracker.getJobInfo(job)
            for stage in info.stageIds if info is not None else ():
                st = tracker.getStageInfo(stage)
                active += st.numActiveTasks if st is not None else 0
        if not active:
            return
        time.sleep(0.1)
