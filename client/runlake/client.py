"""RunlakeClient: the explicit API (MLflow's MlflowClient names); the fluent API sits on it.

Writes go through the process's ordered background sender; reads first flush it
and send its latest position token, so a client reads its own writes.
"""

from __future__ import annotations

import numbers
import os
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import grpc
import numpy as np
import pyarrow as pa

from runlake import _context
from runlake._sender import Sender, sender_for
from runlake._uri import channel, resolve
from runlake.entities import Experiment, Metric, PagedList, Run, RunData, RunInfo, ViewType
from runlake.errors import InvalidArgument, RunlakeError, from_grpc
from runlake.v1 import events_pb2, gateway_pb2, gateway_pb2_grpc, query_pb2, query_pb2_grpc

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["RunlakeClient"]

_I64 = 2**63
_STATUSES = {"RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"}


def _now_ms() -> int:
    return int(time.time() * 1000)


def _int(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral | np.integer):
        if isinstance(value, float) and value.is_integer():
            return _int(int(value), field)
        raise InvalidArgument(f"must be an integer, got {value!r}", field=field)
    if not -(2**63) <= int(value) < 2**63:
        raise InvalidArgument(f"{value} does not fit in 64 bits", field=field)
    return int(value)


def _value(value: Any, field: str = "value") -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real | np.number):
        raise InvalidArgument(f"must be a real number, got {value!r}", field=field)
    return float(value)


def point(value: Any, timestamp: Any, step: Any) -> tuple[float, int, int]:
    """Check what the wire cannot carry (a NaN step, a bool value) before anything is queued."""
    # Fast paths for the common exact types keep this off the training loop's bill.
    tv, ts, st = type(value), type(timestamp), type(step)
    v = float(value) if tv is float or tv is int else _value(value)
    if timestamp is None:
        t = int(time.time() * 1000)
    elif ts is int and 0 <= timestamp < _I64:
        t = timestamp
    else:
        t = _int(timestamp, "timestamp")
    if step is None:
        s = 0
    elif st is int and -_I64 <= step < _I64:
        s = step
    else:
        s = _int(step, "step")
    return v, t, s


def _kv(items: dict[str, Any] | None) -> list[events_pb2.KeyValue]:
    return [events_pb2.KeyValue(key=str(k), value=str(v)) for k, v in (items or {}).items()]


