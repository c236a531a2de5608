"""The embedded event log: SQLite in WAL mode, one row per accepted batch.

The gateway's catalog (experiments, runs, params) lives in the same database and
is written in the same transaction as the log row, so what the gateway validates
against can never disagree with what the log holds — not even after kill -9.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from runlake_services.eventlog.base import (
    Appended,
    ExperimentState,
    LogRecord,
    ModelState,
    RunState,
    StateChanges,
    VersionState,
)

__all__ = ["SqliteEventLog"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_id TEXT NOT NULL UNIQUE,
    payload  BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS experiments (
    experiment_id     TEXT PRIMARY KEY,
    name              TEXT NOT NULL UNIQUE,
    lifecycle_stage   TEXT NOT NULL,
    artifact_location TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    run_id          TEXT PRIMARY KEY,
    experiment_id   TEXT NOT NULL,
    status          TEXT NOT NULL,
    lifecycle_stage TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS registered_models (
    model_id        TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    lifecycle_stage TEXT NOT NULL,
    last_version    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS registered_models_name ON registered_models (name, lifecycle_stage);
CREATE TABLE IF NOT EXISTS model_versions (
    model_id        TEXT NOT NULL,
    version         INTEGER NOT NULL,
    stage           TEXT NOT NULL,
    lifecycle_stage TEXT NOT NULL,
    PRIMARY KEY (model_id, version)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS model_aliases (
    model_id TEXT NOT NULL,
    alias    TEXT NOT NULL,
    version  INTEGER NOT NULL,
    PRIMARY KEY (model_id, alias)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS params (
    run_id TEXT NOT NULL,
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
"""

_RUN_CACHE_SIZE = 100_000


