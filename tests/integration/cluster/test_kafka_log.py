"""The Kafka event log and standalone gateways over a real broker (docs/decisions/0012).

Each test writes to topics of its own (unique names, created once for the module), so the
session's broker is shared safely. The broker-restart and unreachable-broker tests start a
broker of their own: stopping the session's would break the other cluster tests.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from runlake.positions import compare, covers, later, parse_vector
from runlake.v1 import events_pb2, gateway_pb2, gateway_pb2_grpc
from runlake_services.cluster import KafkaService
from runlake_services.embedded.process import free_port
from runlake_services.eventlog import RunState, StateChanges
from runlake_services.eventlog.kafka import (
    HEADER_BATCH_ID,
    KafkaEventLog,
    KafkaSettings,
)
from runlake_services.launcher import RunlakeProcess

from tests.integration.cluster.conftest import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(1800)]  # first run installs

PARTITIONS = 3
_SUFFIX = uuid.uuid4().hex[:8]


def _topics(name: str) -> tuple[str, str]:
    return f"rl.{name}.{_SUFFIX}.events", f"rl.{name}.{_SUFFIX}.registry"


_ALL = ("append", "retry", "gateways")


@pytest.fixture(scope="module")
def topics(kafka: KafkaService) -> None:
    """Every topic the module's tests use, in one TopicCommand run (each costs a JVM)."""
    kafka.create_topics([t for name in _ALL for t in _topics(name)], PARTITIONS)


def _log(bootstrap: str, name: str, **kw: object) -> KafkaEventLog:
    events, registry = _topics(name)
    settings = KafkaSettings(bootstrap, events, registry_topic=registry, **kw)  # type: ignore[arg-type]
    return KafkaEventLog(settings).start()


def _batch(batch_id: str, *events: events_pb2.Event) -> bytes:
    meta = events_pb2.BatchMeta(batch_id=batch_id, schema_version=1)
    return events_pb2.LoggedBatch(meta=meta, events=events).SerializeToString()


def _run_created(run_id: str) -> events_pb2.Event:
    return events_pb2.Event(run_created=events_pb2.RunCreated(run_id=run_id, experiment_id="0"))


