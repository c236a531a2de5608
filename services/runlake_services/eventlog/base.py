"""Interfaces of the event log and of the state the gateway validates against."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlparse

from runlake.errors import InvalidArgument

__all__ = [
    "Appended",
    "Catalog",
    "EventLog",
    "ExperimentState",
    "LogRecord",
    "ModelState",
    "RunState",
    "StateChanges",
    "VersionState",
    "open_event_log",
]


@dataclass(frozen=True)
class ExperimentState:
    experiment_id: str
    name: str
    lifecycle_stage: str  # "active" | "deleted"
    artifact_location: str


@dataclass(frozen=True)
class RunState:
    run_id: str
    experiment_id: str
    status: str  # RunStatus name: RUNNING, FINISHED …
    lifecycle_stage: str


@dataclass(frozen=True)
class ModelState:
    """A registered model as the gateway validates against it."""

    model_id: str
    name: str
    lifecycle_stage: str  # "active" | "deleted"
    last_version: int  # the highest version number ever given (deleted ones included)


@dataclass(frozen=True)
class VersionState:
    model_id: str
    version: int
    stage: str  # None, Staging, Production, Archived
    lifecycle_stage: str


@dataclass
class StateChanges:
    """What the catalog must remember once a batch is durable (same transaction)."""

    experiments: dict[str, ExperimentState] = field(default_factory=dict)
    runs: dict[str, RunState] = field(default_factory=dict)
    params: dict[tuple[str, str], str] = field(default_factory=dict)
    models: dict[str, ModelState] = field(default_factory=dict)
    versions: dict[tuple[str, int], VersionState] = field(default_factory=dict)
    #: (model_id, alias) -> version, or None for a deleted alias
    aliases: dict[tuple[str, str], int | None] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(
            self.experiments
            or self.runs
            or self.params
            or self.models
            or self.versions
            or self.aliases
        )


@dataclass(frozen=True)
class Appended:
    position: int
    duplicate: bool


@dataclass(frozen=True)
class LogRecord:
    position: int
    payload: bytes  # a serialized runlake.v1.LoggedBatch


class Catalog(Protocol):
    """The entity state the gateway needs to validate a batch before appending it."""

    def experiment(self, experiment_id: str) -> ExperimentState | None: ...

    def experiment_by_name(self, name: str) -> ExperimentState | None: ...

    def runs(self, run_ids: Sequence[str]) -> Mapping[str, RunState]: ...

    def params(self, run_id: str, keys: Sequence[str]) -> Mapping[str, str]: ...

    def model_by_name(self, name: str) -> ModelState | None:
        """The active registered model called ``name``, if any."""
        ...

    def model_version(self, model_id: str, version: int) -> VersionState | None: ...

    def versions_in_stage(self, model_id: str, stage: str) -> list[int]:
        """Active versions of the model currently in ``stage``."""
        ...

    def alias(self, model_id: str, alias: str) -> int | None: ...


class EventLog(Protocol):
    """An ordered, durable log of batches with batch-id idempotency."""

    @property
    def catalog(self) -> Catalog: ...

    def find(self, batch_id: str) -> int | None:
        """The position of an already appended batch id, if any."""
        ...

    def append(self, batch_id: str, payload: bytes, changes: StateChanges) -> Appended:
        """Make ``payload`` durable with ``changes``; returns only once both are durable."""
        ...

    def read(self, after: int, *, max_records: int, max_bytes: int) -> list[LogRecord]:
        """Records with position > ``after``, in order."""
        ...

    def end_position(self) -> int: ...

    def close(self) -> None: ...


_BUILDERS: dict[str, Callable[[str], EventLog]] = {}


def _sqlite(uri: str) -> EventLog:
    from runlake_services.eventlog.sqlite import SqliteEventLog

    path = urlparse(uri).path
    if not path or path == "/":
        raise InvalidArgument(f"{uri!r} names no database file", field="log_uri")
    return SqliteEventLog(path)


def _kafka(uri: str) -> EventLog:
    from typing import cast

    from runlake_services.eventlog.kafka import KafkaEventLog

    # Its positions are vector tokens (str), not row ids: see docs/decisions/0012.
    return cast(EventLog, KafkaEventLog.from_uri(uri))


_BUILDERS["sqlite"] = _sqlite
_BUILDERS["kafka"] = _kafka


def open_event_log(uri: str) -> EventLog:
    """Open the log named by ``uri`` (``sqlite:///path/to/log.db``, ``kafka://host:port/topic``)."""
    scheme = urlparse(uri).scheme
    builder = _BUILDERS.get(scheme)
    if builder is None:
        valid = ", ".join(f"{s}://" for s in sorted(_BUILDERS))
        raise InvalidArgument(f"unknown scheme in {uri!r}; valid: {valid}", field="log_uri")
    return builder(uri)