def _connect(path: str) -> sqlite3.Connection:
    con = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    con.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is on disk before the gateway acknowledges it (survives power loss,
    # not only a process crash).
    con.execute("PRAGMA synchronous=FULL")
    return con


class SqliteEventLog:
    """EventLog and Catalog over one SQLite file. Safe for one writer and many readers."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = str(path)
        self._write = _connect(self._path)
        self._write.executescript(_SCHEMA)
        self._write_lock = threading.Lock()
        self._local = threading.local()
        # Write-through cache of run states: validating a metrics batch must not hit
        # SQLite. Bounded, so a million runs cannot grow it without limit.
        self._runs: OrderedDict[str, RunState] = OrderedDict()
        self._cache_lock = threading.Lock()

    # -- reads, one connection per thread (WAL readers never block the writer) --

    def _reader(self) -> sqlite3.Connection:
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self._path, check_same_thread=False, timeout=30)
            self._local.con = con
        return con

    @property
    def catalog(self) -> SqliteEventLog:
        return self

    def experiment(self, experiment_id: str) -> ExperimentState | None:
        return self._experiment_where("experiment_id", experiment_id)

    def experiment_by_name(self, name: str) -> ExperimentState | None:
        return self._experiment_where("name", name)

    def _experiment_where(self, column: str, value: str) -> ExperimentState | None:
        # ``column`` is one of two literals above, never caller input.
        row = (
            self._reader()
            .execute(
                "SELECT experiment_id, name, lifecycle_stage, artifact_location"
                f" FROM experiments WHERE {column} = ?",
                (value,),
            )
            .fetchone()
        )
        return ExperimentState(*row) if row else None

    def runs(self, run_ids: Sequence[str]) -> Mapping[str, RunState]:
        found: dict[str, RunState] = {}
        missing: list[str] = []
        with self._cache_lock:
            for run_id in run_ids:
                state = self._runs.get(run_id)
                if state is None:
                    missing.append(run_id)
                else:
                    found[run_id] = state
        if missing:
            marks = ",".join("?" * len(missing))
            rows = (
                self._reader()
                .execute(
                    "SELECT run_id, experiment_id, status, lifecycle_stage FROM runs"
                    f" WHERE run_id IN ({marks})",
                    missing,
                )
                .fetchall()
            )
            loaded = [RunState(*r) for r in rows]
            self._remember(loaded)
            found.update((s.run_id, s) for s in loaded)
        return found

    def params(self, run_id: str, keys: Sequence[str]) -> Mapping[str, str]:
        if not keys:
            return {}
        marks = ",".join("?" * len(keys))
        rows = (
            self._reader()
            .execute(
                f"SELECT key, value FROM params WHERE run_id = ? AND key IN ({marks})",
                (run_id, *keys),
            )
            .fetchall()
        )
        return dict(rows)

    def model_by_name(self, name: str) -> ModelState | None:
        row = (
            self._reader()
            .execute(
                "SELECT model_id, name, lifecycle_stage, last_version FROM registered_models"
                " WHERE name = ? AND lifecycle_stage = 'active'",
                (name,),
            )
            .fetchone()
        )
        return ModelState(*row) if row else None

    def model_version(self, model_id: str, version: int) -> VersionState | None:
        row = (
            self._reader()
            .execute(
                "SELECT model_id, version, stage, lifecycle_stage FROM model_versions"
                " WHERE model_id = ? AND version = ?",
                (model_id, version),
            )
            .fetchone()
        )
        return VersionState(*row) if row else None

    def versions_in_stage(self, model_id: str, stage: str) -> list[int]:
        rows = (
            self._reader()
            .execute(
                "SELECT version FROM model_versions WHERE model_id = ? AND stage = ?"
                " AND lifecycle_stage = 'active' ORDER BY version",
                (model_id, stage),
            )
            .fetchall()
        )
        return [int(r[0]) for r in rows]

    def alias(self, model_id: str, alias: str) -> int | None:
        row = (
            self._reader()
            .execute(
                "SELECT version FROM model_aliases WHERE model_id = ? AND alias = ?",
                (model_id, alias),
            )
            .fetchone()
        )
        return int(row[0]) if row else None

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
                    self._apply(con, changes)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            if changes.runs:
                self._remember(changes.runs.values())
            return Appended(position, duplicate=False)

    @staticmethod
    def _apply(con: sqlite3.Connection, changes: StateChanges) -> None:
        if changes.experiments:
            con.executemany(
                "INSERT INTO experiments (experiment_id, name, lifecycle_stage, artifact_location)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (experiment_id) DO UPDATE SET"
                " name = excluded.name, lifecycle_stage = excluded.lifecycle_stage",
                [
                    (e.experiment_id, e.name, e.lifecycle_stage, e.artifact_location)
                    for e in changes.experiments.values()
                ],
            )
        if changes.runs:
            con.executemany(
                "INSERT INTO runs (run_id, experiment_id, status, lifecycle_stage)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (run_id) DO UPDATE SET"
                " status = excluded.status, lifecycle_stage = excluded.lifecycle_stage",
                [
                    (r.run_id, r.experiment_id, r.status, r.lifecycle_stage)
                    for r in changes.runs.values()
                ],
            )
        if changes.params:
            con.executemany(
                "INSERT INTO params (run_id, key, value) VALUES (?, ?, ?)",
                [(run_id, key, value) for (run_id, key), value in changes.params.items()],
            )
        if changes.models:
            con.executemany(
                "INSERT OR REPLACE INTO registered_models"
                " (model_id, name, lifecycle_stage, last_version) VALUES (?, ?, ?, ?)",
                [
                    (m.model_id, m.name, m.lifecycle_stage, m.last_version)
                    for m in changes.models.values()
                ],
            )
        if changes.versions:
            con.executemany(
                "INSERT OR REPLACE INTO model_versions"
                " (model_id, version, stage, lifecycle_stage) VALUES (?, ?, ?, ?)",
                [
                    (v.model_id, v.version, v.stage, v.lifecycle_stage)
                    for v in changes.versions.values()
                ],
            )
        for (model_id, alias), version in changes.aliases.items():
            if version is None:
                con.execute(
                    "DELETE FROM model_aliases WHERE model_id = ? AND alias = ?", (model_id, alias)
                )
            else:
                con.execute(
                    "INSERT OR REPLACE INTO model_aliases (model_id, alias, version)"
                    " VALUES (?, ?, ?)",
                    (model_id, alias, version),
                )

    def _remember(self, states: Iterable[RunState]) -> None:
        with self._cache_lock:
            for state in states:
                self._runs[state.run_id] = state
                self._runs.move_to_end(state.run_id)
            while len(self._runs) > _RUN_CACHE_SIZE:
                self._runs.popitem(last=False)

    def close(self) -> None:
        with self._write_lock:
            self._write.close()
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
