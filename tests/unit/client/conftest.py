"""In-process fake Gateway and Query servicers for the SDK's unit tests (no runlake server)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field

import grpc
import numpy as np
import pyarrow as pa
import pytest
from runlake import _session
from runlake.v1 import events_pb2 as E
from runlake.v1 import gateway_pb2 as G
from runlake.v1 import gateway_pb2_grpc, query_pb2_grpc
from runlake.v1 import query_pb2 as Q


@dataclass
class FakeGateway(gateway_pb2_grpc.GatewayServicer):
    """Records batches, dedupes by id like the real gateway, fails or rejects on demand."""

    fail_first: int = 0  #: the first N calls (Write or WriteStream) answer UNAVAILABLE
    delay_s: float = 0.0
    #: A predicate on an event; a batch holding a matching event is rejected whole.
    reject: Callable[[E.Event], bool] | None = None
    reject_code: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT
    #: Abort a WriteStream with UNAVAILABLE after appending this many of its batches.
    break_stream_after: int | None = None
    calls: list[tuple[str, list[str]]] = field(default_factory=list)  # (rpc, batch ids)
    accepted: dict[str, G.WriteRequest] = field(default_factory=dict)
    duplicates: int = 0
    experiments: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _failing(self) -> bool:
        return len(self.calls) <= self.fail_first

    def _append(self, request: G.WriteRequest) -> tuple[G.WriteResponse, str | None]:
        if request.batch_id in self.accepted:
            self.duplicates += 1
            pos = list(self.accepted).index(request.batch_id) + 1
            return G.WriteResponse(
                batch_id=request.batch_id, position=str(pos), duplicate=True
            ), None
        for i, e in enumerate(request.events):
            if self.reject is not None and self.reject(e):
                kind = e.WhichOneof("body")
                return G.WriteResponse(), f"events[{i}].{kind}.key: rejected by the fake"
        self.accepted[request.batch_id] = request
        return G.WriteResponse(batch_id=request.batch_id, position=str(len(self.accepted))), None

    def Write(self, request: G.WriteRequest, context: grpc.ServicerContext) -> G.WriteResponse:
        time.sleep(self.delay_s)
        with self.lock:
            self.calls.append(("Write", [request.batch_id]))
            if self._failing():
                context.abort(grpc.StatusCode.UNAVAILABLE, "fake: try later")
            reply, error = self._append(request)
        if error:
            context.abort(self.reject_code, error)
        return reply

    def WriteStream(
        self, request_iterator: Iterator[G.WriteRequest], context: grpc.ServicerContext
    ) -> G.WriteStreamResponse:
        requests = list(request_iterator)
        time.sleep(self.delay_s)
        acks = []
        with self.lock:
            self.calls.append(("WriteStream", [r.batch_id for r in requests]))
            if self._failing():
                context.abort(grpc.StatusCode.UNAVAILABLE, "fake: try later")
            for n, request in enumerate(requests):
                if self.break_stream_after is not None and n == self.break_stream_after:
                    context.abort(grpc.StatusCode.UNAVAILABLE, "fake: stream broke")
                reply, error = self._append(request)
                if error:
                    context.abort(self.reject_code, error)
                acks.append(reply)
        return G.WriteStreamResponse(acks=acks)

    def CreateExperiment(
        self, request: G.CreateExperimentRequest, context: grpc.ServicerContext
    ) -> G.CreateExperimentResponse:
        with self.lock:
            if request.name in self.experiments.values():
                context.abort(grpc.StatusCode.ALREADY_EXISTS, f"name: {request.name!r} exists")
            eid = str(len(self.experiments) + 1)
            self.experiments[eid] = request.name
            return G.CreateExperimentResponse(experiment_id=eid, position=f"exp{eid}")

    # -- views for assertions --

    def events(self) -> list[E.Event]:
        with self.lock:
            return [e for r in self.accepted.values() for e in r.events]

    def kinds(self) -> list[str]:
        return [e.WhichOneof("body") or "" for e in self.events()]


@dataclass
class FakeQuery(query_pb2_grpc.QueryServicer):
    """Answers reads from canned data and records each request's ReadOptions."""

    reads: list[Q.ReadOptions] = field(default_factory=list)
    experiments: dict[str, Q.Experiment] = field(default_factory=dict)
    history: dict[str, list[tuple[float, int, int]]] = field(default_factory=dict)
    sql_table: pa.Table | None = None
    error: tuple[grpc.StatusCode, str] | None = None
    gateway: FakeGateway | None = None  #: experiments it created become readable

    def _check(self, read: Q.ReadOptions, context: grpc.ServicerContext) -> None:
        self.reads.append(read)
        if self.error is not None:
            context.abort(*self.error)

    def GetExperiment(
        self, request: Q.GetExperimentRequest, context: grpc.ServicerContext
    ) -> Q.Experiment:
        self._check(request.read, context)
        created = self.gateway.experiments.items() if self.gateway is not None else []
        known = {
            eid: Q.Experiment(experiment_id=eid, name=name, lifecycle_stage=Q.ACTIVE)
            for eid, name in created
        }
        for exp in {**known, **self.experiments}.values():
            if exp.experiment_id == request.experiment_id or exp.name == request.name:
                return exp
        context.abort(grpc.StatusCode.NOT_FOUND, "experiment_id: no such experiment")
        raise AssertionError  # unreachable

    def SearchExperiments(
        self, request: Q.SearchExperimentsRequest, context: grpc.ServicerContext
    ) -> Q.SearchExperimentsResponse:
        self._check(request.read, context)
        return Q.SearchExperimentsResponse(experiments=list(self.experiments.values()))

    def GetRun(self, request: Q.GetRunRequest, context: grpc.ServicerContext) -> Q.Run:
        self._check(request.read, context)
        info = Q.RunInfo(
            run_id=request.run_id,
            experiment_id="0",
            status=E.FINISHED,
            lifecycle_stage=Q.ACTIVE,
            end_time=5,
        )
        return Q.Run(info=info, data=Q.RunData(params=[E.KeyValue(key="lr", value="0.1")]))

    def SearchRuns(
        self, request: Q.SearchRunsRequest, context: grpc.ServicerContext
    ) -> Q.SearchRunsResponse:
        self._check(request.read, context)
        run = Q.Run(
            info=Q.RunInfo(run_id="r" * 32, experiment_id="0", status=E.FINISHED, start_time=1),
            data=Q.RunData(metrics=[Q.Metric(key="loss", value=0.5)]),
        )
        return Q.SearchRunsResponse(runs=[run])

    def GetMetricHistory(
        self, request: Q.GetMetricHistoryRequest, context: grpc.ServicerContext
    ) -> Iterator[Q.MetricHistoryChunk]:
        self._check(request.read, context)
        points = self.history.get(request.key, [])
        for start in range(0, len(points), 3):  # several chunks, as the real service streams
            part = points[start : start + 3]
            yield Q.MetricHistoryChunk(
                key=request.key,
                values=np.array([p[0] for p in part], "<f8").tobytes(),
                timestamps=np.array([p[1] for p in part], "<i8").tobytes(),
                steps=np.array([p[2] for p in part], "<i8").tobytes(),
            )

    def Sql(self, request: Q.SqlRequest, context: grpc.ServicerContext) -> Iterator[Q.SqlChunk]:
        self._check(request.read, context)
        table = self.sql_table if self.sql_table is not None else pa.table({"x": [1]})
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table, max_chunksize=1)
        data = sink.getvalue().to_pybytes()
        for i in range(0, len(data), 100):  # chunk boundaries fall mid-message on purpose
            yield Q.SqlChunk(arrow_ipc=data[i : i + 100])


