"""Follows Delta tables that another process folds: the scale-out query service's feed.

In the embedded server the compactor hands each round's FoldResult to the index in
process. At scale the compactor is a Spark job elsewhere; what reaches the query service
is the tables themselves, and the offsets folded so far, which the job stores with the
last commit of each micro-batch. The follower:

1. reads the folded token first (the ``events`` table's last micro-batch commit carries it,
   runlake_services.tables.folded), then the index tables, so the tables it reads hold at
   least everything the token names (the job commits them before ``events``);
2. loads the index tables whole at start, remembering each table's Delta version;
3. then, each poll, reads only what changed since those versions from the tables'
   change data feed (Delta CDF, enabled by the compactor on the index tables) and applies
   it with the same merge rules as a fold round (:func:`cdf_to_fold_rows`);
4. publishes the token to :class:`TokenProgress`, releasing reads that wait for it.

If a table's feed cannot be read (a table recreated, history cleaned up), the index is
rebuilt from the tables' snapshots: slower, never wrong.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import pyarrow as pa
from deltalake import DeltaTable

from runlake_services.progress import TokenProgress
from runlake_services.query.state import INDEX_TABLES, RunsIndex
from runlake_services.tables.folded import latest_folded
from runlake_services.tables.schema import TABLES, FoldResult, MergeMode
from runlake_services.tables.storage import TableStore

__all__ = ["FollowerStats", "TableFollower", "cdf_to_fold_rows"]

log = logging.getLogger(__name__)
#: Commits of ``events`` looked through for the newest token (OPTIMIZE ones carry none).
_HISTORY = 50


def cdf_to_fold_rows(name: str, changes: pa.Table) -> pa.Table:
    """Change-feed rows of table ``name`` as a fold output: at most one row per key.

    Pre-images are dropped; for every key the last change (highest commit version)
    stays. In upsert tables a deletion becomes a row with ``deleted`` true, exactly what
    the fold emits for a deleted tag. Append tables keep every inserted row.
    """
    spec = TABLES[name]
    cols = ", ".join(f'"{c}"' for c in spec.schema.names)
    deleted = ", _change_type = 'delete' AS deleted" if spec.mode is MergeMode.UPSERT else ""
    where = "_change_type IN ('insert', 'update_postimage'" + (
        ", 'delete')" if spec.mode is MergeMode.UPSERT else ")"
    )
    keys = ", ".join(f'"{k}"' for k in spec.keys)
    reduce = (
        ""
        if spec.mode is MergeMode.APPEND
        else f" QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY _commit_version DESC) = 1"
    )
    db = duckdb.connect(":memory:")
    try:
        db.register("changes", changes)
        sql = f"SELECT {cols}{deleted} FROM changes WHERE {where}{reduce}"
        table: pa.Table = db.sql(sql).to_arrow_table()
    finally:
        db.close()
    return table.cast(spec.fold_schema)


@dataclass
class FollowerStats:
    """What the follower has done, for /health and the logs."""

    polls: int = 0
    applied: int = 0  # polls that changed the index
    reloads: int = 0
    last_error: str = ""
    #: when the compactor committed the progress last seen (its micro-batch's end)
    folded_at_ms: int = 0


class TableFollower:
    """Keeps a RunsIndex and a TokenProgress current with tables written elsewhere."""

    def __init__(
        self,
        store: TableStore,
        index: RunsIndex,
        progress: TokenProgress,
        *,
        interval_s: float = 0.2,
        tables: Sequence[str] = INDEX_TABLES,
    ) -> None:
        self._store = store
        self._index = index
        self._progress = progress
        self._interval_s = interval_s
        self._names = tuple(tables)
        self._tables: dict[str, DeltaTable] = {}
        self._versions: dict[str, int] = {}
        self._token = ""
        self._events_version = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.stats = FollowerStats()

    # -- tables --

    def _uri(self, name: str) -> str:
        return f"{self._store.root.rstrip('/')}/{name}"

    def _open(self, name: str) -> DeltaTable | None:
        """The table, refreshed to its latest version; None while it does not exist."""
        dt = self._tables.get(name)
        if dt is not None:
            dt.update_incremental()
            return dt
        uri, options = self._uri(name), self._store.storage_options
        if not DeltaTable.is_deltatable(uri, options):
            return None
        dt = self._tables[name] = DeltaTable(uri, storage_options=options)
        return dt

    def read_token(self) -> str:
        """The compactor's published progress ("" before its first micro-batch)."""
        dt = self._open("events")
        if dt is None:
            return ""
        version = dt.version()
        if version == self._events_version:
            return self._token  # no new commit: nothing new folded (one listing, no reads)
        # only the commits since the last look (each is one object read on S3)
        new = version - self._events_version if self._events_version >= 0 else _HISTORY
        folded = latest_folded(dt.history(limit=max(1, min(_HISTORY, new))))
        self._events_version = version
        if folded is None:
            return self._token  # e.g. only an OPTIMIZE commit: the offsets did not move
        self.stats.folded_at_ms = folded.timestamp_ms
        return folded.token

    # -- lifecycle --

    def load(self) -> None:
        """Fill the index from the tables' snapshots (token first, see the module doc)."""
        token = self.read_token()
        data: dict[str, pa.Table] = {}
        versions: dict[str, int] = {}
        for name in self._names:
            dt = self._open(name)
            if dt is None:
                data[name] = TABLES[name].schema.empty_table()
                versions[name] = -1
                continue
            versions[name] = dt.version()
            data[name] = dt.to_pyarrow_table().select(TABLES[name].schema.names)
        self._index.load_tables(data)
        self._versions = versions
        self._publish(token)

    def poll_once(self) -> bool:
        """Apply what changed since the last poll; whether the index changed."""
        self.stats.polls += 1
        token = self.read_token()
        if token == self._token:
            return False
        tables: dict[str, pa.Table] = {}
        versions = dict(self._versions)
        try:
            for name in self._names:
                dt = self._open(name)
                if dt is None:
                    continue
                version = dt.version()
                if version <= versions.get(name, -1):
                    continue
                start = versions.get(name, -1) + 1
                feed = dt.load_cdf(starting_version=start, ending_version=version).read_all()
                rows = cdf_to_fold_rows(name, feed)
                if rows.num_rows:
                    tables[name] = rows
                versions[name] = version
        except Exception as exc:  # a feed that cannot be read: rebuild instead
            log.warning("change feed unreadable (%s); reloading the index", exc)
            self.stats.reloads += 1
            self.stats.last_error = str(exc)
            self.load()
            return True
        if tables:
            self._index.apply(FoldResult(tables, first_position=0, last_position=0))
            self.stats.applied += 1
        self._versions = versions
        self._publish(token)
        return bool(tables)

    def _publish(self, token: str) -> None:
        self._token = token
        if token:
            self._progress.folded_to(token)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="runlake-follower", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self.poll_once()
            except Exception as exc:  # S3 away for a moment: keep serving what we have
                self.stats.last_error = str(exc)
                log.warning("follower poll failed: %s", exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    @property
    def token(self) -> str:
        return self._token
