"""The scale-out compactor: Kafka → the one Python fold → Delta on S3, exactly once.

A Structured Streaming query reads the event topics (``runlake.events`` and
``runlake.registry``; each message value is a serialized ``runlake.v1.LoggedBatch``) and,
in ``foreachBatch``, for every micro-batch:

1. collects the micro-batch's ``(topic, partition, offset, value)`` to the driver as Arrow
   and orders it by (topic, partition, offset). A run's (a registered model's) events share
   a Kafka key, hence one partition, so this order is each key's log order;
2. drops repeated batch ids — within the micro-batch and against the ids folded in the
   last ``dedupe_window_s`` (an ambiguous producer timeout can log one batch twice, and the
   retry may land in a later micro-batch; docs/decisions/0012: the first by log order
   wins) — and runs the **same** pure ``runlake_services.fold.fold`` the embedded
   compactor runs;
3. applies each table's rows by the rules of ``TABLES`` (APPEND = append;
   COALESCE/UPSERT/LATEST = MERGE with the predicates of ``tables/delta_sink.py``), with
   delta-rs from the driver (the default) or delta-spark (spark_jobs/writers.py), every
   commit carrying the Delta app transaction ``(<job id>/<table>, <micro-batch id>)``.
   Tables commit concurrently; ``events`` commits last, as in decision 0004, and carries
   the folded offsets (its commit's userMetadata). A
   micro-batch replayed after a crash (Spark re-runs it with the same id and offsets) is
   skipped by every table that already committed it, so nothing is doubled or lost;
4. compacts small files every ``optimize_every`` micro-batches.

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
from collections import OrderedDict
from collections.abc import Container, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa
from runlake.positions import Vector
from runlake.v1 import events_pb2
from runlake_services.fold import fold
from runlake_services.tables.folded import progress_metadata
from runlake_services.tables.schema import TABLES, FoldResult

from spark_jobs.writers import TableWriter, WriterKind, open_writer, tuned

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming.query import StreamingQuery

__all__ = [
    "DEFAULT_TOPICS",
    "CompactorConfig",
    "FoldedBatch",
    "RecentBatchIds",
    "SparkCompactor",
    "decode_position",
    "encode_position",
    "fold_kafka_records",
    "read_progress",
]

log = logging.getLogger(__name__)

DEFAULT_TOPICS: tuple[str, ...] = ("runlake.events", "runlake.registry")
_OFFSET_BITS = 40  # 1.1e12 messages per partition
_PARTITION_BITS = 12  # 4096 partitions per topic
_TOPIC_BITS = 11  # 2048 topics; 40 + 12 + 11 = 63 bits: always a positive int64


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
    batch_ids: list[str] = field(default_factory=list)  # the ids folded, in log order


def fold_kafka_records(
    rows: pa.Table, topics: Sequence[str], recent: Container[str] = frozenset()
) -> FoldedBatch:
    """Order Kafka rows (topic, partition, offset, value) per partition, dedupe, fold.

    A batch id seen earlier in the rows or in ``recent`` (ids folded by earlier
    micro-batches) is a duplicate and skipped. Pure: the same rows and ``recent`` always
    give the same result, which is what makes a replayed micro-batch write exactly the
    rows it wrote the first time.
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
            if batch_id in seen or batch_id in recent:
                duplicates += 1
                continue
            seen.add(batch_id)
        records.append((encode_position(slots[topic[i]], partition[i], offset[i]), batch))
    result = fold(records) if records else None
    folded_ids = [b.meta.batch_id for _, b in records if b.meta.batch_id]
    return FoldedBatch(result, offsets, len(records), duplicates, folded_ids)


class RecentBatchIds:
    """Batch ids folded in the last ``window_s`` seconds (by their gateway receive time).

    A retried batch reaches Kafka within seconds of the first copy (the producer's
    timeout, then the SDK's retry), so a window of minutes catches every duplicate while
    keeping memory bounded (~100 bytes an id). Seeded from the ``events`` table at start,
    so a restarted job dedupes exactly like the one before it.
    """

    def __init__(self, window_s: float) -> None:
        self.window_ms = int(window_s * 1000)
        self._ids: OrderedDict[str, int] = OrderedDict()

    def __contains__(self, batch_id: object) -> bool:
        return batch_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, batch_ids: Sequence[str], received_ms: int) -> None:
        for batch_id in batch_ids:
            self._ids[batch_id] = received_ms
            self._ids.move_to_end(batch_id)
        horizon = received_ms - self.window_ms
        while self._ids:
            oldest, at = next(iter(self._ids.items()))
            if at >= horizon:
                break
            del self._ids[oldest]

    def seed(self, writer: TableWriter) -> None:
        """The ids the ``events`` table holds from the last window (one filtered scan)."""
        horizon = int(time.time() * 1000) - self.window_ms
        for batch_id, at in writer.recent_batch_ids(horizon):
            self._ids[batch_id] = at


