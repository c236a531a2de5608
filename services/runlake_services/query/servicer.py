"""The gRPC Query service: thin over RunsIndex, MetricHistory and SqlEngine."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

import grpc
import pyarrow as pa
from runlake.errors import RunlakeError
from runlake.v1 import query_pb2, query_pb2_grpc

from runlake_services.progress import Progress
from runlake_services.query.history import MetricHistory
from runlake_services.query.sql import SqlEngine
from runlake_services.query.state import RunsIndex

__all__ = ["QueryServicer"]

T = TypeVar("T")
_CHUNK = 1024 * 1024


class QueryServicer(query_pb2_grpc.QueryServicer):
    def __init__(
        self,
        state: RunsIndex,
        history: MetricHistory,
        sql: SqlEngine,
        progress: Progress,
        *,
        default_wait_s: float = 5.0,
    ) -> None:
        self._state = state
        self._history = history
        self._sql = sql
        self._progress = progress
        self._wait = default_wait_s

    def _call(
        self, read: query_pb2.ReadOptions, context: grpc.ServicerContext, fn: Callable[[], T]
    ) -> T:
        try:
            timeout = read.wait_timeout_ms / 1000 if read.wait_timeout_ms > 0 else self._wait
            self._progress.wait(read.min_position, timeout)
            return fn()
        except RunlakeError as exc:
            context.abort(exc.code, str(exc))
            raise AssertionError("unreachable") from exc

    def GetExperiment(
        self,
        request: query_pb2.GetExperimentRequest,
        context: grpc.ServicerContext,
    ) -> query_pb2.Experiment:
        which = request.WhichOneof("selector")
        return self._call(
            request.read,
            context,
            lambda: self._state.get_experiment(
                experiment_id=request.experiment_id if which == "experiment_id" else None,
                name=request.name if which == "name" else None,
            ),
        )

    def SearchExperiments(
        self,
        request: query_pb2.SearchExperimentsRequest,
        context: grpc.ServicerContext,
    ) -> query_pb2.SearchExperimentsResponse:
        def run() -> query_pb2.SearchExperimentsResponse:
            found, token = self._state.search_experiments(
                request.view_type,
                request.filter,
                list(request.order_by),
                request.max_results,
                request.page_token,
            )
            return query_pb2.SearchExperimentsResponse(experiments=found, next_page_token=token)

        return self._call(request.read, context, run)

    def GetRun(
        self,
        request: query_pb2.GetRunRequest,
        context: grpc.ServicerContext,
    ) -> query_pb2.Run:
        return self._call(request.read, context, lambda: self._state.get_run(request.run_id))

    def SearchRuns(
        self,
        request: query_pb2.SearchRunsRequest,
        context: grpc.ServicerContext,
    ) -> query_pb2.SearchRunsResponse:
        def run() -> query_pb2.SearchRunsResponse:
            runs, token = self._state.search_runs(
                list(request.experiment_ids),
                request.filter,
                request.view_type,
                list(request.order_by),
                request.max_results,
                request.page_token,
            )
            return query_pb2.SearchRunsResponse(runs=runs, next_page_token=token)

        return self._call(request.read, context, run)

    def GetMetricHistory(
        self,
        request: query_pb2.GetMetricHistoryRequest,
        context: grpc.ServicerContext,
    ) -> Iterator[query_pb2.MetricHistoryChunk]:
        chunks = self._call(
            request.read, context, lambda: list(self._history.chunks(request.run_id, request.key))
        )
        yield from chunks

    def Sql(
        self,
        request: query_pb2.SqlRequest,
        context: grpc.ServicerContext,
    ) -> Iterator[query_pb2.SqlChunk]:
        table = self._call(
            request.read,
            context,
            lambda: self._sql.execute(
                request.query,
                timeout_s=request.timeout_ms / 1000 if request.timeout_ms > 0 else 30.0,
                max_rows=request.max_rows if request.max_rows > 0 else 1_000_000,
            ),
        )
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        data = sink.getvalue().to_pybytes()
        for start in range(0, max(len(data), 1), _CHUNK):
            yield query_pb2.SqlChunk(arrow_ipc=data[start : start + _CHUNK])

    def GetPosition(
        self,
        request: query_pb2.PositionRequest,
        context: grpc.ServicerContext,
    ) -> query_pb2.PositionResponse:
        return query_pb2.PositionResponse(
            log_end=str(self._progress.log_end), folded=str(self._progress.folded)
        )
