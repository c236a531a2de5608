"""One local Spark (Delta; MinIO on request) for the sweep and scoring tests.

The JVM is launched with every connector jar on its class path (Delta, Kafka, S3A; jars
only, no service started), so that the cluster tests' ``spark`` fixture can reuse this same
session if it comes later in the run: a JVM's class path is fixed at its launch, and there
is one per test process. When a session already runs, it is shared. 2 cores, 1 GiB heap.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from runlake_services.cluster import MinioService, install_minio, install_spark_jars, spark_session
from runlake_services.cluster.spark import spark_jars
from runlake_services.embedded.process import ServerProcess, free_port

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@pytest.fixture(scope="session")
def local_spark() -> Iterator[SparkSession]:
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        yield active
        return
    install_spark_jars()
    class_path = os.pathsep.join(str(j.resolve()) for j in spark_jars(kafka=True, s3=True))
    session = spark_session(
        "runlake-spark-tests",
        kafka=True,
        extra_conf={
            "spark.driver.extraClassPath": class_path,
            "spark.executor.extraClassPath": class_path,
        },
    )
    yield session
    session.stop()


@pytest.fixture
def tracking(server: ServerProcess) -> Iterator[str]:
    """The fluent API pointed at the session's server (and reset after the test)."""
    import runlake
    from runlake._session import session

    runlake.set_tracking_uri(server.uri)
    yield server.uri
    runlake.set_tracking_uri(None)
    session.experiment_id = None


@pytest.fixture(scope="session")
def minio_bucket(
    tmp_path_factory: pytest.TempPathFactory, local_spark: SparkSession
) -> Iterator[MinioService]:
    """A real MinIO on loopback, reachable from ``local_spark`` as ``s3a://<bucket>/``.

    Its keys go on the running session's Hadoop configuration by ``spark_session``, before
    any s3a:// path is opened.
    """
    install_minio()
    service = MinioService(tmp_path_factory.mktemp("minio"), port=free_port())
    service.start()
    try:
        # the product's own path for a running session: its keys, and Hadoop's S3A cache
        # turned off when the cluster tests' MinIO was reached through this session first
        spark_session("runlake-spark-tests", s3=service.s3_settings, kafka=True)
        yield service
    finally:
        service.stop()


@pytest.fixture
def s3_env(minio_bucket: MinioService, monkeypatch: pytest.MonkeyPatch) -> str:
    """The RUNLAKE_S3_* variables for the bucket; returns ``s3a://<bucket>``."""
    s3 = minio_bucket.s3_settings
    monkeypatch.setenv("RUNLAKE_S3_ENDPOINT_URL", s3.endpoint)
    monkeypatch.setenv("RUNLAKE_S3_ACCESS_KEY", s3.access_key)
    monkeypatch.setenv("RUNLAKE_S3_SECRET_KEY", s3.secret_key)
    monkeypatch.setenv("RUNLAKE_S3_REGION", s3.region)
    return f"s3a://{s3.bucket}"
