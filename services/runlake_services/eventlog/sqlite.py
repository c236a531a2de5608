"""The embedded event log: SQLite in WAL mode, one row per accepted batch.

The gateway's catalog (experiments, runs, params, registry) lives in the same database
and is written in the same transaction as the log row, so what the gateway validates
against can never disagree with what the log holds — not even after kill -9. The
catalog's tables and reads are :class:`SqliteCatalog`'s, shared with the Kafka log.
"""

from __future__ import annotations

from pathlib import Path

from runlake_services.eventlog.base import Appended, LogRecord, StateChanges
from runlake_services.eventlog.sqlite_catalog import SqliteCatalog, apply_changes

__all__ = ["SqliteEventLog"]

_LOG_SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_id TEXT NOT NULL UNIQUE,
    payload  BLOB NOT NULL
);
"""


class SqliteEventLog(SqliteCatalog):
    """EventLog and Catalog over one SQLite file. Safe for one writer and many readers."""

    def __init__(self, path: str | Path) -> None:
        super().__init__(path, extra_schema=_LOG_SCHEMA)

    @property
    def catalog(self) -> SqliteEventLog:
        return self

    def find(self, batch_id: str) -> int | None:
        row = (
            self._reader()
            .execute("SELECT position FROM log WHERE batch_id = ?", (batch_id,))
            .fetchone()
        )
        return int(row[0]) if row else None

    def read(self, after: int, *, max_records: int, max_bytes: int) -> list[LogRecord]:
        out: list[LogRecord] = []
        size = 0
        cur = self._reader().execute(
            "SELECT position, payload FROM log WHERE position > ? ORDER BY position LIMIT ?",
            (after, max_records),
        )
        for position, payload in cur:
            out.append(LogRecord(int(position), bytes(payload)))
            size += len(payload)
            if size >= max_bytes:
                break
        cur.close()
        return out

    def end_position(self) -> int:
        row = self._reader().execute("SELECT MAX(position) FROM log").fetchone()
        return int(row[0] or 0)

    # -- the single writer --

    def append(self, batch_id: str, payload: bytes, changes: StateChanges) -> Appended:
        with self._write_lock:
            con = self._write
            existing = con.execute(
                "SELECT position FROM log WHERE batch_id = ?", (batch_id,)
            ).fetchone()
            if existing:
                return Appended(int(existing[0]), duplicate=True)
            con.execute("BEGIN IMMEDIATE")
            try:
                cur = con.execute(
                    "INSERT INTO log (batch_id, payload) VALUES (?, ?)", (batch_id, payload)
                )
                position = int(cur.lastrowid or 0)
                if changes:
                    apply_changes(con, changes, first_wins=False)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            if changes.runs:
                self._remember(changes.runs.values())
            return Appended(position, duplicate=False)
