"""Plain entity classes, MLflow's shapes; converted from protos at the edge."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

from runlake.v1 import events_pb2, query_pb2

__all__ = ["Experiment", "Metric", "PagedList", "Run", "RunData", "RunInfo", "ViewType"]


class ViewType(IntEnum):
    ACTIVE_ONLY = query_pb2.ACTIVE_ONLY
    DELETED_ONLY = query_pb2.DELETED_ONLY
    ALL = query_pb2.ALL


def _stage(stage: int) -> str:
    return "deleted" if stage == query_pb2.DELETED else "active"


@dataclass(frozen=True)
class Experiment:
    experiment_id: str
    name: str
    artifact_location: str
    lifecycle_stage: str
    creation_time: int
    last_update_time: int
    tags: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_proto(cls, p: query_pb2.Experiment) -> Experiment:
        return cls(
            p.experiment_id,
            p.name,
            p.artifact_location,
            _stage(p.lifecycle_stage),
            p.creation_time,
            p.last_update_time,
            {t.key: t.value for t in p.tags},
        )


@dataclass(frozen=True)
class Metric:
    key: str
    value: float
    timestamp: int
    step: int


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
        return self.run_id


@dataclass(frozen=True)
class RunData:
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Run:
    info: RunInfo
    data: RunData

    @classmethod
    def from_proto(cls, p: query_pb2.Run) -> Run:
        i = p.info
        info = RunInfo(
            i.run_id,
            i.run_name,
            i.experiment_id,
            i.user_id,
            events_pb2.RunStatus.Name(i.status),
            i.start_time,
            i.end_time if i.HasField("end_time") else None,
            _stage(i.lifecycle_stage),
            i.artifact_uri,
        )
        data = RunData(
            {m.key: m.value for m in p.data.metrics},
            {kv.key: kv.value for kv in p.data.params},
            {kv.key: kv.value for kv in p.data.tags},
        )
        return cls(info, data)


class PagedList(list[Run]):
    """A page of results; ``token`` fetches the next page ("" when this is the last)."""

    def __init__(self, items: list[Run], token: str) -> None:
        super().__init__(items)
        self.token = token