def _consume_all(bootstrap: str, topic: str, timeout_s: float = 30.0) -> list[tuple[str, int]]:
    """(batch id, partition) of every committed message of ``topic``, read to its end."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"check-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
        }
    )
    try:
        parts = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {}
        for p in parts:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            ends[p] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in parts])
        out: list[tuple[str, int]] = []
        done = {p for p, high in ends.items() if high == 0}
        deadline = time.monotonic() + timeout_s
        while len(done) < len(parts):
            assert time.monotonic() < deadline, f"could not read {topic} to its end"
            for msg in consumer.consume(500, 0.5):
                if msg.error():
                    continue
                headers = dict(msg.headers() or [])
                out.append((bytes(headers[HEADER_BATCH_ID]).decode(), int(msg.partition())))
                if msg.offset() + 1 >= ends[msg.partition()]:
                    done.add(msg.partition())
        return out
    finally:
        consumer.close()


# -- the log itself ---------------------------------------------------------------------


def test_append_is_acknowledged_with_a_position_and_keyed_by_run(
    kafka: KafkaService, topics: None
) -> None:
    events_topic, registry_topic = _topics("append")
    log = _log(kafka.bootstrap_servers, "append")
    try:
        run_id = uuid.uuid4().hex
        positions = []
        for i in range(5):
            ev = (
                _run_created(run_id)
                if i == 0
                else events_pb2.Event(
                    tags_set=events_pb2.TagsSet(
                        run_id=run_id, tags=[events_pb2.KeyValue(key="k", value=str(i))]
                    )
                )
            )
            changes = StateChanges(runs={run_id: RunState(run_id, "0", "RUNNING", "active")})
            appended = log.append(f"b-{run_id}-{i}", _batch(f"b-{run_id}-{i}", ev), changes)
            assert not appended.duplicate
            positions.append(appended.position)
        # One run, one partition; each answer is later than the one before it.
        own = [parse_vector(log.find(f"b-{run_id}-{i}") or "") for i in range(5)]
        assert len({tp for v in own for tp in v}) == 1
        for a, b in itertools.pairwise(positions):
            assert compare(b, a) == 1 and covers(b, a)
        assert log.catalog.runs([run_id])[run_id].status == "RUNNING"

        # A registry batch goes to the registry topic, keyed by its model id.
        ev = events_pb2.Event(
            registered_model_created=events_pb2.RegisteredModelCreated(
                name="m", model_id=uuid.uuid4().hex
            )
        )
        reg = log.append("reg-1", _batch("reg-1", ev), StateChanges())
        assert registry_topic in {t for t, _ in parse_vector(reg.position)}
        consumed = _consume_all(kafka.bootstrap_servers, events_topic)
        assert sorted(b for b, _ in consumed) == sorted(f"b-{run_id}-{i}" for i in range(5))
        assert [b for b, _ in _consume_all(kafka.bootstrap_servers, registry_topic)] == ["reg-1"]
    finally:
        log.close()


def test_position_tokens_merge_element_wise() -> None:
    a, b = "t:0=5,1=2", "t:1=7;u:0=1"
    assert later(a, b) == "t:0=5,1=7;u:0=1"
    assert compare(a, b) is None  # each leads somewhere
    assert compare(later(a, b), a) == 1
    assert later("12", "9") == "12" and later("", "t:0=1") == "t:0=1"
    assert covers("t:0=5", "") and not covers("t:0=4", "t:0=5")


def test_a_retried_batch_id_appears_once_in_the_topic(kafka: KafkaService, topics: None) -> None:
    events_topic, _ = _topics("retry")
    first = _log(kafka.bootstrap_servers, "retry")
    second = None
    try:
        run_id = uuid.uuid4().hex
        payload = _batch("once", _run_created(run_id))
        changes = StateChanges(runs={run_id: RunState(run_id, "0", "RUNNING", "active")})
        a = first.append("once", payload, changes)
        again = first.append("once", payload, changes)
        assert again.duplicate and again.position == first.find("once")
        # A second gateway learns the batch id from the topic: a retry sent there is a
        # duplicate too (once it has tailed past it).
        second = _log(kafka.bootstrap_servers, "retry")
        assert second.wait_for(a.position, 10)
        assert second.append("once", payload, changes).duplicate
        assert second.catalog.runs([run_id])[run_id].experiment_id == "0"
        assert second.payload_of("once") == payload
        assert [b for b, _ in _consume_all(kafka.bootstrap_servers, events_topic)] == ["once"]
    finally:
        first.close()
        if second is not None:
            second.close()


# -- gateway processes ------------------------------------------------------------------


def Gateway(log_uri: str, artifacts: Path, extra: list[str] | None = None) -> RunlakeProcess:
    """One ``runlake gateway`` child process; port 0 lets it choose (read from ready)."""
    return RunlakeProcess(
        [
            "gateway", "--log", log_uri, "--host", "127.0.0.1", "--port", "0",
            "--artifacts-destination", artifacts.as_uri(), *(extra or []),
        ],
        name="gateway",
    )  # fmt: skip


@pytest.fixture
def gateways() -> Iterator[list[RunlakeProcess]]:
    started: list[RunlakeProcess] = []
    yield started
    for g in started:
        g.stop()


def _kafka_uri(bootstrap: str, name: str, **query: str) -> str:
    events, registry = _topics(name) if name in _ALL else (f"{name}.events", f"{name}.registry")
    extra = "".join(f"&{k}={v}" for k, v in query.items())
    return f"kafka://{bootstrap}/{events}?registry_topic={registry}{extra}"


def test_two_gateways_side_by_side_see_each_others_runs(
    kafka: KafkaService, topics: None, tmp_path: Path, gateways: list[RunlakeProcess]
) -> None:
    from runlake import RunlakeClient
    from runlake.errors import NotFound

    uri = _kafka_uri(kafka.bootstrap_servers, "gateways")
    one = Gateway(uri, tmp_path / "artifacts").start()
    gateways.append(one)
    two = Gateway(uri, tmp_path / "artifacts", ["--no-coordinator"]).start()
    gateways.append(two)

    a, b = RunlakeClient(one.uri), RunlakeClient(two.uri)
    run_a = a.create_run("0").info.run_id
    a.log_param(run_a, "lr", "0.1")
    a.flush()
    run_b = b.create_run("0").info.run_id  # experiment "0" came to `two` through the log
    b.flush()

    def logs_to(client: RunlakeClient, run_id: str) -> bool:
        try:
            client.log_metric(run_id, "loss", 0.5, step=1)
            client.flush()
            return True
        except NotFound:
            return False

    t0 = time.monotonic()
    wait_for(lambda: logs_to(b, run_a), 10, "gateway two to know gateway one's run")
    wait_for(lambda: logs_to(a, run_b), 10, "gateway one to know gateway two's run")
    seen_in = time.monotonic() - t0
    assert seen_in < 10

    # Write-once params hold across gateways: `two` refuses a different value for lr.
    from runlake.errors import RunlakeError

    with pytest.raises(RunlakeError, match="lr"):
        b.log_param(run_a, "lr", "0.2")
        b.flush()

    # The registry and new experiments go through the coordinator only.
    stub = gateway_pb2_grpc.GatewayStub(grpc.insecure_channel(f"127.0.0.1:{two.port}"))
    with pytest.raises(grpc.RpcError) as err:
        stub.CreateExperiment(gateway_pb2.CreateExperimentRequest(name="x"), timeout=10)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "coordinator" in (err.value.details() or "")


# -- failures: a broker of our own ------------------------------------------------------


@pytest.fixture
def own_kafka(cluster_installed: None, tmp_path: Path) -> Iterator[KafkaService]:
    service = KafkaService(
        tmp_path / "kafka",
        port=free_port(),
        controller_port=free_port(),
        topics=("own.events", "own.registry"),
        partitions=PARTITIONS,
    )
    try:
        service.start()
        yield service
    finally:
        service.stop()


def test_broker_restart_loses_nothing_acknowledged_and_outage_answers_unavailable(
    own_kafka: KafkaService, tmp_path: Path, gateways: list[RunlakeProcess]
) -> None:
    from runlake import RunlakeClient

    bound_s = 2.0  # the gateway's --timeout-ms
    gw = Gateway(
        _kafka_uri(own_kafka.bootstrap_servers, "own"),
        tmp_path / "artifacts",
        ["--timeout-ms", str(int(bound_s * 1000))],
    ).start()
    gateways.append(gw)
    client = RunlakeClient(gw.uri)
    run_id = client.create_run("0").info.run_id
    client.flush()

    stop = threading.Event()
    logged = [0]
    errors: list[BaseException] = []

    def log_steadily() -> None:
        try:
            while not stop.is_set():
                for _ in range(20):
                    client.log_metric(run_id, "m", float(logged[0]), step=logged[0])
                    logged[0] += 1
                client.flush()  # retries through the outage (UNAVAILABLE is retryable)
                time.sleep(0.05)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    writer = threading.Thread(target=log_steadily, daemon=True)
    writer.start()
    time.sleep(1.0)
    own_kafka.stop()

    # While the broker is down a write is refused within the bound, never left hanging.
    stub = gateway_pb2_grpc.GatewayStub(grpc.insecure_channel(f"127.0.0.1:{gw.port}"))
    ev = events_pb2.Event(
        tags_set=events_pb2.TagsSet(run_id=run_id, tags=[events_pb2.KeyValue(key="k", value="v")])
    )
    for i in range(3):
        t0 = time.monotonic()
        with pytest.raises(grpc.RpcError) as err:
            stub.Write(gateway_pb2.WriteRequest(batch_id=f"down-{i}", events=[ev]), timeout=30)
        took = time.monotonic() - t0
        assert err.value.code() in (
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
        ), err.value
        assert took < bound_s + 3.0, f"answered after {took:.1f} s"

    own_kafka.start()
    time.sleep(2.0)
    stop.set()
    writer.join(120)
    assert not writer.is_alive(), "the client did not get through after the restart"
    assert errors == []
    client.flush()

    # Every point the client had acknowledged is in the topic, none twice.
    from confluent_kafka import Consumer, TopicPartition
    from runlake.v1 import events_pb2 as pb

    consumer = Consumer(
        {
            "bootstrap.servers": own_kafka.bootstrap_servers,
            "group.id": f"count-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    steps: list[int] = []
    batch_ids: list[str] = []
    try:
        parts = consumer.list_topics("own.events", timeout=10).topics["own.events"].partitions
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition("own.events", p), timeout=10)[1]
            for p in parts
        }
        consumer.assign([TopicPartition("own.events", p, 0) for p in parts])
        read = dict.fromkeys(parts, 0)
        deadline = time.monotonic() + 30
        while any(read[p] < ends[p] for p in parts):
            assert time.monotonic() < deadline
            for msg in consumer.consume(500, 0.5):
                if msg.error():
                    continue
                read[msg.partition()] = msg.offset() + 1
                batch = pb.LoggedBatch.FromString(msg.value())
                batch_ids.append(batch.meta.batch_id)
                for e in batch.events:
                    if e.WhichOneof("body") == "metrics_logged":
                        steps.extend(_steps(e.metrics_logged))
    finally:
        consumer.close()
    assert len(batch_ids) == len(set(batch_ids)), "a batch id appears twice in the log"
    assert sorted(steps) == list(range(logged[0]))


def _steps(m: events_pb2.MetricsLogged) -> list[int]:
    """The steps of a columnar metrics event (packed little-endian int64)."""
    import numpy as np

    return [int(s) for s in np.frombuffer(m.points.steps, dtype="<i8")]