class RunlakeClient:
    """Talks to one runlake server; cheap to create (channels are shared per process)."""

    def __init__(self, tracking_uri: str | None = None) -> None:
        from runlake import fluent

        self.tracking_uri = resolve(tracking_uri, fluent.session.tracking_uri)
        ch = channel(self.tracking_uri)
        self._gateway = gateway_pb2_grpc.GatewayStub(ch)
        self._query = query_pb2_grpc.QueryStub(ch)
        self._metadata = (("x-runlake-user", _context.user()),)
        self._sender_pid = -1
        self._sender_obj: Sender

    @property
    def sender(self) -> Sender:
        """This process's ordered sender for the URI (a new one after fork)."""
        pid = os.getpid()
        if self._sender_pid != pid:
            self._sender_obj = sender_for(self.tracking_uri, _context.user())
            self._sender_pid = pid
        return self._sender_obj

    def _read(self) -> query_pb2.ReadOptions:
        return query_pb2.ReadOptions(min_position=self.sender.flush())

    def _call(self, fn: Any, request: Any) -> Any:
        try:
            return fn(request, timeout=120, metadata=self._metadata)
        except grpc.RpcError as exc:
            raise from_grpc(exc) from None

    def flush(self, timeout: float | None = None) -> None:
        """Block until everything logged so far is acknowledged; raise if any was rejected."""
        self.sender.flush(timeout)

    # -- experiments --

    def create_experiment(
        self, name: str, artifact_location: str | None = None, tags: dict[str, Any] | None = None
    ) -> str:
        self.sender.flush()
        reply = self._call(
            self._gateway.CreateExperiment,
            gateway_pb2.CreateExperimentRequest(
                name=name, artifact_location=artifact_location or "", tags=_kv(tags)
            ),
        )
        self.sender.token = max(self.sender.token, reply.position, key=lambda t: int(t or 0))
        return str(reply.experiment_id)

    def get_experiment(self, experiment_id: str) -> Experiment:
        req = query_pb2.GetExperimentRequest(read=self._read(), experiment_id=experiment_id)
        return Experiment.from_proto(self._call(self._query.GetExperiment, req))

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        req = query_pb2.GetExperimentRequest(read=self._read(), name=name)
        try:
            return Experiment.from_proto(self._call(self._query.GetExperiment, req))
        except RunlakeError as exc:
            if exc.code == grpc.StatusCode.NOT_FOUND:
                return None
            raise

    def search_experiments(
        self,
        view_type: ViewType = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        filter_string: str = "",
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> list[Experiment]:
        req = query_pb2.SearchExperimentsRequest(
            read=self._read(),
            view_type=query_pb2.ViewType.ValueType(int(view_type)),
            filter=filter_string,
            order_by=list(order_by or []),
            max_results=max_results,
            page_token=page_token or "",
        )
        reply = self._call(self._query.SearchExperiments, req)
        return [Experiment.from_proto(e) for e in reply.experiments]

    def _entity_event(self, event: events_pb2.Event) -> None:
        """Lifecycle changes go through the ordered queue and are confirmed at once."""
        self.sender.event(event)
        self.sender.flush()

    def delete_experiment(self, experiment_id: str) -> None:
        ev = events_pb2.ExperimentDeleted(experiment_id=experiment_id)
        self._entity_event(events_pb2.Event(experiment_deleted=ev))

    def restore_experiment(self, experiment_id: str) -> None:
        ev = events_pb2.ExperimentRestored(experiment_id=experiment_id)
        self._entity_event(events_pb2.Event(experiment_restored=ev))

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        ev = events_pb2.ExperimentRenamed(experiment_id=experiment_id, name=new_name)
        self._entity_event(events_pb2.Event(experiment_renamed=ev))

    def set_experiment_tag(self, experiment_id: str, key: str, value: Any) -> None:
        tag = events_pb2.KeyValue(key=key, value=str(value))
        ev = events_pb2.ExperimentTagSet(experiment_id=experiment_id, tag=tag)
        self.sender.event(events_pb2.Event(experiment_tag_set=ev))

    # -- runs: writes (enqueue only) --

    def create_run(
        self,
        experiment_id: str,
        start_time: int | None = None,
        tags: dict[str, Any] | None = None,
        run_name: str | None = None,
        parent_run_id: str | None = None,
    ) -> Run:
        run_id = uuid.uuid4().hex
        start = _int(start_time, "start_time") if start_time is not None else _now_ms()
        all_tags = {**_context.run_context_tags(), **(tags or {})}
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        name = run_name or all_tags.get("mlflow.runName") or f"run-{run_id[:8]}"
        self.sender.event(
            events_pb2.Event(
                run_created=events_pb2.RunCreated(
                    run_id=run_id,
                    experiment_id=str(experiment_id),
                    run_name=str(name),
                    start_time=start,
                    user_id=_context.user(),
                    tags=_kv(all_tags),
                    parent_run_id=parent_run_id or "",
                )
            )
        )
        info = RunInfo(
            run_id,
            str(name),
            str(experiment_id),
            _context.user(),
            "RUNNING",
            start,
            None,
            "active",
            "",
        )
        return Run(info, RunData(tags={k: str(v) for k, v in all_tags.items()}))

    def log_metric(
        self,
        run_id: str,
        key: str,
        value: float,
        timestamp: int | None = None,
        step: int | None = None,
    ) -> None:
        self.sender.metric(run_id, key, *point(value, timestamp, step))

    def log_param(self, run_id: str, key: str, value: Any) -> None:
        self.log_batch(run_id, params={key: value})

    def set_tag(self, run_id: str, key: str, value: Any) -> None:
        self.log_batch(run_id, tags={key: value})

    def delete_tag(self, run_id: str, key: str) -> None:
        self.sender.event(
            events_pb2.Event(tag_deleted=events_pb2.TagDeleted(run_id=run_id, key=key))
        )

    def log_batch(
        self,
        run_id: str,
        metrics: Iterable[Metric] = (),
        params: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None,
    ) -> None:
        for m in metrics:
            self.log_metric(run_id, m.key, m.value, m.timestamp, m.step)
        if params:
            ev = events_pb2.ParamsLogged(run_id=run_id, params=_kv(params))
            self.sender.event(events_pb2.Event(params_logged=ev))
        if tags:
            ev2 = events_pb2.TagsSet(run_id=run_id, tags=_kv(tags))
            self.sender.event(events_pb2.Event(tags_set=ev2))

    def update_run(
        self,
        run_id: str,
        status: str | None = None,
        name: str | None = None,
        end_time: int | None = None,
    ) -> None:
        if status is not None and status not in _STATUSES:
            raise InvalidArgument(f"{status!r} is not one of {sorted(_STATUSES)}", field="status")
        upd = events_pb2.RunUpdated(
            run_id=run_id,
            status=events_pb2.RunStatus.Value(status)
            if status
            else events_pb2.RUN_STATUS_UNSPECIFIED,
        )
        if end_time is not None:
            upd.end_time = _int(end_time, "end_time")
        if name is not None:
            upd.run_name = name
        self.sender.event(events_pb2.Event(run_updated=upd))

    def set_terminated(
        self, run_id: str, status: str = "FINISHED", end_time: int | None = None
    ) -> None:
        self.update_run(run_id, status=status, end_time=end_time or _now_ms())

    def delete_run(self, run_id: str) -> None:
        self._entity_event(events_pb2.Event(run_deleted=events_pb2.RunDeleted(run_id=run_id)))

    def restore_run(self, run_id: str) -> None:
        self._entity_event(events_pb2.Event(run_restored=events_pb2.RunRestored(run_id=run_id)))

    # -- runs: reads --

    def get_run(self, run_id: str) -> Run:
        req = query_pb2.GetRunRequest(read=self._read(), run_id=run_id)
        return Run.from_proto(self._call(self._query.GetRun, req))

    def search_runs(
        self,
        experiment_ids: Sequence[str] | None = None,
        filter_string: str = "",
        run_view_type: ViewType = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList:
        req = query_pb2.SearchRunsRequest(
            read=self._read(),
            experiment_ids=[str(e) for e in experiment_ids or []],
            filter=filter_string,
            view_type=query_pb2.ViewType.ValueType(int(run_view_type)),
            order_by=list(order_by or []),
            max_results=max_results,
            page_token=page_token or "",
        )
        reply = self._call(self._query.SearchRuns, req)
        return PagedList([Run.from_proto(r) for r in reply.runs], reply.next_page_token)

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        req = query_pb2.GetMetricHistoryRequest(read=self._read(), run_id=run_id, key=key)
        try:
            chunks = list(self._query.GetMetricHistory(req, timeout=120, metadata=self._metadata))
        except grpc.RpcError as exc:
            raise from_grpc(exc) from None
        out: list[Metric] = []
        for c in chunks:
            vals = np.frombuffer(c.values, "<f8").tolist()
            stamps = np.frombuffer(c.timestamps, "<i8").tolist()
            steps = np.frombuffer(c.steps, "<i8").tolist()
            out.extend(map(Metric, [key] * len(vals), vals, stamps, steps))
        return out

    def sql(
        self, query: str, *, arrow: bool = False, timeout_s: float = 30.0
    ) -> pd.DataFrame | pa.Table:
        req = query_pb2.SqlRequest(read=self._read(), query=query, timeout_ms=int(timeout_s * 1000))
        try:
            data = b"".join(
                c.arrow_ipc
                for c in self._query.Sql(req, timeout=timeout_s + 60, metadata=self._metadata)
            )
        except grpc.RpcError as exc:
            raise from_grpc(exc) from None
        table = pa.ipc.open_stream(data).read_all()
        return table if arrow else table.to_pandas()
