"""Starts the Spark Structured Streaming compactor (spark_jobs/compactor.py) in-process.

For tests and for one-machine deployments: a local Spark (``local[2]`` by default) with
the Delta, Kafka and S3A jars of ``runlake_services.cluster.spark_session``. A real cluster
runs the same job with ``spark-submit`` (docs/decisions/0013-spark-compactor.md). pyspark
and the job are imported only when a compactor starts, so importing this module is cheap.

S3 settings come from RUNLAKE_S3_ENDPOINT_URL / RUNLAKE_S3_ACCESS_KEY /
RUNLAKE_S3_SECRET_KEY / RUNLAKE_S3_REGION, as for the artifact store: secrets only ever
from the environment, and they reach the JVM through its Hadoop configuration, never its
command line.
"""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING, Any

from runlake.errors import InvalidArgument

from runlake_services.cluster.services import S3Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from spark_jobs.writers import WriterKind

__all__ = [
    "SparkCompactorSettings",
    "parse_trigger",
    "run_spark_compactor",
    "s3_settings_from_env",
    "start_spark_compactor",
]

_TRIGGER = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min)?\s*$")
_UNITS = {"ms": "milliseconds", "s": "seconds", "m": "minutes", "min": "minutes", None: "seconds"}


def parse_trigger(text: str) -> str:
    """``"1s"``/``"500ms"``/``"2m"`` → Spark's processingTime interval (``"1 seconds"``)."""
    m = _TRIGGER.match(text)
    if m is None:
        raise InvalidArgument(f"{text!r} is not an interval like 1s, 500ms or 2m", field="trigger")
    return f"{m.group(1)} {_UNITS[m.group(2)]}"


def s3_settings_from_env(bucket: str = "runlake") -> S3Settings | None:
    """The S3 endpoint and keys from RUNLAKE_S3_* variables; None when no endpoint is set."""
    endpoint = os.environ.get("RUNLAKE_S3_ENDPOINT_URL")
    if not endpoint:
        return None
    return S3Settings(
        endpoint=endpoint,
        access_key=os.environ.get("RUNLAKE_S3_ACCESS_KEY", ""),
        secret_key=os.environ.get("RUNLAKE_S3_SECRET_KEY", ""),
        bucket=bucket,
        region=os.environ.get("RUNLAKE_S3_REGION") or "us-east-1",
    )


@dataclass(frozen=True)
class SparkCompactorSettings:
    """Everything ``runlake compactor`` takes; see spark_jobs.compactor.CompactorConfig."""

    bootstrap_servers: str
    tables_uri: str
    checkpoint_uri: str
    topics: tuple[str, ...] = ("runlake.events", "runlake.registry")
    trigger: str = "1s"
    available_now: bool = False
    max_offsets_per_trigger: int | None = 20_000
    optimize_every: int = 100
    job_id: str = "runlake-spark-compactor"
    writer: WriterKind = "delta-rs"
    master: str = "local[2]"
    driver_memory: str = "1g"
    #: more Spark settings (``--conf KEY=VALUE``): a remote master's image, executors …
    spark_conf: Mapping[str, str] = field(default_factory=dict)
    s3: S3Settings | None = field(default=None, repr=False)

    def job_config(self) -> Any:
        """The job's own config object (spark_jobs is imported here, not at module load)."""
        from spark_jobs.compactor import CompactorConfig
        from spark_jobs.writers import WRITERS

        if self.writer not in WRITERS:
            raise InvalidArgument(
                f"{self.writer!r}: valid writers are {', '.join(WRITERS)}", field="writer"
            )

        return CompactorConfig(
            bootstrap_servers=self.bootstrap_servers,
            tables_uri=self.tables_uri,
            checkpoint_uri=self.checkpoint_uri,
            topics=self.topics,
            trigger_interval=parse_trigger(self.trigger),
            available_now=self.available_now,
            max_offsets_per_trigger=self.max_offsets_per_trigger,
            optimize_every=self.optimize_every,
            job_id=self.job_id,
            writer=self.writer,
        )


@dataclass
class RunningCompactor:
    """A started compactor: the job object (stats, batches) and its streaming query."""

    compactor: Any  # spark_jobs.compactor.SparkCompactor
    query: Any  # pyspark.sql.streaming.StreamingQuery

    def stop(self) -> None:
        self.query.stop()


def start_spark_compactor(
    settings: SparkCompactorSettings, spark: SparkSession | None = None
) -> RunningCompactor:
    """Start the job on ``spark`` (default: a local session with every connector)."""
    from spark_jobs.compactor import SparkCompactor

    if spark is None:
        from runlake_services.cluster.spark import spark_session

        spark = spark_session(
            settings.job_id,
            s3=settings.s3,
            kafka=True,
            master=settings.master,
            driver_memory=settings.driver_memory,
            extra_conf=settings.spark_conf,
        )
    compactor = SparkCompactor(spark, settings.job_config())
    return RunningCompactor(compactor, compactor.start())


def run_spark_compactor(settings: SparkCompactorSettings, *, max_failures: int = 20) -> None:
    """Run until stopped (SIGTERM/SIGINT) or, with ``available_now``, until caught up.

    A micro-batch that fails (S3 or Kafka away for longer than their clients retry) ends
    the streaming query; this restarts it from its checkpoint after a growing pause, which
    replays at most that micro-batch, harmlessly (the tables' app transactions). It gives
    up after ``max_failures`` failures in a row (a query that ran a minute resets the count).
    """
    import logging

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("spark_jobs").setLevel(logging.INFO)
    log = logging.getLogger("runlake.compactor")
    from spark_jobs.compactor import SparkCompactor

    running = start_spark_compactor(settings)
    spark = running.compactor.spark
    stop = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handle)
    print(f"ready compactor tables={settings.tables_uri}", flush=True)
    failures = 0
    current: RunningCompactor | None = running
    error: object = None
    try:
        while True:
            started = time.monotonic()
            if current is not None:
                while not stop.is_set() and current.query.isActive:
                    stop.wait(1.0)
                if stop.is_set():
                    return
                error = current.query.exception()
                if error is None:
                    return  # availableNow: caught up
            failures = 1 if time.monotonic() - started > 60 else failures + 1
            if failures > max_failures:
                raise RuntimeError(f"the compactor query failed {failures} times; last: {error}")
            pause = min(30.0, 2.0**failures)
            log.warning("the streaming query failed (%s); restarting in %.0f s", error, pause)
            if stop.wait(pause):
                return
            try:
                compactor = SparkCompactor(spark, settings.job_config())
                current = RunningCompactor(compactor, compactor.start())
            except Exception as exc:  # S3 still away: the tables cannot even be checked
                current, error = None, exc
                log.warning("restarting the streaming query failed: %s", exc)
    finally:
        if current is not None:
            current.stop()
