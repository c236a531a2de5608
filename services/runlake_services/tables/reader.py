"""Read access to the Delta tables, shared by the query service and the SQL endpoint."""

from __future__ import annotations

import threading

import pyarrow.dataset as pads
from deltalake import DeltaTable

from runlake_services.tables.schema import TABLES, MergeMode

__all__ = ["DeltaTableReader"]


class DeltaTableReader:
    """Opens each table under ``root`` once and refreshes it incrementally.

    ``root`` is a directory path or URI; table ``name`` lives at ``root/name``.
    ``storage_options`` are delta-rs's (S3 endpoint and keys for the scale-out).
    """

    def __init__(self, root: str, storage_options: dict[str, str] | None = None) -> None:
        self._root = root.rstrip("/")
        self._options = storage_options or {}
        self._tables: dict[str, DeltaTable] = {}
        self._lock = threading.Lock()

    def uri(self, name: str) -> str:
        return f"{self._root}/{name}"

    def table(self, name: str) -> DeltaTable | None:
        """The latest snapshot of table ``name``; None while it does not exist yet."""
        if name not in TABLES:
            raise KeyError(name)
        with self._lock:
            dt = self._tables.get(name)
            if dt is None:
                if not DeltaTable.is_deltatable(self.uri(name), self._options):
                    return None
                dt = DeltaTable(self.uri(name), storage_options=self._options)
                self._tables[name] = dt
            else:
                dt.update_incremental()
            return dt

    def dataset(self, name: str) -> pads.Dataset:
        """A pyarrow dataset of the latest snapshot (an empty one if the table is absent).

        Tables kept by MERGE (every mode but APPEND) come back read into memory. delta-rs's
        merge writes string columns as Arrow ``string_view``, and a filter pushed down into
        a pyarrow scan over such files can fail ("no kernel matching input types (string,
        string_view)"), seen with DuckDB's pushdown once a table had both kinds of files.
        Those tables hold one row per entity (runs, tags, registry), so reading them whole
        is cheap; the unbounded APPEND tables (metrics, events) keep their lazy scan.
        """
        dt = self.table(name)
        if dt is None:
            return pads.dataset(TABLES[name].schema.empty_table())
        if TABLES[name].mode is not MergeMode.APPEND:
            return pads.dataset(dt.to_pyarrow_dataset().to_table())
        return dt.to_pyarrow_dataset()
