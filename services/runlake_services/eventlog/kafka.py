"""The scale-out event log: Apache Kafka, one message per accepted batch.

``kafka://HOST:PORT/<topic>[?registry_topic=…&catalog=…&timeout_ms=…&coordinator=…]``.
Tracking batches go to ``<topic>`` keyed by their first run id (per-run order); registry
batches go to ``registry_topic`` (default ``runlake.registry``) keyed by model id (per-
model order). The message value is the serialized ``LoggedBatch`` exactly as the SQLite
log stores it; headers carry the batch id and the catalog changes the batch makes.

**Durable before acknowledged.** An idempotent producer with ``acks=all``; :meth:`append`
returns only from the delivery report, and turns a report that does not come within
``timeout_ms`` (``message.timeout.ms``) into :class:`~runlake.errors.Unavailable`. After a
failure the log answers UNAVAILABLE at once for a second and then probes the broker, so a
dead broker costs each request at most about one timeout, never a hang. The producer's
queue is bounded (``queue.buffering.max.kbytes``); a full queue answers RESOURCE_EXHAUSTED.

**Catalog.** Each gateway keeps its own SQLite catalog (:class:`TailedCatalog`, the same
tables and reads as the embedded log) and tails both topics from where it stopped,
applying every accepted batch's changes — its own at once, other gateways' as they
arrive. Batch-id idempotency across gateways goes through the same table. See
docs/decisions/0012-kafka-event-log.md for the multi-gateway rules.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from runlake.errors import Conflict, InvalidArgument, ResourceExhausted, Unavailable
from runlake.positions import Vector, format_vector, later, parse_vector
from runlake.v1 import events_pb2

from runlake_services.eventlog.base import (
    ExperimentState,
    ModelState,
    RunState,
    StateChanges,
    VersionState,
)
from runlake_services.eventlog.sqlite_catalog import SqliteCatalog, apply_changes

__all__ = [
    "DEFAULT_REGISTRY_TOPIC",
    "KafkaAppended",
    "KafkaEventLog",
    "KafkaSettings",
    "TailedCatalog",
    "decode_changes",
    "encode_changes",
]

log = logging.getLogger(__name__)

DEFAULT_REGISTRY_TOPIC = "runlake.registry"
HEADER_BATCH_ID = "runlake-batch-id"
HEADER_CHANGES = "runlake-changes"
#: Event kinds that go to the registry topic (``gateway.registry.REGISTRY_KINDS``, by
#: prefix: the log must not import the gateway that imports it).
_REGISTRY_PREFIXES = ("registered_model_", "model_version_", "model_alias_")
#: Writes that need a catalog-wide uniqueness check (names, version numbers): only the
#: coordinator gateway takes them (docs/decisions/0012).
_COORDINATED_KINDS = frozenset({"experiment_created", "experiment_renamed"})
#: librdkafka logs every failed reconnect at error level; broker outages reach us through
#: delivery reports and ``error_cb`` instead, so only its critical lines are kept.
_QUIET: dict[str, Any] = {"log_level": 2, "logger": logging.getLogger(__name__ + ".librdkafka")}
#: After a failed delivery, answer UNAVAILABLE without trying for this long.
_DOWN_WINDOW_S = 1.0


@dataclass(frozen=True)
class KafkaSettings:
    """Where and how the Kafka log writes; every field can be given in the URI's query."""

    bootstrap_servers: str
    topic: str
    registry_topic: str = DEFAULT_REGISTRY_TOPIC
    #: The gateway-local catalog file; None: a temporary one, rebuilt from the topics.
    catalog_path: str | None = None
    #: Bound on one append (``message.timeout.ms``): then UNAVAILABLE.
    timeout_ms: int = 5_000
    #: Producer memory bound (``queue.buffering.max.kbytes``): beyond, RESOURCE_EXHAUSTED.
    queue_max_kbytes: int = 64 * 1024
    #: Largest message the producer sends; the topics' ``max.message.bytes`` must allow it.
    max_message_bytes: int = 20 * 1024 * 1024
    #: Whether this gateway takes registry writes and experiment creation/renames.
    coordinator: bool = True
    #: How long :meth:`KafkaEventLog.start` waits to catch up with the topics.
    catch_up_timeout_s: float = 60.0

    @classmethod
    def from_uri(cls, uri: str) -> KafkaSettings:
        parsed = urlparse(uri)
        topic = parsed.path.strip("/")
        if not parsed.netloc or not topic or "/" in topic:
            raise InvalidArgument(
                f"{uri!r}: expected kafka://HOST:PORT/<topic>[?registry_topic=…]",
                field="log_uri",
            )
        query = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
        known = {"registry_topic", "catalog", "timeout_ms", "queue_max_kbytes", "coordinator"}
        unknown = set(query) - known
        if unknown:
            raise InvalidArgument(
                f"{uri!r}: unknown option(s) {sorted(unknown)}; valid: {sorted(known)}",
                field="log_uri",
            )
        try:
            return cls(
                bootstrap_servers=parsed.netloc,
                topic=topic,
                registry_topic=query.get("registry_topic", DEFAULT_REGISTRY_TOPIC),
                catalog_path=query.get("catalog"),
                timeout_ms=int(query.get("timeout_ms", 5_000)),
                queue_max_kbytes=int(query.get("queue_max_kbytes", 64 * 1024)),
                coordinator=query.get("coordinator", "true").lower() in ("1", "true", "yes"),
            )
        except ValueError as exc:
            raise InvalidArgument(f"{uri!r}: {exc}", field="log_uri") from None


