"""Applies fold outputs to the Delta tables with delta-rs, exactly once.

Each commit carries a Delta app transaction (``runlake-compactor`` → the last
log position folded), so after a crash the compactor asks each table how far it
got and never applies a record twice (see compactor's commit protocol).
"""

from __future__ import annotations

import threading

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

from runlake_services.tables.schema import TABLES, MergeMode, TableSpec

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

    def __init__(self, root: str, storage_options: dict[str, str] | None = None) -> None:
        self._root = root.rstrip("/")
        self._options = storage_options or {}
        self._tables: dict[str, DeltaTable] = {}
        self._lock = threading.Lock()

    def uri(self, name: str) -> str:
        return f"{self._root}/{name}"

    def ensure_tables(self) -> None:
        """Create every table that does not exist yet (empty, with its schema)."""
        for name, spec in TABLES.items():
            dt = DeltaTable.create(
                self.uri(name),
                spec.schema,
                mode="ignore",
                name=name,
                description=spec.doc,
                configuration=_TABLE_CONFIG,
                storage_options=self._options,
            )
            self._tables[name] = dt

    def _table(self, name: str) -> DeltaTable:
        dt = self._tables.get(name)
        if dt is None:
            dt = DeltaTable(self.uri(name), storage_options=self._options)
            self._tables[name] = dt
        return dt

    def folded_position(self, name: str) -> int:
        """The last log position this table holds (0 if none)."""
        version = self._table(name).transaction_version(APP_ID)
        return int(version) if version is not None else 0

    def commit(self, name: str, rows: pa.Table, position: int) -> None:
        """Apply ``rows`` (in the table's fold schema) and record ``position``, atomically."""
        spec = TABLES[name]
        props = CommitProperties(app_transactions=[Transaction(APP_ID, position)])
        dt = self._table(name)
        with self._lock:
            if spec.mode is MergeMode.APPEND:
                write_deltalake(dt, rows.cast(spec.schema), mode="append", commit_properties=props)
            else:
                self._merge(dt, spec, rows, props)
            dt.update_incremental()

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
        with self._lock:
            # One task and 32 MiB files: compaction holds about one target file's worth
            # of rows at a time (the defaults, a task per core and 100 MiB files, were the
            # server's memory peaks under a long write flood).
            dt.optimize.compact(target_size=_COMPACT_TARGET_BYTES, max_concurrent_tasks=1)
            dt.create_checkpoint()
            dt.update_incremental()
