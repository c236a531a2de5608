"""RunlakeClient: the explicit API with MLflow's ``MlflowClient`` names; the fluent API sits on it.

Writes go through the process's ordered background sender (:mod:`runlake._sender`):
``create_run`` and ``log_*`` only enqueue; lifecycle changes (delete, restore,
rename) enqueue too, so they never overtake earlier writes, and then flush so their
errors surface at the call. Reads first flush and send the latest acknowledged
position as ``ReadOptions.min_position``: a script that logs then reads sees its
own writes. Every ``grpc.RpcError`` comes out as a :mod:`runlake.errors` class.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

import grpc

from runlake import _artifacts, _context, _reads
from runlake import _validate as chk
from runlake._artifacts import FileInfo
from runlake._registry import RegistryMixin
from runlake._sender import Sender, existing_sender, sender_for
from runlake._session import session
from runlake._uri import channel, resolve
from runlake.artifact_paths import join_artifact_path
from runlake.entities import (
    Experiment,
    Metric,
    PagedList,
    Run,
    RunData,
    RunInfo,
    RunStatus,
    ViewType,
)
from runlake.errors import InvalidArgument, NotFound, RunlakeError, Unavailable, from_grpc
from runlake.positions import later
from runlake.v1 import (
    events_pb2,
    gateway_pb2,
    gateway_pb2_grpc,
    query_pb2,
    query_pb2_grpc,
)

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["RunlakeClient"]

R = TypeVar("R")
_RPC_TIMEOUT_S = 120.0
_E = events_pb2.Event


def _read_wait_ms() -> int:
    """How long a read waits for the tables to catch up with our writes (default 30 s)."""
    try:
        return int(os.environ.get("RUNLAKE_READ_WAIT_MS", "30000"))
    except ValueError:
        return 30_000


def _view(view: ViewType | int | str) -> query_pb2.ViewType.ValueType:
    v = ViewType.from_string(view) if isinstance(view, str) else ViewType(view)
    return query_pb2.ViewType.ValueType(int(v))


class RunlakeClient(RegistryMixin):
    """Talks to one runlake server. Cheap to create: channel and sender are shared per process."""

    def __init__(self, tracking_uri: str | None = None) -> None:
        self.tracking_uri = resolve(tracking_uri, session.tracking_uri)
        self._user = _context.user()
        self._metadata = (("x-runlake-user", self._user),)
        self._s: Sender | None = None
        self._gateway_stub: gateway_pb2_grpc.GatewayStub | None = None
        self._query_stub: query_pb2_grpc.QueryStub | None = None
        self._artifact_transfer: _artifacts.ArtifactTransfer | None = None
        self._explicit_position = ""

    # -- plumbing --

    @property
    def _sender(self) -> Sender:
        s = self._s
        if s is None or s.stale:
            s = self._s = sender_for(self.tracking_uri, self._user)
        return s

    @property
    def _gateway(self) -> gateway_pb2_grpc.GatewayStub:
        if self._gateway_stub is None:
            self._gateway_stub = gateway_pb2_grpc.GatewayStub(channel(self.tracking_uri))
        return self._gateway_stub

    @property
    def _query(self) -> query_pb2_grpc.QueryStub:
        if self._query_stub is None:
            self._query_stub = query_pb2_grpc.QueryStub(channel(self.tracking_uri))
        return self._query_stub

    @property
    def _artifacts(self) -> _artifacts.ArtifactTransfer:
        if self._artifact_transfer is None:
            self._artifact_transfer = _artifacts.ArtifactTransfer(
                channel(self.tracking_uri), self._metadata, self._error
            )
        return self._artifact_transfer

    def _read(self) -> query_pb2.ReadOptions:
        """Flush our writes, then ask the read to wait until they are folded."""
        s = self._s if self._s is not None and not self._s.stale else None
        s = s or existing_sender(self.tracking_uri)
        position = s.flush() if s is not None else ""
        position = later(self._explicit_position, position)
        return query_pb2.ReadOptions(min_position=position, wait_timeout_ms=_read_wait_ms())

    def _call(self, fn: Callable[..., R], request: Any) -> R:
        try:
            return fn(request, timeout=_RPC_TIMEOUT_S, metadata=self._metadata)
        except grpc.RpcError as exc:
            raise self._error(exc) from None

    def _error(self, exc: grpc.RpcError) -> RunlakeError:
        """The runlake error of a failed call; an unreachable server is named by its URI."""
        err = from_grpc(exc)
        if isinstance(err, Unavailable):
            out = Unavailable(f"cannot reach the runlake server at {self.tracking_uri} ({err})")
            out.code = err.code
            return out
        return err

    def _enqueue_and_confirm(self, event: events_pb2.Event) -> None:
        """Lifecycle changes keep their place in the write order, then are confirmed."""
        s = self._sender
        s.event(event)
        s.flush()

    def flush(self, timeout: float | None = None) -> None:
        """Block until everything logged so far is acknowledged; raise the first rejection."""
        self._sender.flush(timeout)

    def sync(self) -> None:
        """Make this client's next reads see every write the server acknowledged so far.

        Reads already see this client's own writes. ``sync`` is for the writes of other
        processes: a driver that waited for its workers to finish calls it once, and its
        next read waits until the tables hold everything the workers logged.
        """
        self.flush()
        resp = self._call(self._query.GetPosition, query_pb2.PositionRequest())
        self._explicit_position = later(self._explicit_position, resp.log_end)

    # -- experiments --

    def create_experiment(
        self,
        name: str,
        artifact_location: str | None = None,
        tags: dict[str, Any] | None = None,
    ) -> str:
        """Create an experiment synchronously (after flushing) and return its id."""
        request = gateway_pb2.CreateExperimentRequest(
            name=chk.key(name, "name"),
            artifact_location=artifact_location or "",
            tags=chk.key_values(tags, "tags"),
        )
        s = self._sender
        s.flush()
        reply = self._call(self._gateway.CreateExperiment, request)
        s.note_position(reply.position)
        return str(reply.experiment_id)

    def get_experiment(self, experiment_id: str) -> Experiment:
        req = query_pb2.GetExperimentRequest(read=self._read(), experiment_id=str(experiment_id))
        return Experiment.from_proto(self._call(self._query.GetExperiment, req))

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        """The experiment called ``name`` (deleted ones too), or None."""
        req = query_pb2.GetExperimentRequest(read=self._read(), name=chk.key(name, "name"))
        try:
            return Experiment.from_proto(self._call(self._query.GetExperiment, req))
        except NotFound:
            return None

    def search_experiments(
        self,
        view_type: ViewType | int | str = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        filter_string: str | None = None,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[Experiment]:
        req = query_pb2.SearchExperimentsRequest(
            read=self._read(),
            view_type=_view(view_type),
            filter=filter_string or "",
            order_by=list(order_by or []),
            max_results=chk.integer(max_results, "max_results"),
            page_token=page_token or "",
        )
        reply = self._call(self._query.SearchExperiments, req)
        return PagedList(
            [Experiment.from_proto(e) for e in reply.experiments], reply.next_page_token
        )

    def delete_experiment(self, experiment_id: str) -> None:
        ev = events_pb2.ExperimentDeleted(experiment_id=str(experiment_id))
        self._enqueue_and_confirm(_E(experiment_deleted=ev))

    def restore_experiment(self, experiment_id: str) -> None:
        ev = events_pb2.ExperimentRestored(experiment_id=str(experiment_id))
        self._enqueue_and_confirm(_E(experiment_restored=ev))

    def rename_experiment(self, experiment_id: str, new_name: str) -> None:
        ev = events_pb2.ExperimentRenamed(
            experiment_id=str(experiment_id), name=chk.key(new_name, "name")
        )
        self._enqueue_and_confirm(_E(experiment_renamed=ev))

    def set_experiment_tag(self, experiment_id: str, key: str, value: Any) -> None:
        (tag,) = chk.key_values({key: value}, "tags")
        ev = events_pb2.ExperimentTagSet(experiment_id=str(experiment_id), tag=tag)
        self._enqueue_and_confirm(_E(experiment_tag_set=ev))

    # -- runs: writes (enqueue only) --

    def create_run(
        self,
        experiment_id: str,
        start_time: int | None = None,
        tags: dict[str, Any] | None = None,
        run_name: str | None = None,
        parent_run_id: str | None = None,
    ) -> Run:
        """Start a run: its id is chosen here and RunCreated is only enqueued (no round trip)."""
        run_id = uuid.uuid4().hex
        start = chk.now_ms() if start_time is None else chk.integer(start_time, "start_time")
        kvs = {kv.key: kv.value for kv in chk.key_values(tags, "tags")}
        name = run_name if run_name is not None else kvs.get("mlflow.runName")
        name = chk.key(name, "run_name") if name else f"run-{run_id[:8]}"
        kvs["mlflow.runName"] = name
        if parent_run_id:
            kvs["mlflow.parentRunId"] = chk.key(parent_run_id, "parent_run_id")
        self._sender.event(
            _E(
                run_created=events_pb2.RunCreated(
                    run_id=run_id,
                    experiment_id=str(experiment_id),
                    run_name=name,
                    start_time=start,
                    user_id=self._user,
                    tags=chk.key_values(kvs, "tags"),
                    parent_run_id=parent_run_id or "",
                )
            )
        )
        info = RunInfo(
            run_id=run_id,
            run_name=name,
            experiment_id=str(experiment_id),
            user_id=self._user,
            status=RunStatus.RUNNING,
            start_time=start,
            end_time=None,
            lifecycle_stage="active",
            artifact_uri="",
        )
        return Run(info, RunData(tags=kvs))

    def log_metric(
        self,
        run_id: str,
        key: str,
        value: float,
        timestamp: int | None = None,
        step: int | None = None,
    ) -> None:
        """Enqueue one point; checks run here (step an integer, value a real number)."""
        v, ts, st = chk.point(value, timestamp, step)
        self.enqueue_point(run_id, key, v, ts, st)

    def enqueue_point(
        self, run_id: str, name: str, value: float, timestamp: int, step: int
    ) -> None:
        """Enqueue an already checked point (the fluent API checks before choosing a run)."""
        if type(name) is not str:
            name = chk.key(name)
        s = self._s
        if s is None or s.stale:
            s = self._sender
        s.metric(run_id, name, value, timestamp, step)

    def log_param(self, run_id: str, key: str, value: Any) -> None:
        self.log_batch(run_id, params={key: value})

    def set_tag(self, run_id: str, key: str, value: Any) -> None:
        self.log_batch(run_id, tags={key: value})

    def delete_tag(self, run_id: str, key: str) -> None:
        ev = events_pb2.TagDeleted(run_id=run_id, key=chk.key(key))
        self._sender.event(_E(tag_deleted=ev))

    def log_batch(
        self,
        run_id: str,
        metrics: Iterable[Metric] = (),
        params: Iterable[Any] | dict[str, Any] = (),
        tags: Iterable[Any] | dict[str, Any] = (),
    ) -> None:
        """Metric, Param and RunTag entities (or dicts for params/tags), checked before queueing."""
        points = []
        for i, m in enumerate(metrics):
            if not isinstance(m, Metric):
                raise InvalidArgument(f"must be a Metric, got {m!r}", field=f"metrics[{i}]")
            points.append((chk.key(m.key), *chk.point(m.value, m.timestamp, m.step)))
        param_kvs = chk.key_values(params, "params")
        tag_kvs = chk.key_values(tags, "tags")
        s = self._sender
        for name, v, ts, st in points:
            s.metric(run_id, name, v, ts, st)
        if param_kvs:
            s.event(_E(params_logged=events_pb2.ParamsLogged(run_id=run_id, params=param_kvs)))
        if tag_kvs:
            s.event(_E(tags_set=events_pb2.TagsSet(run_id=run_id, tags=tag_kvs)))

    def update_run(
        self,
        run_id: str,
        status: str | None = None,
        name: str | None = None,
        *,
        end_time: int | None = None,
    ) -> None:
        """Change status, name or end time; only what is given changes (RunUpdated)."""
        upd = events_pb2.RunUpdated(run_id=run_id)
        if status is not None:
            upd.status = RunStatus.to_proto(status)
        if end_time is not None:
            upd.end_time = chk.integer(end_time, "end_time")
        if name is not None:
            upd.run_name = chk.key(name, "name")
        s = self._sender
        s.event(_E(run_updated=upd))
        if name is not None:  # as MLflow: the name is mirrored in the mlflow.runName tag
            tag = events_pb2.KeyValue(key="mlflow.runName", value=name)
            s.event(_E(tags_set=events_pb2.TagsSet(run_id=run_id, tags=[tag])))

    def set_terminated(
        self, run_id: str, status: str = "FINISHED", end_time: int | None = None
    ) -> None:
        """End a run (enqueued, in order after everything logged to it)."""
        self.update_run(
            run_id, status=status, end_time=chk.now_ms() if end_time is None else end_time
        )

    def delete_run(self, run_id: str) -> None:
        self._enqueue_and_confirm(_E(run_deleted=events_pb2.RunDeleted(run_id=run_id)))

    def restore_run(self, run_id: str) -> None:
        self._enqueue_and_confirm(_E(run_restored=events_pb2.RunRestored(run_id=run_id)))

    # -- runs: reads --

    def get_run(self, run_id: str) -> Run:
        req = query_pb2.GetRunRequest(read=self._read(), run_id=run_id)
        return Run.from_proto(self._call(self._query.GetRun, req))

    def search_runs(
        self,
        experiment_ids: Sequence[str] | str | None = None,
        filter_string: str = "",
        run_view_type: ViewType | int | str = ViewType.ACTIVE_ONLY,
        max_results: int = 1000,
        order_by: Sequence[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[Run]:
        """One page of runs matching MLflow's filter syntax; ``.token`` fetches the next."""
        ids = [experiment_ids] if isinstance(experiment_ids, str) else list(experiment_ids or [])
        req = query_pb2.SearchRunsRequest(
            read=self._read(),
            experiment_ids=[str(e) for e in ids],
            filter=filter_string or "",
            view_type=_view(run_view_type),
            order_by=list(order_by or []),
            max_results=chk.integer(max_results, "max_results"),
            page_token=page_token or "",
        )
        reply = self._call(self._query.SearchRuns, req)
        return PagedList([Run.from_proto(r) for r in reply.runs], reply.next_page_token)

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        """Every point of one metric, ordered by step then timestamp."""
        req = query_pb2.GetMetricHistoryRequest(read=self._read(), run_id=run_id, key=key)
        try:
            chunks = list(
                self._query.GetMetricHistory(req, timeout=_RPC_TIMEOUT_S, metadata=self._metadata)
            )
        except grpc.RpcError as exc:
            raise self._error(exc) from None
        return _reads.history(key, chunks)

    @overload
    def sql(
        self, query: str, *, arrow: Literal[False] = False, timeout_s: float = 30.0
    ) -> pd.DataFrame: ...

    @overload
    def sql(self, query: str, *, arrow: Literal[True], timeout_s: float = 30.0) -> pa.Table: ...

    def sql(
        self, query: str, *, arrow: bool = False, timeout_s: float = 30.0
    ) -> pd.DataFrame | pa.Table:
        """One read-only SQL statement over the table views: a DataFrame (or an Arrow table)."""
        req = query_pb2.SqlRequest(read=self._read(), query=query, timeout_ms=int(timeout_s * 1000))
        try:
            chunks = [
                c.arrow_ipc
                for c in self._query.Sql(
                    req, timeout=timeout_s + _RPC_TIMEOUT_S, metadata=self._metadata
                )
            ]
        except grpc.RpcError as exc:
            raise self._error(exc) from None
        table = _reads.arrow_table(chunks)
        return table if arrow else table.to_pandas()

    # -- artifacts --

    def _before_artifacts(self, run_id: str) -> str:
        """The run must be known to the gateway: send what is queued (its creation) first."""
        if not isinstance(run_id, str) or not run_id:
            raise InvalidArgument("must be a run id", field="run_id")
        self.flush()
        return run_id

    def log_artifact(self, run_id: str, local_path: str, artifact_path: str | None = None) -> None:
        """Upload one file to ``artifact_path/<file name>`` under the run's artifact root."""
        run_id = self._before_artifacts(run_id)
        local = Path(local_path)
        self._artifacts.upload_file(run_id, local, join_artifact_path(artifact_path, local.name))

    def log_artifacts(self, run_id: str, local_dir: str, artifact_path: str | None = None) -> None:
        """Upload a directory's files (recursively) under ``artifact_path``."""
        run_id = self._before_artifacts(run_id)
        self._artifacts.upload_dir(run_id, Path(local_dir), artifact_path)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        """Store ``text`` (UTF-8) as the artifact ``artifact_file``."""
        run_id = self._before_artifacts(run_id)
        self._artifacts.upload_bytes(run_id, text.encode("utf-8"), artifact_file)

    def log_dict(self, run_id: str, dictionary: dict[str, Any], artifact_file: str) -> None:
        """Store a dict as JSON (or YAML for a .yaml/.yml name)."""
        run_id = self._before_artifacts(run_id)
        data = _artifacts.dict_bytes(dictionary, artifact_file)
        self._artifacts.upload_bytes(run_id, data, artifact_file)

    def log_figure(self, run_id: str, figure: Any, artifact_file: str) -> None:
        """Store a matplotlib or plotly figure (format from the file name: png, svg, html…)."""
        run_id = self._before_artifacts(run_id)
        data = _artifacts.figure_bytes(figure, artifact_file)
        self._artifacts.upload_bytes(run_id, data, artifact_file)

    def list_artifacts(self, run_id: str, path: str | None = None) -> list[FileInfo]:
        """Direct children of ``path`` (the root when None) among the run's artifacts."""
        return self._artifacts.list(self._before_artifacts(run_id), path)

    def download_artifacts(self, run_id: str, path: str = "", dst_path: str | None = None) -> str:
        """Download a file or directory of the run's artifacts; the local path it landed at."""
        run_id = self._before_artifacts(run_id)
        dst = Path(dst_path) if dst_path else Path(tempfile.mkdtemp(prefix="runlake-artifacts-"))
        return str(self._artifacts.download(run_id, path, dst))
