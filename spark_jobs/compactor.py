"""The scale-out compactor: Kafka → the one Python fold → Delta on S3, exactly once.

A Structured Streaming query reads the event topics (``runlake.events`` and
``runlake.registry``; each message value is a serialized ``runlake.v1.LoggedBatch``) and,
in ``foreachBatch``, for every micro-batch:

1. collects the micro-batch's ``(topic, partition, offset, value)`` to the driver as Arrow
   and orders it by (topic, partition, offset). A run's (a registered model's) events share
   a Kafka key, hence one partition, so this order is each key's log order;
2. drops repeated batch ids (an ambiguous producer timeout can log one batch twice;
   docs/decisions/0012: keep the first by partition order) and runs the **same** pure
   ``runlake_services.fold.fold`` the embedded compactor runs;
3. applies each table's rows with delta-spark by the rules of ``TABLES`` (APPEND = append;
   COALESCE/UPSERT/LATEST = MERGE with the predicates of ``tables/delta_sink.py``), every
   commit carrying the Delta app transaction ``(<job id>/<table>, <micro-batch id>)``. A
   micro-batch replayed after a crash (Spark re-runs it with the same id and offsets) is
   skipped by every table that already committed it, so nothing is doubled or lost;
   ``events`` is committed last, as in decision 0004;
4. publishes how far it has folded (``<tables>/_runlake/progress``, see :data:`PROGRESS_SCHEMA`)
   and compacts small files every ``optimize_every`` micro-batches.

The fold runs on the driver: a micro-batch is bounded by ``maxOffsetsPerTrigger``, decoding
plus folding costs far less than the Delta commits that follow (measured in
docs/decisions/0013-spark-compactor.md), and one fold over the whole micro-batch gives each
upsert table one row per key even for the rare batch whose runs span partitions.

Positions. The tables' ``position`` columns (events, metrics, artifacts) are int64 in the
shared schema; a Kafka position is (topic, partition, offset). :func:`encode_position`
packs it losslessly (topic slot = index in the job's topic list), so ``(position,
event_index)`` stays a unique key and positions sort in each partition's log order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from runlake.positions import Vector, format_vector
from runlake.v1 import events_pb2
from runlake_services.fold import fold
from runlake_services.tables.delta_sink import _latest_predicate
from runlake_services.tables.schema import TABLES, FoldResult, MergeMode, TableSpec

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming.query import StreamingQuery

__all__ = [
    "DEFAULT_TOPICS",
    "PROGRESS_SCHEMA",
    "PROGRESS_TABLE",
    "CompactorConfig",
    "FoldedBatch",
    "SparkCompactor",
    "decode_position",
    "encode_position",
    "fold_kafka_records",
    "read_progress",
]

log = logging.getLogger(__name__)

DEFAULT_TOPICS: tuple[str, ...] = ("runlake.events", "runlake.registry")
#: Relative to the tables root: the folded offsets, one row per topic-partition.
PROGRESS_TABLE = "_runlake/progress"
#: ``offset`` is the last offset folded (inclusive, like runlake.positions tokens);
#: ``batch_id`` the micro-batch that folded it; ``token`` the whole vector as a token.
PROGRESS_SCHEMA = pa.schema(
    [
        pa.field("topic", pa.string(), nullable=False),
        pa.field("partition", pa.int32(), nullable=False),
        pa.field("offset", pa.int64(), nullable=False),
        pa.field("batch_id", pa.int64(), nullable=False),
        pa.field("updated_at_ms", pa.int64(), nullable=False),
        pa.field("token", pa.string(), nullable=False),
    ]
)

_OFFSET_BITS = 40  # 1.1e12 messages per partition
_PARTITION_BITS = 12  # 4096 partitions per topic
_TOPIC_BITS = 11  # 2048 topics; 40 + 12 + 11 = 63 bits: always a positive int64

_TXN_APP_ID = "spark.databricks.delta.write.txnAppId"
_TXN_VERSION = "spark.databricks.delta.write.txnVersion"


def encode_position(topic_slot: int, partition: int, offset: int) -> int:
    """One int64 for a Kafka position: slot | partition | offset, high bits to low."""
    if not (0 <= topic_slot < 1 << _TOPIC_BITS and 0 <= partition < 1 << _PARTITION_BITS):
        raise ValueError(f"topic slot {topic_slot} / partition {partition} out of range")
    if not 0 <= offset < 1 << _OFFSET_BITS:
        raise ValueError(f"offset {offset} out of range")
    return (topic_slot << (_PARTITION_BITS + _OFFSET_BITS)) | (partition << _OFFSET_BITS) | offset


def decode_position(position: int) -> tuple[int, int, int]:
    """(topic slot, partition, offset) of an encoded position."""
    offset = position & ((1 << _OFFSET_BITS) - 1)
    partition = (position >> _OFFSET_BITS) & ((1 << _PARTITION_BITS) - 1)
    return position >> (_PARTITION_BITS + _OFFSET_BITS), partition, offset


@dataclass(frozen=True)
class FoldedBatch:
    """What one micro-batch contributes: the fold (None when nothing is left) and offsets."""

    result: FoldResult | None
    offsets: Vector  # (topic, partition) -> last offset seen (inclusive)
    records: int
    duplicates: int


def fold_kafka_records(rows: pa.Table, topics: Sequence[str]) -> FoldedBatch:
    """Order Kafka rows (topic, partition, offset, value) per partition, dedupe, fold.

    Pure: the same rows always give the same result, which is what makes a replayed
    micro-batch write exactly the rows it wrote the first time.
    """
    slots = {t: i for i, t in enumerate(topics)}
    topic = rows.column("topic").to_pylist()
    partition = rows.column("partition").to_pylist()
    offset = rows.column("offset").to_pylist()
    value = rows.column("value").to_pylist()
    unknown = set(topic) - slots.keys()
    if unknown:
        raise ValueError(f"records from topics {sorted(unknown)} not in {list(topics)}")
    order = sorted(range(len(topic)), key=lambda i: (slots[topic[i]], partition[i], offset[i]))
    offsets: Vector = {}
    seen: set[str] = set()
    records: list[tuple[int, events_pb2.LoggedBatch]] = []
    duplicates = 0
    for i in order:
        offsets[(topic[i], partition[i])] = offset[i]  # ascending: the last one stays
        batch = events_pb2.LoggedBatch()
        batch.ParseFromString(value[i])
        batch_id = batch.meta.batch_id
        if batch_id:
            if batch_id in seen:
                duplicates += 1
                continue
            seen.add(batch_id)
        records.append((encode_position(slots[topic[i]], partition[i], offset[i]), batch))
    result = fold(records) if records else None
    return FoldedBatch(result, offsets, len(records), duplicates)


@dataclass(frozen=True)
class CompactorConfig:
    """Where the job reads and writes, and how often (docs/decisions/0013)."""

    bootstrap_servers: str
    tables_uri: str  # s3a://runlake/tables
    checkpoint_uri: str  # s3a://runlake/checkpoints/compactor
    topics: tuple[str, ...] = DEFAULT_TOPICS  # order is part of the position encoding
    trigger_interval: str = "1 second"  # processingTime
    available_now: bool = False  # fold what is there, then stop (tests, backfills)
    max_offsets_per_trigger: int | None = 20_000
    optimize_every: int = 100  # micro-batches between OPTIMIZE runs; 0: never
    job_id: str = "runlake-spark-compactor"
    starting_offsets: str = "earliest"
    query_name: str | None = None
    kafka_options: Mapping[str, str] = field(default_factory=dict)

    def table_uri(self, name: str) -> str:
        return f"{self.tables_uri.rstrip('/')}/{name}"

    @property
    def progress_uri(self) -> str:
        return self.table_uri(PROGRESS_TABLE)

    def app_id(self, table: str) -> str:
        """The Delta app-transaction id of ``table``: stable across restarts of this job."""
        return f"{self.job_id}/{table}"


def _struct(schema: pa.Schema) -> Any:
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(schema)


def ensure_tables(spark: SparkSession, config: CompactorConfig) -> None:
    """Create every table (and the progress table) that does not exist yet, empty."""
    from delta.tables import DeltaTable

    specs = [(name, spec.schema, spec.doc) for name, spec in TABLES.items()]
    specs.append((PROGRESS_TABLE, PROGRESS_SCHEMA, "Offsets the compactor has folded."))
    for name, schema, doc in specs:
        (
            DeltaTable.createIfNotExists(spark)
            .location(config.table_uri(name))
            .addColumns(_struct(schema))
            .comment(doc)
            .execute()
        )


def read_progress(spark: SparkSession, config: CompactorConfig) -> Vector:
    """The folded offsets the progress table holds (empty before the first micro-batch)."""
    rows = spark.read.format("delta").load(config.progress_uri)
    rows = rows.select("topic", "partition", "offset")
    return {(r["topic"], int(r["partition"])): int(r["offset"]) for r in rows.collect()}


@contextmanager
def _session_txn(spark: SparkSession, app_id: str, version: int) -> Iterator[None]:
    """Delta's idempotent-DML session confs around one MERGE (they apply to MERGE too)."""
    spark.conf.set(_TXN_APP_ID, app_id)
    spark.conf.set(_TXN_VERSION, str(version))
    try:
        yield
    finally:
        spark.conf.unset(_TXN_APP_ID)
        spark.conf.unset(_TXN_VERSION)


