"""How the Spark compactor's driver commits a micro-batch's fold to Delta: two writers.

The fold runs on the driver (spark_jobs/compactor.py), so its rows are in the driver's
memory when they are written. Two ways to write them, one interface:

* :class:`DeltaRsWriter` (the default) commits them from the driver with delta-rs, through
  the same ``DeltaTableSink`` the embedded compactor uses. A commit costs tens of
  milliseconds (measured beside a Spark MERGE of the same rows on the same machine:
  0.03 to 0.1 s against 4 to 16 s under load; docs/decisions/0013), which is what keeps a
  micro-batch, and so freshness, near the trigger interval.
* :class:`SparkWriter` hands them to delta-spark (``createDataFrame`` then append or
  MERGE), for deployments that want every write to go through Spark's Delta writer.

Both record the Delta app transaction ``(<job id>/<table>, <micro-batch id>)`` with every
commit and skip a micro-batch a table already holds, so a replayed micro-batch commits
nothing twice; both put the folded offsets on the ``events`` commit
(runlake_services.tables.folded). A table set is written by one writer kind for its life
(the app ids are the same, but Delta on S3 allows one writer process anyway).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal, Protocol

import pyarrow as pa
import pyarrow.compute as pc
from runlake.positions import Vector, parse_vector
from runlake_services.tables.delta_sink import DeltaTableSink
from runlake_services.tables.folded import latest_folded
from runlake_services.tables.storage import open_table_store

from spark_jobs import delta_tables

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from spark_jobs.compactor import CompactorConfig

__all__ = ["WRITERS", "DeltaRsWriter", "SparkWriter", "TableWriter", "WriterKind", "open_writer"]

WriterKind = Literal["delta-rs", "spark"]
WRITERS: tuple[WriterKind, ...] = ("delta-rs", "spark")
_HISTORY = 50


class TableWriter(Protocol):
    """What the compactor needs of a writer; every method is safe to call again."""

    def ensure_tables(self) -> None:
        """Create every table that does not exist yet (the index's with a change feed)."""
        ...

    def commit(
        self, name: str, rows: pa.Table, batch_id: int, *, user_metadata: str | None = None
    ) -> None:
        """Apply one table's fold rows for micro-batch ``batch_id``, unless it has them."""
        ...

    def optimize(self, names: Iterable[str]) -> None:
        """Compact small files of these tables (not a data change)."""
        ...

    def folded(self) -> Vector:
        """The offsets the newest progress-carrying ``events`` commit names."""
        ...

    def recent_batch_ids(self, since_ms: int) -> list[tuple[str, int]]:
        """(batch id, receive time) of every batch in ``events`` received since ``since_ms``."""
        ...


class DeltaRsWriter:
    """delta-rs from the driver: ``DeltaTableSink`` with the job's app ids and change feeds."""

    def __init__(self, config: CompactorConfig) -> None:
        store = open_table_store(config.tables_uri, config.storage_env)
        self._sink = DeltaTableSink(
            store.root, store.storage_options, app_id=config.app_id, change_feed=True
        )

    def ensure_tables(self) -> None:
        self._sink.ensure_tables()

    def commit(
        self, name: str, rows: pa.Table, batch_id: int, *, user_metadata: str | None = None
    ) -> None:
        # delta-rs records the app transaction; skipping a version it holds is ours to do
        held = self._sink.committed_version(name)
        if held is not None and held >= batch_id:
            return
        self._sink.commit(name, rows, batch_id, user_metadata=user_metadata)

    def optimize(self, names: Iterable[str]) -> None:
        for name in names:
            self._sink.maintain(name)

    def folded(self) -> Vector:
        found = latest_folded(self._sink.table("events").history(limit=_HISTORY))
        return parse_vector(found.token) if found is not None else {}

    def recent_batch_ids(self, since_ms: int) -> list[tuple[str, int]]:
        dataset = self._sink.table("events").to_pyarrow_dataset()
        rows = dataset.to_table(
            columns=["batch_id", "timestamp"], filter=pc.field("timestamp") >= since_ms
        )
        latest = rows.group_by("batch_id").aggregate([("timestamp", "max")])
        ordered = latest.sort_by("timestamp_max")
        return list(
            zip(
                ordered.column("batch_id").to_pylist(),
                ordered.column("timestamp_max").to_pylist(),
                strict=True,
            )
        )


class SparkWriter:
    """delta-spark: each table's rows become a DataFrame, appended or MERGEd by Spark."""

    def __init__(self, spark: SparkSession, config: CompactorConfig) -> None:
        self._spark = spark
        self._config = config
        self._sessions: dict[str, SparkSession] = {}

    def _session(self, name: str) -> SparkSession:
        """One SQL session per table: the idempotent-MERGE confs are per session."""
        session = self._sessions.get(name)
        if session is None:
            session = self._sessions[name] = tuned(self._spark.newSession())
        return session

    def ensure_tables(self) -> None:
        delta_tables.ensure_tables(self._spark, self._config)

    def commit(
        self, name: str, rows: pa.Table, batch_id: int, *, user_metadata: str | None = None
    ) -> None:
        delta_tables.commit_table(
            self._session(name), self._config, name, rows, batch_id, user_metadata=user_metadata
        )

    def optimize(self, names: Iterable[str]) -> None:
        from delta.tables import DeltaTable

        for name in names:
            uri = self._config.table_uri(name)
            DeltaTable.forPath(self._spark, uri).optimize().executeCompaction()

    def folded(self) -> Vector:
        return delta_tables.read_folded(self._spark, self._config)

    def recent_batch_ids(self, since_ms: int) -> list[tuple[str, int]]:
        from pyspark.sql import functions as F

        rows = (
            self._spark.read.format("delta")
            .load(self._config.table_uri("events"))
            .where(F.col("timestamp") >= since_ms)
            .groupBy("batch_id")
            .agg(F.max("timestamp").alias("at"))
            .orderBy("at")
            .collect()
        )
        return [(str(r["batch_id"]), int(r["at"])) for r in rows]


#: Session confs for Spark's MERGEs. A MERGE source here is rows from the driver's memory,
#: deterministic, so Delta need not materialise (checkpoint) it first: one job less each.
_MERGE_CONF = {"spark.databricks.delta.merge.materializeSource": "none"}


def tuned(session: SparkSession) -> SparkSession:
    for key, value in _MERGE_CONF.items():
        session.conf.set(key, value)
    return session


def open_writer(kind: WriterKind, spark: SparkSession, config: CompactorConfig) -> TableWriter:
    """The writer of ``kind`` (``config.writer``); ValueError naming the valid ones."""
    if kind == "delta-rs":
        return DeltaRsWriter(config)
    if kind == "spark":
        return SparkWriter(spark, config)
    raise ValueError(f"writer {kind!r}: valid are {', '.join(WRITERS)}")
