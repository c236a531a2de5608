"""Spark as the scale-out compactor will use it: Delta on s3a:// (MinIO), the Kafka source."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from runlake_services.cluster import KafkaService, MinioService

from tests.integration.cluster.conftest import SPARK_TOPIC

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(1800)]  # first run installs


def test_delta_table_on_minio_round_trips(spark: SparkSession, minio: MinioService) -> None:
    s3 = minio.s3_settings
    prefix = f"tests/delta-{uuid.uuid4().hex}"
    path = s3.s3a_uri(prefix)
    rows = [(f"run-{i}", "loss", float(i) / 10, i) for i in range(50)]
    columns = ["run_id", "key", "value", "step"]

    spark.createDataFrame(rows, columns).write.format("delta").save(path)
    spark.createDataFrame([("run-x", "acc", 0.9, 1)], columns).write.format("delta").mode(
        "append"
    ).save(path)

    latest = spark.read.format("delta").load(path)
    assert latest.count() == 51
    first = spark.read.format("delta").option("versionAsOf", 0).load(path)
    assert sorted(tuple(r) for r in first.collect()) == sorted(rows)

    # It is really in the bucket, as plain Delta: a commit log and Parquet files.
    names = [
        o.object_name or ""
        for o in minio.client().list_objects(s3.bucket, prefix=prefix + "/", recursive=True)
    ]
    assert f"{prefix}/_delta_log/00000000000000000000.json" in names
    assert f"{prefix}/_delta_log/00000000000000000001.json" in names
    assert any(n.endswith(".parquet") for n in names)

    # and another engine reads it from MinIO: delta-rs, as the embedded query side would
    from deltalake import DeltaTable

    table = DeltaTable(
        f"s3://{s3.bucket}/{prefix}",
        storage_options={
            "AWS_ENDPOINT_URL": s3.endpoint,
            "AWS_ACCESS_KEY_ID": s3.access_key,
            "AWS_SECRET_ACCESS_KEY": s3.secret_key,
            "AWS_REGION": s3.region,
            "AWS_ALLOW_HTTP": "true",
        },
    )
    assert table.version() == 1
    assert table.to_pyarrow_table().num_rows == 51


def test_batch_read_of_a_kafka_topic(spark: SparkSession, kafka: KafkaService) -> None:
    from confluent_kafka import Producer

    batch = uuid.uuid4().hex
    producer = Producer(
        {"bootstrap.servers": kafka.bootstrap_servers, "enable.idempotence": True, "acks": "all"}
    )
    sent = {(f"run-{i % 5}", json.dumps({"batch": batch, "seq": i})) for i in range(40)}
    for key, value in sent:
        producer.produce(SPARK_TOPIC, key=key, value=value)
    assert producer.flush(30) == 0

    df = (
        spark.read.format("kafka")
        .option("kafka.bootstrap.servers", kafka.bootstrap_servers)
        .option("subscribe", SPARK_TOPIC)
        .option("startingOffsets", "earliest")
        .option("endingOffsets", "latest")
        .load()
        .selectExpr("CAST(key AS STRING) AS key", "CAST(value AS STRING) AS value", "partition")
    )
    got = {(r["key"], r["value"]) for r in df.collect() if json.loads(r["value"])["batch"] == batch}
    assert got == sent
    assert df.select("partition").distinct().count() > 1


def test_no_process_has_the_s3_secret_on_its_command_line(
    spark: SparkSession, minio: MinioService
) -> None:
    secret = minio.s3_settings.secret_key.encode()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes()
        except OSError:  # gone meanwhile
            continue
        assert secret not in args, f"S3 secret visible in ps: {cmdline.parent.name}"
