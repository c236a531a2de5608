"""The Spark compactor's Delta side: create the tables, commit a fold's rows exactly once,
and carry the folded Kafka offsets in the ``events`` commit.

Every commit of micro-batch ``b`` to table ``T`` carries the Delta app transaction
``("<job id>/<T>", b)``: appends through the writer options ``txnAppId``/``txnVersion``,
MERGEs through the session confs ``spark.databricks.delta.write.txnAppId``/``txnVersion``
(Delta applies them to DML too). A replayed micro-batch therefore commits nothing twice.

Progress. The ``events`` commit of a micro-batch is its last, and it carries, as the
commit's ``userMetadata``, the cumulative vector of Kafka offsets folded so far
(runlake_services.tables.folded). A reader that sees that commit can read every record up to
those offsets in every table; :func:`read_folded` (Spark) and the query service's
follower (delta-rs) read it back. A micro-batch that folds nothing new (only duplicates)
still appends an empty ``events`` commit, so the vector always advances.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from runlake.positions import Vector, parse_vector
from runlake_services.tables.delta_sink import _latest_predicate
from runlake_services.tables.folded import folded_from_metadata
from runlake_services.tables.schema import CHANGE_FEED_TABLES, TABLES, MergeMode, TableSpec

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from spark_jobs.compactor import CompactorConfig

__all__ = ["commit_table", "ensure_tables", "read_folded"]

_TXN_APP_ID = "spark.databricks.delta.write.txnAppId"
_TXN_VERSION = "spark.databricks.delta.write.txnVersion"
_CDF = "delta.enableChangeDataFeed"
#: How many recent ``events`` commits to look through for the last progress (OPTIMIZE
#: commits carry none; they run every ``optimize_every`` micro-batches).
_HISTORY = 50


def _struct(schema: pa.Schema) -> Any:
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(schema)


def ensure_tables(spark: SparkSession, config: CompactorConfig) -> None:
    """Create every table that does not exist yet, empty, with its stored schema.

    The query service's index tables get Delta's change data feed: the query service
    follows them through it (services/runlake_services/query/follower.py). Tables made
    before that are altered to have it; their earlier history has no feed, which the
    follower never reads (it loads a snapshot at start).
    """
    from delta.tables import DeltaTable

    for name, spec in TABLES.items():
        uri = config.table_uri(name)
        builder = (
            DeltaTable.createIfNotExists(spark)
            .location(uri)
            .addColumns(_struct(spec.schema))
            .comment(spec.doc)
        )
        if name in CHANGE_FEED_TABLES:
            builder = builder.property(_CDF, "true")
        builder.execute()
        if name in CHANGE_FEED_TABLES:
            props = DeltaTable.forPath(spark, uri).detail().select("properties").first()
            if props is None or props[0].get(_CDF) != "true":
                spark.sql(f"ALTER TABLE delta.`{uri}` SET TBLPROPERTIES ({_CDF} = true)")


def read_folded(spark: SparkSession, config: CompactorConfig) -> Vector:
    """The folded offsets the last progress-carrying ``events`` commit names (empty: none)."""
    from delta.tables import DeltaTable

    history = DeltaTable.forPath(spark, config.table_uri("events")).history(_HISTORY)
    for row in (
        history.select("version", "userMetadata").orderBy("version", ascending=False).collect()
    ):
        token = folded_from_metadata(row["userMetadata"])
        if token is not None:
            return parse_vector(token)
    return {}


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
    spark: SparkSession,
    config: CompactorConfig,
    name: str,
    rows: pa.Table,
    batch_id: int,
    *,
    user_metadata: str | None = None,
) -> None:
    """Apply one table's fold rows with the rule of delta_sink.py, exactly once per batch."""
    from delta.tables import DeltaTable

    spec = TABLES[name]
    uri = config.table_uri(name)
    app_id = config.app_id(name)
    if spec.mode is MergeMode.APPEND:
        src = spark.createDataFrame(
            rows.select(spec.schema.names).cast(spec.schema), schema=_struct(spec.schema)
        )
        writer = (
            src.write.format("delta")
            .mode("append")
            .option("txnAppId", app_id)
            .option("txnVersion", batch_id)
        )
        if user_metadata is not None:
            writer = writer.option("userMetadata", user_metadata)
        writer.save(uri)
        return
    if user_metadata is not None:
        raise ValueError(f"{name}: progress rides on the events append only")
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