@dataclass
class Fakes:
    gateway: FakeGateway
    query: FakeQuery
    uri: str


@pytest.fixture
def fakes() -> Iterator[Fakes]:
    gateway = FakeGateway()
    query = FakeQuery(gateway=gateway)
    server = grpc.server(futures.ThreadPoolExecutor(8))
    gateway_pb2_grpc.add_GatewayServicer_to_server(gateway, server)
    query_pb2_grpc.add_QueryServicer_to_server(query, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield Fakes(gateway, query, f"grpc://127.0.0.1:{port}")
    server.stop(0)


@pytest.fixture
def fresh_session(monkeypatch: pytest.MonkeyPatch) -> Iterator[_session.Session]:
    """A clean fluent session (and sender registry) for one test."""
    from runlake import _sender

    monkeypatch.setattr(_sender, "_senders", {})
    s = _session.session
    saved = (s.tracking_uri, s.experiment_id, list(s.runs), s._client, s._client_key)
    s.tracking_uri, s.experiment_id, s.runs, s._client = None, None, [], None
    monkeypatch.delenv("RUNLAKE_TRACKING_URI", raising=False)
    monkeypatch.delenv("RUNLAKE_EXPERIMENT_ID", raising=False)
    yield s
    for sender in list(_sender._senders.values()):
        sender.close(timeout=2)
    s.tracking_uri, s.experiment_id, s.runs, s._client, s._client_key = saved
