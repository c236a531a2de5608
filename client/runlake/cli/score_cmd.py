"""``runlake score --model URI --input TABLE --output TABLE``: batch scoring on Spark.

Reads a Delta or Parquet table, adds the model's ``prediction`` column and writes Delta or
Parquet, recording the job as a run (``runlake.spark.score_table``; its Arrow engine when the
tables allow, ``--engine spark`` for the UDF with Spark's reader and writer). The Spark session is
``runlake_services.cluster.spark_session`` (Delta, and S3A when RUNLAKE_S3_ENDPOINT_URL is
set; keys only from the environment). A progress bar follows the job's Spark tasks.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Annotated

import typer

from runlake.cli._output import Output, emit

if TYPE_CHECKING:
    from pyspark import SparkContext

__all__ = ["score"]


class _TaskProgress:
    """A rich bar over the tasks of the Spark stages running now, polled every 0.5 s."""

    def __init__(self, sc: SparkContext, enabled: bool) -> None:
        self._sc = sc
        self._enabled = enabled
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> _TaskProgress:
        if self._enabled:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        tracker = self._sc.statusTracker()
        bar: Progress | None = None
        task = None
        try:
            while not self._stop.wait(0.5):
                done = total = 0
                for stage_id in tracker.getActiveStageIds():
                    info = tracker.getStageInfo(stage_id)
                    if info is not None:
                        done += info.numCompletedTasks
                        total += info.numTasks
                if not total:
                    continue
                if bar is None:  # shown once a job runs: an early error prints alone
                    bar = Progress(
                        "[bold]score[/bold] tasks", BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=Console(stderr=True), transient=True,
                    )  # fmt: skip
                    bar.start()
                    task = bar.add_task("", total=total)
                assert task is not None
                bar.update(task, completed=done, total=total)
        finally:
            if bar is not None:
                bar.stop()


def score(
    ctx: typer.Context,
    model: Annotated[
        str, typer.Option("--model", "-m", help="models:/NAME/VERSION, models:/NAME@ALIAS, runs:/…")
    ],
    input: Annotated[str, typer.Option("--input", "-i", help="Input table: a path or s3a:// URI.")],
    output: Annotated[str, typer.Option("--output", help="Output table path.")],
    input_format: Annotated[
        str, typer.Option("--input-format", help="auto, delta or parquet.")
    ] = "auto",
    output_format: Annotated[
        str, typer.Option("--output-format", help="delta or parquet.")
    ] = "delta",
    mode: Annotated[str, typer.Option("--mode", help="error, overwrite or append.")] = "error",
    input_version: Annotated[
        int | None, typer.Option("--input-version", min=0, help="Delta version to read.")
    ] = None,
    output_col: Annotated[str, typer.Option("--output-col")] = "prediction",
    result_type: Annotated[
        str | None, typer.Option("--result-type", help="Spark DDL type; default: the signature's.")
    ] = None,
    experiment: Annotated[
        str | None, typer.Option("--experiment", "-e", help="Experiment name (created if new).")
    ] = None,
    engine: Annotated[
        str,
        typer.Option("--engine", help="auto, arrow (pyarrow in the tasks) or spark (the UDF)."),
    ] = "auto",
    master: Annotated[str, typer.Option("--master", help="Spark master.")] = "local[2]",
    driver_memory: Annotated[str, typer.Option("--driver-memory")] = "1g",
    out_fmt: Annotated[
        Output, typer.Option("--print", help="How to print the job: table, json or csv.")
    ] = Output.table,
) -> None:
    """Score a Delta or Parquet table with a model into a new table; the job is a run."""
    from runlake_services.cluster import spark_session
    from runlake_services.compactor.spark import s3_settings_from_env

    import runlake
    from runlake.spark.score import check_job, score_table

    check_job(input, output, input_format, output_format, mode, engine)
    root = ctx.find_root()
    if isinstance(root.obj, str):
        runlake.set_tracking_uri(root.obj)
    if experiment:
        runlake.set_experiment(experiment)
    spark = spark_session(
        "runlake-score", master=master, driver_memory=driver_memory, s3=s3_settings_from_env()
    )
    with _TaskProgress(spark.sparkContext, out_fmt is Output.table):
        job = score_table(
            spark, model, input, output, input_format=input_format,  # type: ignore[arg-type]
            output_format=output_format, mode=mode, input_version=input_version,  # type: ignore[arg-type]
            result_type=result_type, output_col=output_col, engine=engine,  # type: ignore[arg-type]
        )  # fmt: skip
    row = {
        "run_id": job.run_id,
        "rows": job.rows,
        "duration_s": round(job.duration_s, 3),
        "model": f"{job.model_name}/{job.model_version}" if job.model_name else job.model_uri,
        "input_version": job.input_version,
        "output": job.output,
        "output_version": job.output_version,
        "engine": job.engine,
    }
    emit([row], list(row), out_fmt, "scoring job")
