"""One real Kafka, MinIO and local Spark per test session, started by the project's scripts.

The fixtures install what is missing first (Maven jars, the MinIO build; idempotent and
instant once done), so a fresh clone runs these tests with no manual step. Services run on
free loopback ports with their data dirs under the session's tmp dir, and are stopped at
the end of the session by the PID each script recorded.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pytest
from runlake_services.cluster import (
    DEFAULT_TOPICS,
    KafkaService,
    MinioService,
    ServiceError,
    install_kafka,
    install_minio,
    install_spark_jars,
    spark_session,
)
from runlake_services.embedded.process import free_port

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# Topics the smoke tests write to, created by scripts/kafka.sh with the default ones.
KEYED_TOPIC = "smoke.keyed"
SPARK_TOPIC = "smoke.spark"
PARTITIONS = 3

S = TypeVar("S", KafkaService, MinioService)


@pytest.fixture(scope="session")
def cluster_installed() -> None:
    """Run the three installers at once: MinIO compiles while Maven downloads."""
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(f) for f in (install_minio, install_kafka, install_spark_jars)]
        for f in futures:
            f.result()


@pytest.fixture(scope="session")
def cluster_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cluster")


def _started(service: S) -> Iterator[S]:
    try:
        service.start()
    except BaseException:
        # a start that failed half-way must not leave a process behind
        with contextlib.suppress(ServiceError):
            service.stop()
        raise
    yield service
    service.stop()


@pytest.fixture(scope="session")
def kafka(cluster_installed: None, cluster_dir: Path) -> Iterator[KafkaService]:
    yield from _started(
        KafkaService(
            cluster_dir / "kafka",
            port=free_port(),
            controller_port=free_port(),
            topics=(*DEFAULT_TOPICS, KEYED_TOPIC, SPARK_TOPIC),
            partitions=PARTITIONS,
        )
    )


@pytest.fixture(scope="session")
def minio(cluster_installed: None, cluster_dir: Path) -> Iterator[MinioService]:
    yield from _started(MinioService(cluster_dir / "minio", port=free_port()))


@pytest.fixture(scope="session")
def spark(minio: MinioService, kafka: KafkaService) -> Iterator[SparkSession]:
    session = spark_session("runlake-cluster-tests", s3=minio.s3_settings, kafka=True)
    yield session
    session.stop()


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(0.1)
