"""Kafka as the event log will use it: idempotent, acks=all, keyed, several partitions."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict

import pytest
from runlake_services.cluster import DEFAULT_TOPICS, KafkaService

from tests.integration.cluster.conftest import KEYED_TOPIC, PARTITIONS

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(1800)]  # first run installs


def test_topics_exist_with_their_partitions(kafka: KafkaService) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers})
    topics = admin.list_topics(timeout=30).topics
    for name in (*DEFAULT_TOPICS, KEYED_TOPIC):
        assert name in topics, f"{name} missing; broker has {sorted(topics)}"
        assert len(topics[name].partitions) == PARTITIONS


def test_idempotent_producer_keyed_messages_read_back(kafka: KafkaService) -> None:
    from confluent_kafka import Consumer, KafkaError, Message, Producer

    producer = Producer(
        {
            "bootstrap.servers": kafka.bootstrap_servers,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
        }
    )
    batch = uuid.uuid4().hex
    keys = [f"run-{batch}-{i}" for i in range(12)]
    sent = [(keys[i % len(keys)], {"batch": batch, "seq": i}) for i in range(600)]
    errors: list[KafkaError] = []

    def delivered(err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            errors.append(err)

    for key, value in sent:
        producer.produce(KEYED_TOPIC, key=key, value=json.dumps(value), on_delivery=delivered)
    assert producer.flush(30) == 0, "messages still queued after 30 s"
    assert errors == []

    consumer = Consumer(
        {
            "bootstrap.servers": kafka.bootstrap_servers,
            "group.id": f"smoke-{batch}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([KEYED_TOPIC])
    got: list[tuple[str, int, int]] = []  # (key, seq, partition) of this batch
    try:
        import time

        deadline = time.monotonic() + 60
        while len(got) < len(sent) and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            value = json.loads(msg.value() or b"{}")
            if value.get("batch") == batch:
                key = (msg.key() or b"").decode()
                got.append((key, int(value["seq"]), int(msg.partition() or 0)))
    finally:
        consumer.close()

    assert sorted((k, s) for k, s, _ in got) == sorted((k, v["seq"]) for k, v in sent)
    partitions_of: dict[str, set[int]] = defaultdict(set)
    seqs_of: dict[str, list[int]] = defaultdict(list)
    for key, seq, partition in got:
        partitions_of[key].add(partition)
        seqs_of[key].append(seq)
    # one key, one partition, in the order produced: what ordering per run id relies on
    assert all(len(p) == 1 for p in partitions_of.values())
    assert all(s == sorted(s) for s in seqs_of.values())
    assert len({p for ps in partitions_of.values() for p in ps}) > 1, "keys all on one partition"