@dataclass(frozen=True)
class KafkaAppended:
    """Like :class:`~runlake_services.eventlog.base.Appended`, with a vector token."""

    position: str
    duplicate: bool


# -- the catalog changes a batch makes, carried in a header --------------------------


def encode_changes(changes: StateChanges) -> bytes:
    """Compact JSON of ``changes``: what another gateway applies to its catalog."""
    doc: dict[str, list[list[Any]]] = {}
    if changes.experiments:
        doc["e"] = [
            [e.experiment_id, e.name, e.lifecycle_stage, e.artifact_location]
            for e in changes.experiments.values()
        ]
    if changes.runs:
        doc["r"] = [
            [r.run_id, r.experiment_id, r.status, r.lifecycle_stage] for r in changes.runs.values()
        ]
    if changes.params:
        doc["p"] = [[run, key, value] for (run, key), value in changes.params.items()]
    if changes.models:
        doc["m"] = [
            [m.model_id, m.name, m.lifecycle_stage, m.last_version] for m in changes.models.values()
        ]
    if changes.versions:
        doc["v"] = [
            [v.model_id, v.version, v.stage, v.lifecycle_stage] for v in changes.versions.values()
        ]
    if changes.aliases:
        doc["a"] = [[mid, alias, version] for (mid, alias), version in changes.aliases.items()]
    return json.dumps(doc, separators=(",", ":")).encode()


def decode_changes(data: bytes) -> StateChanges:
    doc = json.loads(data) if data else {}
    return StateChanges(
        experiments={r[0]: ExperimentState(*r) for r in doc.get("e", [])},
        runs={r[0]: RunState(*r) for r in doc.get("r", [])},
        params={(r[0], r[1]): r[2] for r in doc.get("p", [])},
        models={r[0]: ModelState(*r) for r in doc.get("m", [])},
        versions={
            (r[0], int(r[1])): VersionState(r[0], int(r[1]), r[2], r[3]) for r in doc.get("v", [])
        },
        aliases={(r[0], r[1]): (None if r[2] is None else int(r[2])) for r in doc.get("a", [])},
    )


# -- the gateway-local catalog --------------------------------------------------------

