"""``runlake compactor``: the scale-out compactor (Kafka → Spark → Delta on S3).

Registered by the CLI (``app.command("compactor")(clean_errors(compactor))``); runnable
alone as well: ``python -c "from runlake.cli.compactor_cmd import main; main()"``. pyspark
and the job are imported only when the command runs, so ``runlake --help`` stays fast.
S3 endpoint and keys come from RUNLAKE_S3_ENDPOINT_URL / RUNLAKE_S3_ACCESS_KEY /
RUNLAKE_S3_SECRET_KEY (never from flags: argv is visible to every local user).
"""

from __future__ import annotations

from typing import Annotated

import typer

from runlake.errors import RunlakeError

__all__ = ["compactor", "main"]


def compactor(
    kafka: Annotated[
        str,
        typer.Option("--kafka", envvar="RUNLAKE_KAFKA", help="Kafka bootstrap servers."),
    ] = "127.0.0.1:9092",
    tables: Annotated[
        str,
        typer.Option("--tables", help="Root of the Delta tables (s3a://bucket/prefix)."),
    ] = "s3a://runlake/tables",
    checkpoint: Annotated[
        str,
        typer.Option(
            "--checkpoint",
            help="The streaming checkpoint. It belongs to the tables: never reuse one with "
            "other tables, nor drop it while keeping them.",
        ),
    ] = "s3a://runlake/checkpoints/compactor",
    topics: Annotated[
        str,
        typer.Option("--topics", help="Comma-separated topics; their order is fixed for life."),
    ] = "runlake.events,runlake.registry",
    trigger: Annotated[
        str, typer.Option("--trigger", help="Micro-batch interval: 1s, 500ms, 2m.")
    ] = "1s",
    once: Annotated[
        bool,
        typer.Option("--once", help="Fold what the topics hold now, then exit (availableNow)."),
    ] = False,
    max_offsets: Annotated[
        int,
        typer.Option("--max-offsets", min=0, help="maxOffsetsPerTrigger (0: unbounded)."),
    ] = 20_000,
    optimize_every: Annotated[
        int,
        typer.Option("--optimize-every", min=0, help="OPTIMIZE every N micro-batches (0: never)."),
    ] = 100,
    writer: Annotated[
        str,
        typer.Option(
            "--writer",
            help="Who commits the fold to Delta: delta-rs from the driver (fast commits), "
            "or spark (delta-spark). Keep one for the life of a table set.",
        ),
    ] = "delta-rs",
    master: Annotated[
        str,
        typer.Option(
            "--master", help="Spark master: local[N], spark://HOST:7077, yarn, k8s://https://…"
        ),
    ] = "local[2]",
    driver_memory: Annotated[str, typer.Option("--driver-memory")] = "1g",
    conf: Annotated[
        list[str] | None,
        typer.Option(
            "--conf",
            help="A Spark setting KEY=VALUE (repeatable), e.g. spark.executor.instances=4 "
            "or spark.kubernetes.container.image=…; never secrets (use the environment).",
        ),
    ] = None,
) -> None:
    """Fold the Kafka event log into the Delta tables with Spark, exactly once.

    Prints a line with "ready" once the streaming query runs; Ctrl-C or SIGTERM stops it
    (the next start resumes from the checkpoint, replaying at most one micro-batch, which
    the tables' Delta app transactions make a no-op).
    """
    from runlake_services.compactor.spark import (
        SparkCompactorSettings,
        run_spark_compactor,
        s3_settings_from_env,
    )

    from spark_jobs.writers import WRITERS

    if writer not in WRITERS:
        raise typer.BadParameter(f"must be one of {', '.join(WRITERS)}", param_hint="--writer")
    spark_conf: dict[str, str] = {}
    for item in conf or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--conf")
        spark_conf[key.strip()] = value
    bucket = tables.split("://", 1)[-1].split("/", 1)[0]
    settings = SparkCompactorSettings(
        bootstrap_servers=kafka,
        tables_uri=tables,
        checkpoint_uri=checkpoint,
        topics=tuple(t.strip() for t in topics.split(",") if t.strip()),
        trigger=trigger,
        available_now=once,
        max_offsets_per_trigger=max_offsets or None,
        optimize_every=optimize_every,
        writer=writer,
        master=master,
        driver_memory=driver_memory,
        spark_conf=spark_conf,
        s3=s3_settings_from_env(bucket),
    )
    try:
        run_spark_compactor(settings)
    except RunlakeError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None


def main() -> None:
    """``runlake compactor`` alone (what the CLI registers as a subcommand)."""
    typer.run(compactor)