def commit_table(
    spark: SparkSession, config: CompactorConfig, name: str, rows: pa.Table, batch_id: int
) -> None:
    """Apply one table's fold rows with the rule of delta_sink.py, exactly once per batch."""
    from delta.tables import DeltaTable

    spec = TABLES[name]
    uri = config.table_uri(name)
    app_id = config.app_id(name)
    if spec.mode is MergeMode.APPEND:
        src = spark.createDataFrame(rows.select(spec.schema.names).cast(spec.schema))
        (
            src.write.format("delta")
            .mode("append")
            .option("txnAppId", app_id)
            .option("txnVersion", batch_id)
            .save(uri)
        )
        return
    src = spark.createDataFrame(rows.cast(spec.fold_schema))
    merger = (
        DeltaTable.forPath(spark, uri)
        .alias("t")
        .merge(src.alias("s"), " AND ".join(f"t.{k} = s.{k}" for k in spec.keys))
    )
    merger = _merge_clauses(merger, spec)
    with _session_txn(spark, app_id, batch_id):
        merger.execute()


def _merge_clauses(merger: Any, spec: TableSpec) -> Any:
    stored = spec.schema.names
    everything = {c: f"s.{c}" for c in stored}
    if spec.mode is MergeMode.COALESCE:
        updates = {c: f"coalesce(s.{c}, t.{c})" for c in stored if c not in spec.keys}
        return merger.whenMatchedUpdate(set=updates).whenNotMatchedInsert(values=everything)
    if spec.mode is MergeMode.UPSERT:
        return (
            merger.whenMatchedDelete(condition="s.deleted")
            .whenMatchedUpdate(condition="NOT s.deleted", set=everything)
            .whenNotMatchedInsert(condition="NOT s.deleted", values=everything)
        )
    if spec.mode is MergeMode.LATEST:
        return merger.whenMatchedUpdate(
            condition=_latest_predicate(), set=everything
        ).whenNotMatchedInsert(values=everything)
    raise ValueError(f"{spec.name}: no MERGE for {spec.mode}")


