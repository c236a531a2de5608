"""Schemas of the tables the fold produces, and the rule each is merged by.

This is the contract between the fold (a pure function of log records), the
table sinks (delta-rs embedded, delta-spark at scale) and the query service's
in-memory state: all three read the same :data:`TABLES` so they apply a fold
output the same way. Field names follow MLflow's (``runs.run_id``,
``metrics.key/value/step/timestamp`` …) so SQL reads like MLflow's docs. Times
are integer milliseconds since the epoch, as in MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import pyarrow as pa

__all__ = ["CHANGE_FEED_TABLES", "TABLES", "FoldResult", "MergeMode", "TableSpec", "empty_table"]


class MergeMode(Enum):
    """How the rows of one fold output enter a table that already has rows."""

    #: Rows are appended (events, metrics, params: params are write-once, checked at the gateway).
    APPEND = "append"
    #: Upsert by key; a null column in the fold row means "unchanged" (COALESCE(new, old)).
    COALESCE = "coalesce"
    #: Upsert by key, whole row; a fold row with ``deleted`` true removes the key.
    UPSERT = "upsert"
    #: Upsert by key only when the new row is later: higher step, then timestamp, then value.
    LATEST = "latest"


@dataclass(frozen=True)
class TableSpec:
    """One table: its stored schema, key and merge rule.

    ``fold_schema`` is what the fold emits; it equals ``schema`` plus, for UPSERT
    tables, a ``deleted`` flag column that is never stored.
    """

    name: str
    schema: pa.Schema
    keys: tuple[str, ...]
    mode: MergeMode
    doc: str
    fold_schema: pa.Schema = field(init=False)

    def __post_init__(self) -> None:
        fold = self.schema
        if self.mode is MergeMode.UPSERT:
            fold = fold.append(pa.field("deleted", pa.bool_(), nullable=False))
        object.__setattr__(self, "fold_schema", fold)


def _s(*fields: tuple[str, pa.DataType, bool]) -> pa.Schema:
    return pa.schema([pa.field(n, t, nullable=nullable) for n, t, nullable in fields])


_STR, _I64, _F64, _I32 = pa.string(), pa.int64(), pa.float64(), pa.int32()

EVENTS = TableSpec(
    "events",
    _s(
        ("position", _I64, False),
        ("batch_id", _STR, False),
        ("event_index", _I32, False),
        ("event_type", _STR, False),
        ("experiment_id", _STR, True),
        ("run_id", _STR, True),
        ("user", _STR, False),
        ("timestamp", _I64, False),
        ("payload", _STR, False),
    ),
    keys=("position", "event_index"),
    mode=MergeMode.APPEND,
    doc="Every accepted event, in log order: the audit trail. payload is the event as "
    "JSON; for metrics_logged it holds the keys and point count, and the points are the "
    "metrics rows with the same position.",
)
EXPERIMENTS = TableSpec(
    "experiments",
    _s(
        ("experiment_id", _STR, False),
        ("name", _STR, True),
        ("artifact_location", _STR, True),
        ("lifecycle_stage", _STR, True),
        ("creation_time", _I64, True),
        ("last_update_time", _I64, True),
    ),
    keys=("experiment_id",),
    mode=MergeMode.COALESCE,
    doc="One row per experiment; lifecycle_stage is 'active' or 'deleted'.",
)
EXPERIMENT_TAGS = TableSpec(
    "experiment_tags",
    _s(("experiment_id", _STR, False), ("key", _STR, False), ("value", _STR, False)),
    keys=("experiment_id", "key"),
    mode=MergeMode.UPSERT,
    doc="Current tags of each experiment.",
)
RUNS = TableSpec(
    "runs",
    _s(
        ("run_id", _STR, False),
        ("experiment_id", _STR, True),
        ("run_name", _STR, True),
        ("user_id", _STR, True),
        ("status", _STR, True),
        ("start_time", _I64, True),
        ("end_time", _I64, True),
        ("lifecycle_stage", _STR, True),
        ("artifact_uri", _STR, True),
        ("parent_run_id", _STR, True),
    ),
    keys=("run_id",),
    mode=MergeMode.COALESCE,
    doc="One row per run; status is RUNNING, SCHEDULED, FINISHED, FAILED or KILLED.",
)
PARAMS = TableSpec(
    "params",
    _s(("run_id", _STR, False), ("key", _STR, False), ("value", _STR, False)),
    keys=("run_id", "key"),
    mode=MergeMode.APPEND,
    doc="Params of each run (written once).",
)
TAGS = TableSpec(
    "tags",
    _s(("run_id", _STR, False), ("key", _STR, False), ("value", _STR, False)),
    keys=("run_id", "key"),
    mode=MergeMode.UPSERT,
    doc="Current tags of each run (the last write wins; deleted tags are gone).",
)
METRICS = TableSpec(
    "metrics",
    _s(
        ("run_id", _STR, False),
        ("key", _STR, False),
        ("value", _F64, False),
        ("timestamp", _I64, False),
        ("step", _I64, False),
        ("position", _I64, False),
    ),
    keys=("run_id", "key", "timestamp", "step", "value"),
    mode=MergeMode.APPEND,
    doc="Every metric point (full history). position is the event-log position it came in.",
)
LATEST_METRICS = TableSpec(
    "latest_metrics",
    _s(
        ("run_id", _STR, False),
        ("key", _STR, False),
        ("value", _F64, False),
        ("timestamp", _I64, False),
        ("step", _I64, False),
    ),
    keys=("run_id", "key"),
    mode=MergeMode.LATEST,
    doc="The latest point of each run's metric: highest step, then timestamp, then value.",
)

ARTIFACTS = TableSpec(
    "artifacts",
    _s(
        ("run_id", _STR, False),
        ("path", _STR, False),
        ("size", _I64, False),
        ("sha256", _STR, False),
        ("timestamp", _I64, False),
        ("position", _I64, False),
    ),
    keys=("run_id", "path"),
    mode=MergeMode.UPSERT,
    doc="Files stored under each run's artifact root (path relative to it); the latest "
    "upload of a path wins. The bytes live in the artifact store, not here.",
)

REGISTERED_MODELS = TableSpec(
    "registered_models",
    _s(
        ("model_id", _STR, False),
        ("name", _STR, True),
        ("description", _STR, True),
        ("creation_time", _I64, True),
        ("last_updated_time", _I64, True),
        ("lifecycle_stage", _STR, True),
    ),
    keys=("model_id",),
    mode=MergeMode.COALESCE,
    doc="One row per registered model. model_id is its identity for life; name is its "
    "current name. lifecycle_stage 'deleted' hides it and its versions.",
)
REGISTERED_MODEL_TAGS = TableSpec(
    "registered_model_tags",
    _s(("model_id", _STR, False), ("key", _STR, False), ("value", _STR, False)),
    keys=("model_id", "key"),
    mode=MergeMode.UPSERT,
    doc="Current tags of each registered model.",
)
MODEL_VERSIONS = TableSpec(
    "model_versions",
    _s(
        ("model_id", _STR, False),
        ("version", _I64, False),
        ("source", _STR, True),
        ("run_id", _STR, True),
        ("description", _STR, True),
        ("current_stage", _STR, True),
        ("status", _STR, True),
        ("creation_time", _I64, True),
        ("last_updated_time", _I64, True),
        ("user_id", _STR, True),
        ("lifecycle_stage", _STR, True),
    ),
    keys=("model_id", "version"),
    mode=MergeMode.COALESCE,
    doc="One row per model version (join registered_models on model_id for the name); "
    "run_id is the run that produced it.",
)
MODEL_VERSION_TAGS = TableSpec(
    "model_version_tags",
    _s(
        ("model_id", _STR, False),
        ("version", _I64, False),
        ("key", _STR, False),
        ("value", _STR, False),
    ),
    keys=("model_id", "version", "key"),
    mode=MergeMode.UPSERT,
    doc="Current tags of each model version.",
)
MODEL_ALIASES = TableSpec(
    "model_aliases",
    _s(("model_id", _STR, False), ("alias", _STR, False), ("version", _I64, False)),
    keys=("model_id", "alias"),
    mode=MergeMode.UPSERT,
    doc="Aliases of registered models (e.g. champion -> 3).",
)

#: Every table, in the order a compaction round commits them. ``events`` is last:
#: its commit marks the round as done (see the compactor's commit protocol).
TABLES: dict[str, TableSpec] = {
    t.name: t
    for t in (
        EXPERIMENTS,
        EXPERIMENT_TAGS,
        RUNS,
        PARAMS,
        TAGS,
        METRICS,
        LATEST_METRICS,
        ARTIFACTS,
        REGISTERED_MODELS,
        REGISTERED_MODEL_TAGS,
        MODEL_VERSIONS,
        MODEL_VERSION_TAGS,
        MODEL_ALIASES,
        EVENTS,
    )
}

#: The tables the query service's in-memory index is built from. At scale it follows
#: them through Delta's change data feed, so the Spark compactor creates them with
#: ``delta.enableChangeDataFeed`` (the others need no feed: they are read per query).
CHANGE_FEED_TABLES: tuple[str, ...] = (
    "experiments",
    "experiment_tags",
    "runs",
    "params",
    "tags",
    "latest_metrics",
)


def empty_table(name: str, *, fold: bool = False) -> pa.Table:
    spec = TABLES[name]
    return (spec.fold_schema if fold else spec.schema).empty_table()


@dataclass(frozen=True)
class FoldResult:
    """The rows one compaction round contributes to each table (``fold_schema`` each).

    Within one result an upsert table has at most one row per key, so it can be
    merged without duplicate-source-key ambiguity. ``first_position`` and
    ``last_position`` bound the log records folded (inclusive).
    """

    tables: dict[str, pa.Table]
    first_position: int
    last_position: int

    def rows(self, name: str) -> pa.Table:
        return self.tables.get(name) or empty_table(name, fold=True)
