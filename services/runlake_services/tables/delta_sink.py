"""Applies fold outputs to the Delta tables with delta-rs, exactly once.

Each commit carries a Delta app transaction (``runlake-compactor`` → the last
log position folded), so after a crash the compactor asks each table how far it
got and never applies a record twice (see compactor's commit protocol).

Both compactors write through it: the embedded one (positions are SQLite sequence
numbers) and the Spark job's driver (versions are micro-batch ids, app ids per job and
table, the query index's tables with Delta's change data feed; spark_jobs/writers.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

from runlake_services.tables.schema import CHANGE_FEED_TABLES, TABLES, MergeMode, TableSpec

__all__ = ["APP_ID", "DeltaTableSink"]

APP_ID = "runlake-compactor"

# Checkpoints every N commits keep a cold open of a table fast.
_TABLE_CONFIG = {"delta.checkpointInterval": "50"}
_COMPACT_TARGET_BYTES = 32 * 1024 * 1024


def _latest_predicate() -> str:
    return (
        "s.step > t.step OR (s.step = t.step AND (s.timestamp > t.timestamp"
        " OR (s.timestamp = t.timestamp AND s.value > t.value)))"
    )


class DeltaTableSink:
    """Writes every table under ``root`` (a directory or an object-store URI)."""

    def __init__(
        self,
        root: str,
        storage_options: dict[str, str] | None = None,
        *,
        app_id: Callable[[str], str] | None = None,
        change_feed: bool = False,
    ) -> None:
        self._root = root.rstrip("/")
        self._options = storage_options or {}
        self._tables: dict[str, DeltaTable] = {}
        self._app_id = app_id or (lambda _name: APP_ID)
        self._change_feed = change_feed
        # one lock a table: commits of different tables may run at once (the Spark driver)
        self._locks = {name: threading.Lock() for name in TABLES}

    def uri(self, name: str) -> str:
        return f"{self._root}/{name}"

    def ensure_tables(self) -> None:
        """Create every table that does not exist yet (empty, with its schema)."""
        for name, spec in TABLES.items():
            config = dict(_TABLE_CONFIG)
            if self._change_feed and name in CHANGE_FEED_TABLES:
                config["delta.enableChangeDataFeed"] = "true"
            dt = DeltaTable.create(
                self.uri(name),
                spec.schema,
                mode="ignore",
                name=name,
                description=spec.doc,
                configuration=config,
                storage_options=self._options,
            )
            self._tables[name] = dt

    def _table(self, name: str) -> DeltaTable:
        dt = self._tables.get(name)
        if dt is None:
            dt = DeltaTable(self.uri(name), storage_options=self._options)
            self._tables[name] = dt
        return dt

    def table(self, name: str) -> DeltaTable:
        """The open table ``name`` (refreshed after each of this sink's commits)."""
        return self._table(name)

    def committed_version(self, name: str) -> int | None:
        """The app-transaction version this table holds for its app id (None: none yet)."""
        version = self._table(name).transaction_version(self._app_id(name))
        return None if version is None else int(version)

    def folded_position(self, name: str) -> int:
        """The last log position this table holds (0 if none)."""
        version = self._table(name).transaction_version(self._app_id(name))
        return int(version) if version is not None else 0

    def commit(
        self, name: str, rows: pa.Table, position: int, *, user_metadata: str | None = None
    ) -> None:
        """Apply ``rows`` (in the table's fold schema) and record ``position``, atomically.

        ``user_metadata`` becomes the commit's ``userMetadata`` (what Spark writes there).
        """
        spec = TABLES[name]
        props = CommitProperties(
            app_transactions=[Transaction(self._app_id(name), position)],
            custom_metadata=None if user_metadata is None else {"userMetadata": user_metadata},
        )
        dt = self._table(name)
        with self._locks[name]:
            if spec.mode is MergeMode.APPEND:
                write_deltalake(dt, rows.cast(spec.schema), mode="append", commit_properties=props)
            elif spec.mode is MergeMode.UPSERT and self._feeds(name):
                self._upsert_with_feed(dt, spec, rows, props)
            else:
                self._merge(dt, spec, rows, props)
            dt.update_incremental()

    def _feeds(self, name: str) -> bool:
        return self._change_feed and name in CHANGE_FEED_TABLES

    def _upsert_with_feed(
        self, dt: DeltaTable, spec: TableSpec, rows: pa.Table, props: CommitProperties
    ) -> None:
        """An UPSERT on a table with a change feed, around a delta-rs limit.

        delta-rs 1.6 fails a MERGE whose change feed would hold a source row that no
        clause takes ("rows failed validation check"): with the feed on, a deletion of a key
        the table does not have (a tag set and deleted within one round) cannot go through
        ``when_not_matched_insert(NOT s.deleted)``. Deletions therefore go in a MERGE of
        their own with only ``when_matched_delete``, before the sets (one row a key in a
        round, so their order does not matter). When both kinds are present that is two
        commits; the app transaction rides on the second (the sets, which always commit),
        and a replay after a crash between them deletes the same keys again.
        """
        deleted = rows.column("deleted")
        sets, gone = rows.filter(pc.invert(deleted)), rows.filter(deleted)
        if not sets.num_rows:
            # deletions only: a MERGE that matches nothing commits nothing (nor its app
            # transaction), and a replay of it changes nothing either
            self._merge(dt, spec, gone, props)
            return
        if gone.num_rows:
            self._merge(dt, spec, gone, CommitProperties())
            dt.update_incremental()
        self._merge(dt, spec, sets, props)  # always a commit: it carries the transaction

    @staticmethod
    def _merge(dt: DeltaTable, spec: TableSpec, rows: pa.Table, props: CommitProperties) -> None:
        on = " AND ".join(f"t.{k} = s.{k}" for k in spec.keys)
        stored = spec.schema.names
        merger = dt.merge(
            rows,
            predicate=on,
            source_alias="s",
            target_alias="t",
            commit_properties=props,
        )
        if spec.mode is MergeMode.COALESCE:
            updates = {c: f"coalesce(s.{c}, t.{c})" for c in stored if c not in spec.keys}
            merger = merger.when_matched_update(updates).when_not_matched_insert(
                {c: f"s.{c}" for c in stored}
            )
        elif spec.mode is MergeMode.UPSERT and rows.num_rows and pc.all(rows["deleted"]).as_py():
            merger = merger.when_matched_delete()  # deletions alone: see _upsert_with_feed
        elif spec.mode is MergeMode.UPSERT:
            merger = (
                merger.when_matched_delete(predicate="s.deleted")
                .when_matched_update({c: f"s.{c}" for c in stored}, predicate="NOT s.deleted")
                .when_not_matched_insert({c: f"s.{c}" for c in stored}, predicate="NOT s.deleted")
            )
        elif spec.mode is MergeMode.LATEST:
            merger = merger.when_matched_update(
                {c: f"s.{c}" for c in stored}, predicate=_latest_predicate()
            ).when_not_matched_insert({c: f"s.{c}" for c in stored})
        merger.execute()

    def maintain(self, name: str) -> None:
        """Compact small files and write a checkpoint: keeps cold reads in milliseconds."""
        dt = self._table(name)
        with self._locks[name]:
            # One task and 32 MiB files: compaction holds about one target file's worth
            # of rows at a time (the defaults, a task per core and 100 MiB files, were the
            # server's memory peaks under a long write flood).
            dt.optimize.compact(target_size=_COMPACT_TARGET_BYTES, max_concurrent_tasks=1)
            dt.create_checkpoint()
            dt.update_incremental()
