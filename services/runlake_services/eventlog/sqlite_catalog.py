"""The gateway's validation catalog in SQLite, shared by both event logs.

The embedded log keeps these tables in its own database, written in the transaction
that appends the log row. The Kafka log keeps them in a gateway-local database that it
fills by tailing the topics (docs/decisions/0012). Both read and write them through
this one class, so the catalog's schema and semantics cannot drift apart.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from runlake_services.eventlog.base import (
    ExperimentState,
    ModelState,
    RunState,
    StateChanges,
    VersionState,
)

__all__ = ["CATALOG_SCHEMA", "SqliteCatalog", "apply_changes", "connect"]

CATALOG_SCHEMA = """
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


def connect(path: str) -> sqlite3.Connection:
    """The writer connection: autocommit mode (explicit BEGIN), WAL, synchronous=FULL."""
    con = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    con.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is on disk before the gateway acknowledges it (survives power loss,
    # not only a process crash).
    con.execute("PRAGMA synchronous=FULL")
    return con


def apply_changes(con: sqlite3.Connection, changes: StateChanges, *, first_wins: bool) -> None:
    """Write ``changes`` inside the caller's transaction.

    ``first_wins`` is for state learnt from the log written by *other* gateways: a param
    or an experiment name that already exists keeps its first value (the log order is
    the truth; a concurrent second writer loses), where the embedded gateway, whose
    validation excludes such conflicts, would rather fail loudly.
    """
    if changes.experiments:
        rows = [
            (e.experiment_id, e.name, e.lifecycle_stage, e.artifact_location)
            for e in changes.experiments.values()
        ]
        if first_wins:
            # A name taken by another experiment id: skip that experiment, keep the first.
            for row in rows:
                try:
                    con.execute(
                        "INSERT INTO experiments"
                        " (experiment_id, name, lifecycle_stage, artifact_location)"
                        " VALUES (?, ?, ?, ?) ON CONFLICT (experiment_id) DO UPDATE SET"
                        " name = excluded.name, lifecycle_stage = excluded.lifecycle_stage",
                        row,
                    )
                except sqlite3.IntegrityError:
                    continue
        else:
            con.executemany(
                "INSERT INTO experiments (experiment_id, name, lifecycle_stage, artifact_location)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (experiment_id) DO UPDATE SET"
                " name = excluded.name, lifecycle_stage = excluded.lifecycle_stage",
                rows,
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
        verb = "INSERT OR IGNORE" if first_wins else "INSERT"
        con.executemany(
            f"{verb} INTO params (run_id, key, value) VALUES (?, ?, ?)",
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
                "INSERT OR REPLACE INTO model_aliases (model_id, alias, version) VALUES (?, ?, ?)",
                (model_id, alias, version),
            )


class SqliteCatalog:
    """The :class:`~runlake_services.eventlog.base.Catalog` over one SQLite file.

    One writer connection (``self._write``, guarded by ``self._write_lock``, used by the
    subclass that owns the writes) and one reader connection per thread: WAL readers never
    block the writer. ``extra_schema`` adds the owner's own tables to the same database.
    """

    def __init__(self, path: str | Path, *, extra_schema: str = "") -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = str(path)
        self._write = connect(self._path)
        self._write.executescript(extra_schema + CATALOG_SCHEMA)
        self._write_lock = threading.Lock()
        self._local = threading.local()
        # Write-through cache of run states: validating a metrics batch must not hit
        # SQLite. Bounded, so a million runs cannot grow it without limit.
        self._runs: OrderedDict[str, RunState] = OrderedDict()
        self._cache_lock = threading.Lock()

    def _reader(self) -> sqlite3.Connection:
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self._path, check_same_thread=False, timeout=30)
            self._local.con = con
        return con

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
