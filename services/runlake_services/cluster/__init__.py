"""The real scale-out services on one machine: Kafka (KRaft), MinIO, and a local Spark.

Thin wrappers over scripts/kafka.sh, scripts/minio.sh and the install scripts, for the
integration tests and for ``runlake dev-cluster``. Import-light: pyspark, minio and
confluent_kafka are imported only where used. See docs/decisions/0007-scale-out-services.md.
"""

from __future__ import annotations

from runlake_services.cluster.scripts import ServiceError, repo_root, runlake_dir
from runlake_services.cluster.services import (
    DEFAULT_TOPICS,
    KafkaService,
    MinioService,
    S3Settings,
    ServiceStatus,
    install_kafka,
    install_minio,
    install_spark_jars,
)
from runlake_services.cluster.spark import spark_conf, spark_jars, spark_session

__all__ = [
    "DEFAULT_TOPICS",
    "KafkaService",
    "MinioService",
    "S3Settings",
    "ServiceError",
    "ServiceStatus",
    "install_kafka",
    "install_minio",
    "install_spark_jars",
    "repo_root",
    "runlake_dir",
    "spark_conf",
    "spark_jars",
    "spark_session",
]