_TAIL_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    batch_id TEXT PRIMARY KEY,
    position TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS offsets (
    topic       TEXT NOT NULL,
    partition   INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class TailedRecord:
    """One consumed message, as the catalog needs it."""

    topic: str
    partition: int
    offset: int
    batch_id: str
    changes: bytes


class TailedCatalog(SqliteCatalog):
    """The catalog as the log says, plus which batch ids it holds and where it has read.

    Changes apply *first wins* (a param, an experiment name): the log order is the truth
    when two gateways accepted conflicting writes within the tailing lag. A batch id seen
    before (this gateway's own append, or a duplicate message after an ambiguous timeout)
    applies nothing a second time.
    """

    def __init__(self, path: str | Path) -> None:
        super().__init__(path, extra_schema=_TAIL_SCHEMA)

    def known(self, batch_id: str) -> str | None:
        row = (
            self._reader()
            .execute("SELECT position FROM batches WHERE batch_id = ?", (batch_id,))
            .fetchone()
        )
        return str(row[0]) if row else None

    def offsets(self) -> dict[tuple[str, int], int]:
        rows = self._reader().execute("SELECT topic, partition, next_offset FROM offsets")
        return {(str(t), int(p)): int(o) for t, p, o in rows}

    def record_own(self, batch_id: str, position: str, changes: StateChanges) -> None:
        """A batch this gateway appended (delivery confirmed): its changes, at once."""
        with self._write_lock:
            con = self._write
            con.execute("BEGIN IMMEDIATE")
            try:
                cur = con.execute(
                    "INSERT OR IGNORE INTO batches (batch_id, position) VALUES (?, ?)",
                    (batch_id, position),
                )
                if cur.rowcount and changes:
                    apply_changes(con, changes, first_wins=True)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        if changes.runs:
            self._remember(changes.runs.values())

    def apply_tailed(self, records: Sequence[TailedRecord]) -> None:
        """Consumed messages, in partition order: their changes and the new offsets."""
        runs: list[RunState] = []
        ends: dict[tuple[str, int], int] = {}
        with self._write_lock:
            con = self._write
            con.execute("BEGIN IMMEDIATE")
            try:
                for rec in records:
                    ends[(rec.topic, rec.partition)] = rec.offset + 1
                    token = format_vector({(rec.topic, rec.partition): rec.offset})
                    cur = con.execute(
                        "INSERT OR IGNORE INTO batches (batch_id, position) VALUES (?, ?)",
                        (rec.batch_id, token),
                    )
                    if not cur.rowcount:
                        continue  # applied already (own append, or a duplicate message)
                    changes = decode_changes(rec.changes)
                    if changes:
                        apply_changes(con, changes, first_wins=True)
                        runs.extend(changes.runs.values())
                con.executemany(
                    "INSERT INTO offsets (topic, partition, next_offset) VALUES (?, ?, ?)"
                    " ON CONFLICT (topic, partition) DO UPDATE SET"
                    " next_offset = max(next_offset, excluded.next_offset)",
                    [(t, p, o) for (t, p), o in ends.items()],
                )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        if runs:
            # Write-through: a cached older state must not outlive the tailed one.
            self._remember(runs)


# -- the log ------------------------------------------------------------------------------


@dataclass
class _Delivery:
    done: threading.Event = field(default_factory=threading.Event)
    error: KafkaError | None = None
    partition: int = -1
    offset: int = -1

    def __call__(self, err: KafkaError | None, msg: Message) -> None:
        self.error = err
        if err is None:
            self.partition = int(msg.partition() or 0)
            self.offset = int(msg.offset() or 0)
        self.done.set()


def _raw(value: str | bytes | None) -> bytes:
    if value is None:
        return b""
    return value.encode() if isinstance(value, str) else bytes(value)


def _text(value: str | bytes) -> str:
    return value if isinstance(value, str) else bytes(value).decode()


def _route(payload: bytes) -> tuple[bool, str, set[str]]:
    """(is a registry batch, the message key, the event kinds) of a serialized batch."""
    batch = events_pb2.LoggedBatch.FromString(payload)
    kinds: set[str] = set()
    key = ""
    registry = False
    for i, ev in enumerate(batch.events):
        kind = ev.WhichOneof("body") or ""
        kinds.add(kind)
        body = getattr(ev, kind) if kind else None
        if i == 0:
            registry = kind.startswith(_REGISTRY_PREFIXES)
        if not key and body is not None:
            name = "model_id" if registry else "run_id"
            key = str(getattr(body, name, "") or "")
            if not key and not registry:
                key = str(getattr(body, "experiment_id", "") or "")
    return registry, key or batch.meta.batch_id, kinds


class KafkaEventLog:
    """EventLog over Kafka topics, with a gateway-local :class:`TailedCatalog`."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        catalog_path = settings.catalog_path
        if catalog_path is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="runlake-catalog-")
            catalog_path = str(Path(self._tmp.name) / "catalog.db")
        self._catalog = TailedCatalog(catalog_path)
        self._timeout_s = settings.timeout_ms / 1000
        self._frontier: Vector = {}
        self._frontier_lock = threading.Lock()
        self._down_until = 0.0
        self._fatal = False
        self._stop = threading.Event()
        self._producer_lock = threading.Lock()
        self._producer = self._new_producer()
        self._poller = threading.Thread(target=self._poll, name="runlake-kafka-poll", daemon=True)
        self._poller.start()
        self._consumer: Consumer | None = None
        self._tailer: threading.Thread | None = None
        self._targets: dict[tuple[str, int], int] = {}
        self._caught_up = threading.Event()
        self._assigned: list[tuple[str, int]] = []
        self._meta: Consumer | None = None
        self._meta_lock = threading.Lock()

    @classmethod
    def from_uri(cls, uri: str) -> KafkaEventLog:
        return cls(KafkaSettings.from_uri(uri)).start()

    # -- producer --

    def _producer_config(self) -> dict[str, Any]:
        s = self.settings
        return {
            "bootstrap.servers": s.bootstrap_servers,
            "client.id": "runlake-gateway",
            "enable.idempotence": True,
            "acks": "all",
            "message.timeout.ms": s.timeout_ms,
            # Appends are serialised by the gateway's validation lock: waiting to batch
            # would only add latency.
            "linger.ms": 0,
            "compression.type": "lz4",
            "queue.buffering.max.kbytes": s.queue_max_kbytes,
            "queue.buffering.max.messages": 100_000,
            "message.max.bytes": s.max_message_bytes,
            "reconnect.backoff.max.ms": 1_000,
            "error_cb": self._on_error,
            **_QUIET,
        }

    def _new_producer(self) -> Producer:
        return Producer(self._producer_config())

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            log.error("kafka producer: fatal error, will recreate the producer: %s", err)
            self._fatal = True
        elif err.code() == KafkaError._ALL_BROKERS_DOWN:
            log.warning("kafka: %s", err)

    def _poll(self) -> None:
        """Serve delivery reports: :meth:`append` waits on them."""
        while not self._stop.is_set():
            with self._producer_lock:
                producer = self._producer
            producer.poll(0.05)

    def _unavailable(self, why: str) -> Unavailable:
        self._down_until = time.monotonic() + _DOWN_WINDOW_S
        return Unavailable(
            f"the event log (Kafka at {self.settings.bootstrap_servers}) is unavailable: {why};"
            " nothing was written, retry in 1 s",
            field="events",
        )

    def _check_available(self) -> None:
        """Fail fast while Kafka is known down; after the window, one bounded probe."""
        if self._fatal:
            # An idempotent producer that hit a fatal error (e.g. a fenced producer id)
            # accepts nothing more; a new one gets a new producer id.
            with self._producer_lock:
                if self._fatal:
                    self._producer.flush(0)
                    self._producer = self._new_producer()
                    self._fatal = False
        if not self._down_until:
            return
        if time.monotonic() < self._down_until:
            raise Unavailable(
                f"the event log (Kafka at {self.settings.bootstrap_servers}) is unavailable;"
                " retry in 1 s",
                field="events",
            )
        try:
            self._producer.list_topics(self.settings.topic, timeout=min(1.0, self._timeout_s))
        except KafkaException as exc:
            raise self._unavailable(f"no broker answers ({exc})") from None
        self._down_until = 0.0

    # -- EventLog --

    @property
    def catalog(self) -> TailedCatalog:
        return self._catalog

    def find(self, batch_id: str) -> str | None:
        return self._catalog.known(batch_id)

    def append(self, batch_id: str, payload: bytes, changes: StateChanges) -> KafkaAppended:
        known = self._catalog.known(batch_id)
        if known is not None:
            return KafkaAppended(known, duplicate=True)
        registry, key, kinds = _route(payload)
        if not self.settings.coordinator and (registry or kinds & _COORDINATED_KINDS):
            raise Conflict(
                "this gateway is not the coordinator: registry writes and experiment"
                " creation/renames go to the coordinator gateway (docs/decisions/0012)",
                field="events",
            )
        topic = self.settings.registry_topic if registry else self.settings.topic
        self._check_available()
        delivery = _Delivery()
        headers: list[tuple[str, str | bytes | None]] = [
            (HEADER_BATCH_ID, batch_id.encode()),
            (HEADER_CHANGES, encode_changes(changes)),
        ]
        try:
            self._producer.produce(
                topic, value=payload, key=key.encode(), headers=headers, on_delivery=delivery
            )
        except BufferError:
            raise ResourceExhausted(
                f"the gateway's Kafka queue is full ({self.settings.queue_max_kbytes} KiB"
                " waiting for the broker); retry in 1 s",
                field="events",
            ) from None
        except KafkaException as exc:
            raise self._produce_error(exc.args[0] if exc.args else None, len(payload)) from None
        # The delivery report comes within message.timeout.ms; the margin covers polling.
        if not delivery.done.wait(self._timeout_s + 2.0):
            raise self._unavailable(f"no delivery report in {self._timeout_s + 2.0:.0f} s")
        if delivery.error is not None:
            raise self._produce_error(delivery.error, len(payload))
        self._down_until = 0.0
        here = format_vector({(topic, delivery.partition): delivery.offset})
        self._catalog.record_own(batch_id, here, changes)
        return KafkaAppended(self._advance({(topic, delivery.partition): delivery.offset}), False)

    def _produce_error(self, err: Any, size: int) -> Exception:
        code = err.code() if isinstance(err, KafkaError) else None
        if code in (KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_MSG_SIZE):
            return InvalidArgument(
                f"the batch is {size} bytes, more than the topic accepts (max.message.bytes);"
                " send smaller batches",
                field="events",
            )
        if code == KafkaError._QUEUE_FULL:
            return ResourceExhausted(
                "the gateway's Kafka queue is full; retry in 1 s", field="events"
            )
        if isinstance(err, KafkaError) and err.fatal():
            self._fatal = True
        return self._unavailable(str(err))

    def _advance(self, seen: Vector) -> str:
        """Merge ``seen`` into what this log knows is durable; the cumulative token."""
        with self._frontier_lock:
            for tp, offset in seen.items():
                if offset > self._frontier.get(tp, -1):
                    self._frontier[tp] = offset
            return format_vector(self._frontier)

    def end_position(self) -> str:
        """Everything this gateway knows to be in the log (its appends and what it tailed)."""
        with self._frontier_lock:
            return format_vector(self._frontier)

    def log_end(self) -> str:
        """Everything in the log now, whoever wrote it: the partitions' high watermarks.

        What ``sync`` needs: a write acknowledged by any gateway is below its partition's
        high watermark, while this gateway's own frontier may not have tailed it yet. One
        broker round trip per partition; on failure, the frontier (a lower bound).
        """
        vector: Vector = {}
        try:
            with self._meta_lock:
                if self._meta is None:
                    self._meta = Consumer(self._consumer_config())
                for topic, partition in self._assigned:
                    _, high = self._meta.get_watermark_offsets(
                        TopicPartition(topic, partition), timeout=self._timeout_s, cached=False
                    )
                    if high > 0:
                        vector[(topic, partition)] = high - 1
        except (KafkaException, RuntimeError) as exc:
            log.warning("high watermarks unavailable (%s); answering the tailed frontier", exc)
            return self.end_position()
        return later(self.end_position(), format_vector(vector))

    def read(self, after: int, *, max_records: int, max_bytes: int) -> list[Any]:
        """Not offered: the compactor consumes Kafka itself (docs/decisions/0012)."""
        raise NotImplementedError(
            "the Kafka log is read by the Spark compactor's Kafka source, not through read()"
        )

    def payload_of(self, batch_id: str) -> bytes | None:
        """The stored payload of an appended batch (e.g. a retried CreateModelVersion)."""
        token = self._catalog.known(batch_id)
        if token is None:
            return None
        ((topic, partition), offset), *_ = parse_vector(token).items()
        consumer = Consumer(self._consumer_config())
        try:
            consumer.assign([TopicPartition(topic, partition, offset)])
            deadline = time.monotonic() + self._timeout_s
            while time.monotonic() < deadline:
                msg = consumer.poll(0.2)
                if msg is None or msg.error():
                    continue
                if msg.offset() == offset:
                    value = msg.value()
                    return bytes(value) if value is not None else None
            raise Unavailable(f"could not read {token} from Kafka in {self._timeout_s} s")
        finally:
            consumer.close()

    # -- the tail --

    def _consumer_config(self) -> dict[str, Any]:
        return {
            "bootstrap.servers": self.settings.bootstrap_servers,
            # Offsets live in the catalog, never in a group: the group id is only required.
            "group.id": f"runlake-gateway-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "fetch.wait.max.ms": 100,
            "reconnect.backoff.max.ms": 1_000,
            **_QUIET,
        }

    def start(self) -> KafkaEventLog:
        """Assign every partition of both topics, catch up, then keep tailing."""
        consumer = Consumer(self._consumer_config())
        try:
            partitions = self._partitions(consumer)
        except BaseException:
            consumer.close()
            raise
        stored = self._catalog.offsets()
        self._assigned = list(partitions)
        assignment = []
        for tp in partitions:
            start = stored.get(tp, OFFSET_BEGINNING)
            assignment.append(TopicPartition(tp[0], tp[1], start))
            if tp in stored:
                self._frontier[tp] = stored[tp] - 1
            _, high = consumer.get_watermark_offsets(
                TopicPartition(*tp), timeout=self._timeout_s, cached=False
            )
            if high > stored.get(tp, 0):
                self._targets[tp] = high
        consumer.assign(assignment)
        self._consumer = consumer
        if not self._targets:
            self._caught_up.set()
        self._tailer = threading.Thread(target=self._tail, name="runlake-kafka-tail", daemon=True)
        self._tailer.start()
        if not self._caught_up.wait(self.settings.catch_up_timeout_s):
            self.close()
            raise Unavailable(
                f"did not catch up with {self.settings.topic} and {self.settings.registry_topic}"
                f" in {self.settings.catch_up_timeout_s} s"
            )
        return self

    def _partitions(self, consumer: Consumer) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        for topic in (self.settings.topic, self.settings.registry_topic):
            try:
                meta = consumer.list_topics(topic, timeout=self._timeout_s)
            except KafkaException as exc:
                raise Unavailable(
                    f"cannot reach Kafka at {self.settings.bootstrap_servers}: {exc}"
                ) from None
            info = meta.topics.get(topic)
            if info is None or info.error is not None or not info.partitions:
                raise Unavailable(
                    f"topic {topic!r} does not exist on {self.settings.bootstrap_servers};"
                    " create it first (scripts/kafka.sh start --topics …)"
                )
            out.extend((topic, p) for p in sorted(info.partitions))
        return out

    def _tail(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while not self._stop.is_set():
            try:
                messages = consumer.consume(500, 0.2)
            except RuntimeError:  # closed under us at shutdown
                return
            records = list(self._records(messages))
            if records:
                self._catalog.apply_tailed(records)
                self._advance({(r.topic, r.partition): r.offset for r in records})
            if not self._caught_up.is_set():
                self._check_caught_up()

    @staticmethod
    def _records(messages: Iterable[Message]) -> Iterable[TailedRecord]:
        for msg in messages:
            err = msg.error()
            if err is not None:
                if err.code() not in (KafkaError._PARTITION_EOF, KafkaError._TRANSPORT):
                    log.warning("kafka tail: %s", err)
                continue
            headers = dict(msg.headers() or [])
            batch_id = headers.get(HEADER_BATCH_ID)
            if batch_id is None:
                log.warning("kafka tail: message without a batch id at %s", msg.offset())
                continue
            yield TailedRecord(
                str(msg.topic()),
                int(msg.partition() or 0),
                int(msg.offset() or 0),
                _text(batch_id),
                _raw(headers.get(HEADER_CHANGES)),
            )

    def _check_caught_up(self) -> None:
        reached = self._catalog.offsets()
        if all(reached.get(tp, 0) >= high for tp, high in self._targets.items()):
            self._caught_up.set()

    def catch_up(self, timeout_s: float = 5.0) -> bool:
        """Wait until this gateway's catalog has tailed everything in the log now."""
        return self.wait_for(self.log_end(), timeout_s)

    def wait_for(self, token: str, timeout_s: float) -> bool:
        """Whether this gateway's catalog reaches ``token`` (e.g. another gateway's write)."""
        wanted = parse_vector(token)
        deadline = time.monotonic() + timeout_s
        while True:
            with self._frontier_lock:
                if all(self._frontier.get(tp, -1) >= o for tp, o in wanted.items()):
                    return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)

    def close(self) -> None:
        self._stop.set()
        if self._tailer is not None:
            self._tailer.join(5)
        if self._consumer is not None:
            with contextlib.suppress(RuntimeError, KafkaException):
                self._consumer.close()
        self._poller.join(5)
        with self._meta_lock:
            if self._meta is not None:
                with contextlib.suppress(RuntimeError, KafkaException):
                    self._meta.close()
                self._meta = None
        # Messages still queued were never acknowledged: dropping them loses nothing promised.
        self._producer.flush(0)
        self._catalog.close()
        if self._tmp is not None:
            self._tmp.cleanup()