@dataclass
class BatchStats:
    """Rough timings of the last micro-batch, for the logs and the decision record."""

    batch_id: int = -1
    records: int = 0
    duplicates: int = 0
    collect_s: float = 0.0
    fold_s: float = 0.0
    write_s: float = 0.0
    tables_committed: list[str] = field(default_factory=list)


class SparkCompactor:
    """The streaming query and its ``foreachBatch``; see the module docstring."""

    def __init__(self, spark: SparkSession, config: CompactorConfig) -> None:
        self._spark = spark
        self.config = config
        self.last = BatchStats()
        self.batches = 0
        self._folded: Vector | None = None  # loaded lazily from the progress table
        self._dirty: set[str] = set()  # tables committed since the last OPTIMIZE

    def source(self) -> DataFrame:
        c = self.config
        reader = (
            self._spark.readStream.format("kafka")
            .option("kafka.bootstrap.servers", c.bootstrap_servers)
            .option("subscribe", ",".join(c.topics))
            .option("startingOffsets", c.starting_offsets)
            # a gap in the log must stop the job, never be skipped silently
            .option("failOnDataLoss", "true")
        )
        if c.max_offsets_per_trigger:
            reader = reader.option("maxOffsetsPerTrigger", c.max_offsets_per_trigger)
        for key, value in c.kafka_options.items():
            reader = reader.option(key, value)
        return reader.load().select("topic", "partition", "offset", "value")

    def start(self) -> StreamingQuery:
        """Create the tables if needed and start the query (returns at once)."""
        c = self.config
        ensure_tables(self._spark, c)
        writer = (
            self.source()
            .writeStream.queryName(c.query_name or c.job_id)
            .option("checkpointLocation", c.checkpoint_uri)
            .foreachBatch(self.process_batch)
        )
        if c.available_now:
            writer = writer.trigger(availableNow=True)
        else:
            writer = writer.trigger(processingTime=c.trigger_interval)
        return writer.start()

    def process_batch(self, df: DataFrame, batch_id: int) -> None:
        """Fold one micro-batch and commit it; safe to run again with the same id."""
        spark = df.sparkSession
        stats = BatchStats(batch_id=batch_id)
        t0 = time.perf_counter()
        rows = df.select("topic", "partition", "offset", "value").toArrow()
        t1 = time.perf_counter()
        folded = fold_kafka_records(rows, self.config.topics)
        t2 = time.perf_counter()
        stats.records, stats.duplicates = folded.records, folded.duplicates
        if folded.result is not None:
            for name in TABLES:  # events is last: its commit marks the batch complete
                table_rows = folded.result.tables[name]
                if table_rows.num_rows:
                    commit_table(spark, self.config, name, table_rows, batch_id)
                    stats.tables_committed.append(name)
                    self._dirty.add(name)
        if folded.offsets:
            self._publish_progress(spark, folded.offsets, batch_id)
        stats.collect_s, stats.fold_s = t1 - t0, t2 - t1
        stats.write_s = time.perf_counter() - t2
        every = self.config.optimize_every
        if every and batch_id % every == every - 1:
            self._optimize(spark)
        self.last = stats
        self.batches += 1
        log.info(
            "batch %d: %d records (%d duplicates) collect %.3fs fold %.3fs write %.3fs",
            batch_id, stats.records, stats.duplicates, stats.collect_s, stats.fold_s,
            stats.write_s,
        )  # fmt: skip

    def _publish_progress(self, spark: SparkSession, offsets: Vector, batch_id: int) -> None:
        if self._folded is None:
            self._folded = read_progress(spark, self.config)
        vector = dict(self._folded)
        for key, offset in offsets.items():
            vector[key] = max(vector.get(key, -1), offset)
        token = format_vector(vector)
        now = int(time.time() * 1000)
        entries = sorted(vector.items())
        table = pa.table(
            {
                "topic": [t for (t, _), _ in entries],
                "partition": [p for (_, p), _ in entries],
                "offset": [o for _, o in entries],
                "batch_id": [batch_id] * len(entries),
                "updated_at_ms": [now] * len(entries),
                "token": [token] * len(entries),
            },
            schema=PROGRESS_SCHEMA,
        )
        (
            spark.createDataFrame(table)
            .write.format("delta")
            .mode("overwrite")
            .option("txnAppId", self.config.app_id("progress"))
            .option("txnVersion", batch_id)
            .save(self.config.progress_uri)
        )
        self._folded = vector

    def _optimize(self, spark: SparkSession) -> None:
        """Small-file compaction of the tables written since the last run (not a data change)."""
        from delta.tables import DeltaTable

        for name in sorted(self._dirty):  # not progress: each overwrite leaves one file
            DeltaTable.forPath(spark, self.config.table_uri(name)).optimize().executeCompaction()
        self._dirty.clear()
