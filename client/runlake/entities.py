"""Plain, frozen entity classes in MLflow's shapes, converted from protos at the edge.

Code written against MLflow's entities (``run.info.run_id``, ``run.data.metrics``,
``info.status == "FINISHED"``) reads runlake's the same way; the protos never leak
past :mod:`runlake.client`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Generic, NamedTuple, TypeVar

from runlake.errors import InvalidArgument
from runlake.v1 import events_pb2, query_pb2

__all__ = [
    "Experiment",
    "LifecycleStage",
    "Metric",
    "PagedList",
    "Param",
    "Run",
    "RunData",
    "RunInfo",
    "RunStatus",
    "RunTag",
    "ViewType",
]

T = TypeVar("T")


class ViewType(IntEnum):
    """Which lifecycle stages a search returns (MLflow's ``ViewType``)."""

    ACTIVE_ONLY = query_pb2.ACTIVE_ONLY
    DELETED_ONLY = query_pb2.DELETED_ONLY
    ALL = query_pb2.ALL

    @classmethod
    def from_string(cls, name: str) -> ViewType:
        """``"active"``/``"active_only"``, ``"deleted"``/``"deleted_only"`` or ``"all"``."""
        key = name.strip().upper()
        aliases = {"ACTIVE": "ACTIVE_ONLY", "DELETED": "DELETED_ONLY"}
        try:
            return cls[aliases.get(key, key)]
        except KeyError:
            raise InvalidArgument(
                f"{name!r} is not one of active, deleted, all", field="view_type"
            ) from None


class LifecycleStage:
    """The two lifecycle stages, as the strings MLflow uses."""

    ACTIVE = "active"
    DELETED = "deleted"

    @staticmethod
    def from_proto(stage: int) -> str:
        return LifecycleStage.DELETED if stage == query_pb2.DELETED else LifecycleStage.ACTIVE


class RunStatus:
    """Run statuses as MLflow's strings, with the conversions to and from the wire enum."""

    RUNNING = "RUNNING"
    SCHEDULED = "SCHEDULED"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"
    _ALL = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")

    @staticmethod
    def all_status() -> list[str]:
        return list(RunStatus._ALL)

    @staticmethod
    def is_terminated(status: str) -> bool:
        """FINISHED, FAILED and KILLED end a run."""
        return status in ("FINISHED", "FAILED", "KILLED")

    @staticmethod
    def to_proto(status: str, field: str = "status") -> events_pb2.RunStatus.ValueType:
        """The wire enum of ``status``; InvalidArgument naming ``field`` when unknown."""
        if status not in RunStatus._ALL:
            raise InvalidArgument(
                f"{status!r} is not one of {', '.join(RunStatus._ALL)}", field=field
            )
        return events_pb2.RunStatus.Value(status)

    @staticmethod
    def from_proto(status: int) -> str:
        if status == events_pb2.RUN_STATUS_UNSPECIFIED:
            return RunStatus.RUNNING
        return events_pb2.RunStatus.Name(status)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Experiment:
    experiment_id: str
    name: str
    artifact_location: str
    lifecycle_stage: str
    tags: dict[str, str] = field(default_factory=dict)
    creation_time: int | None = None
    last_update_time: int | None = None

    @classmethod
    def from_proto(cls, p: query_pb2.Experiment) -> Experiment:
        return cls(
            experiment_id=p.experiment_id,
            name=p.name,
            artifact_location=p.artifact_location,
            lifecycle_stage=LifecycleStage.from_proto(p.lifecycle_stage),
            tags={t.key: t.value for t in p.tags},
            creation_time=p.creation_time,
            last_update_time=p.last_update_time,
        )


class Metric(NamedTuple):
    """One metric point; ``timestamp`` in ms since the epoch.

    A named tuple rather than a frozen dataclass: a metric history can hold millions
    of points, and a tuple subclass is built in C several times faster (measured:
    1M points in 0.14 s against 0.5 s). Fields, order and immutability are the same.
    """

    key: str
    value: float
    timestamp: int
    step: int


@dataclass(frozen=True)
class Param:
    key: str
    value: str


@dataclass(frozen=True)
class RunTag:
    key: str
    value: str


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    run_name: str
    experiment_id: str
    user_id: str
    status: str
    start_time: int
    end_time: int | None
    lifecycle_stage: str
    artifact_uri: str

    @property
    def run_uuid(self) -> str:
        """MLflow's older name for ``run_id``."""
        return self.run_id

    @classmethod
    def from_proto(cls, i: query_pb2.RunInfo) -> RunInfo:
        return cls(
            run_id=i.run_id,
            run_name=i.run_name,
            experiment_id=i.experiment_id,
            user_id=i.user_id,
            status=RunStatus.from_proto(i.status),
            start_time=i.start_time,
            end_time=i.end_time if i.HasField("end_time") else None,
            lifecycle_stage=LifecycleStage.from_proto(i.lifecycle_stage),
            artifact_uri=i.artifact_uri,
        )


@dataclass(frozen=True)
class RunData:
    """Latest value per metric key, and the params and tags, as dicts."""

    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_proto(cls, d: query_pb2.RunData) -> RunData:
        return cls(
            metrics={m.key: m.value for m in d.metrics},
            params={kv.key: kv.value for kv in d.params},
            tags={kv.key: kv.value for kv in d.tags},
        )


@dataclass(frozen=True)
class Run:
    info: RunInfo
    data: RunData

    @classmethod
    def from_proto(cls, p: query_pb2.Run) -> Run:
        return cls(RunInfo.from_proto(p.info), RunData.from_proto(p.data))


class PagedList(list[T], Generic[T]):
    """A page of results; ``token`` fetches the next page ("" or None after the last)."""

    def __init__(self, items: list[T], token: str | None) -> None:
        super().__init__(items)
        self.token = token or None