def read_progress(spark: SparkSession, config: CompactorConfig) -> Vector:
    """The Kafka offsets folded into the tables so far (inclusive; empty before any)."""
    return open_writer(config.writer, spark, config).folded()


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
    #: tables committed at once within a micro-batch (events always last, alone)
    commit_threads: int = 4
    #: how long a folded batch id is remembered to drop a later duplicate of it
    dedupe_window_s: float = 600.0
    job_id: str = "runlake-spark-compactor"
    #: who commits the fold's rows: delta-rs from the driver, or delta-spark (writers.py)
    writer: WriterKind = "delta-rs"
    #: RUNLAKE_S3_* settings for delta-rs (None: this process's environment)
    storage_env: Mapping[str, str] | None = field(default=None, repr=False)
    starting_offsets: str = "earliest"
    query_name: str | None = None
    kafka_options: Mapping[str, str] = field(default_factory=dict)

    def table_uri(self, name: str) -> str:
        return f"{self.tables_uri.rstrip('/')}/{name}"

    def app_id(self, table: str) -> str:
        """The Delta app-transaction id of ``table``: stable across restarts of this job."""
        return f"{self.job_id}/{table}"


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
    #: seconds each table's commit took (the micro-batch's cost is mostly these)
    table_s: dict[str, float] = field(default_factory=dict)


class SparkCompactor:
    """The streaming query and its ``foreachBatch``; see the module docstring."""

    def __init__(self, spark: SparkSession, config: CompactorConfig) -> None:
        self._spark = tuned(spark)
        self.config = config
        self.last = BatchStats()
        self.batches = 0
        self._folded: Vector | None = None  # loaded lazily from the events table
        self._recent = RecentBatchIds(config.dedupe_window_s)
        self._dirty: set[str] = set()  # tables committed since the last OPTIMIZE
        self.writer = open_writer(config.writer, self._spark, config)

    @property
    def spark(self) -> SparkSession:
        return self._spark

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
        self.writer.ensure_tables()
        self._recent.seed(self.writer)
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
        stats = BatchStats(batch_id=batch_id)
        t0 = time.perf_counter()
        rows = df.select("topic", "partition", "offset", "value").toArrow()
        t1 = time.perf_counter()
        folded = fold_kafka_records(rows, self.config.topics, self._recent)
        t2 = time.perf_counter()
        stats.records, stats.duplicates = folded.records, folded.duplicates
        if folded.offsets:
            self._commit_tables(folded, batch_id, stats)
            self._recent.add(folded.batch_ids, int(time.time() * 1000))
        stats.collect_s, stats.fold_s = t1 - t0, t2 - t1
        stats.write_s = time.perf_counter() - t2
        every = self.config.optimize_every
        if every and batch_id % every == every - 1:
            self._optimize()
        self.last = stats
        self.batches += 1
        log.info(
            "batch %d: %d records (%d duplicates) collect %.3fs fold %.3fs write %.3fs %s",
            batch_id, stats.records, stats.duplicates, stats.collect_s, stats.fold_s,
            stats.write_s, stats.table_s,
        )  # fmt: skip

    def _commit(self, name: str, rows: pa.Table, batch_id: int, metadata: str | None) -> None:
        """One table's commit (tests wrap it to fail between tables)."""
        self.writer.commit(name, rows, batch_id, user_metadata=metadata)

    def _commit_tables(self, folded: FoldedBatch, batch_id: int, stats: BatchStats) -> None:
        """Every table but ``events`` at once, then ``events``.

        A commit is mostly waiting (Delta log reads and writes, job scheduling), so
        concurrent commits of different tables overlap well even on two cores. ``events``
        marks the micro-batch complete (decision 0004) and carries the folded offsets, so
        it starts only once every other table has committed; any failure leaves it
        uncommitted and fails the batch. It is committed even when it has no rows (a
        micro-batch of duplicates only), so the published offsets always advance.
        """
        result = folded.result
        tables = result.tables if result is not None else {}
        names = [n for n in TABLES if n != "events" and n in tables and tables[n].num_rows]

        def commit(name: str, rows: pa.Table, metadata: str | None = None) -> None:
            t = time.perf_counter()
            self._commit(name, rows, batch_id, metadata)
            stats.table_s[name] = round(time.perf_counter() - t, 3)

        if self.config.commit_threads > 1 and len(names) > 1:
            with ThreadPoolExecutor(self.config.commit_threads, "runlake-commit") as pool:
                futures = [pool.submit(commit, name, tables[name]) for name in names]
                wait(futures)
            for future in futures:
                future.result()  # the first failure, after every commit has ended
        else:
            for name in names:
                commit(name, tables[name])
        if self._folded is None:
            self._folded = self.writer.folded()
        vector = dict(self._folded)
        for key, offset in folded.offsets.items():
            vector[key] = max(vector.get(key, -1), offset)
        events = tables.get("events", TABLES["events"].fold_schema.empty_table())
        commit("events", events, progress_metadata(vector, batch_id))
        self._folded = vector
        names.append("events")
        stats.tables_committed.extend(names)
        self._dirty.update(names)

    def _optimize(self) -> None:
        """Small-file compaction of the tables written since the last run (not a data change)."""
        self.writer.optimize(sorted(self._dirty))
        self._dirty.clear()
