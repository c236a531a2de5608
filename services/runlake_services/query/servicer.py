"""The gRPC Query service: thin over RunsIndex, MetricHistory, SqlEngine and RegistryReader.

Every rpc first waits for the request's read position (read-your-writes), so a
read never answers from a state older than a write its caller saw acknowledged;
past the wait it fails with DEADLINE_EXCEEDED rather than answering stale.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

import grpc
import pyarrow as pa
from runlake.errors import RunlakeError
from runlake.v1 import query_pb2, query_pb2_grpc

from runlake_services.progress import ReadBarrier
from runlake_services.query.history import MetricHistory
from runlake_services.query.registry import RegistryReader
from runlake_services.query.sql import SqlEngine
from runlake_services.query.state import RunsIndex

__all__ = ["MAX_IPC_CHUNK", "QueryServicer", "add_to_server", "arrow_ipc_chunks"]

T = TypeVar("T")
MAX_IPC_CHUNK = 1024 * 1024
DEFAULT_SQL_TIMEOUT_S = 30.0
DEFAULT_SQL_MAX_ROWS = 1_000_000


class _Sink:
    """A write-only file for the IPC writer that hands its bytes back in bounded pieces."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.closed = False

    def write(self, data: bytes) -> int:
        self.buffer += data
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def take(self, size: int, *, final: bool = False) -> Iterator[bytes]:
        while len(self.buffer) >= size or (final and self.buffer):
            piece = bytes(self.buffer[:size])
            del self.buffer[:size]
            yield piece


def arrow_ipc_chunks(table: pa.Table, chunk_bytes: int = MAX_IPC_CHUNK) -> Iterator[bytes]:
    """``table`` as one Arrow IPC stream, cut into pieces of at most ``chunk_bytes``."""
    sink = _Sink()
    writer = pa.ipc.new_stream(pa.PythonFile(sink, mode="w"), table.schema)
    for batch in table.to_batches(max_chunksize=16_384):
        writer.write_batch(batch)
        yield from sink.take(chunk_bytes)
    writer.close()
    yield from sink.take(chunk_bytes, final=True)


class QueryServicer(query_pb2_grpc.QueryServicer):
    def __init__(
        self,
        state: RunsIndex,
        history: MetricHistory,
        sql: SqlEngine,
        progress: ReadBarrier,
        *,
        registry: RegistryReader | None = None,
        default_wait_s: float = 5.0,
    ) -> None:
        self._state = state
        self._history = history
        self._sql = sql
        self._progress = progress
        self._registry = registry
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
            raise AssertionError("unreachable: abort raises") from exc

    def GetExperiment(
        self, request: query_pb2.GetExperimentRequest, context: grpc.ServicerContext
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
        self, request: query_pb2.SearchExperimentsRequest, context: grpc.ServicerContext
    ) -> query_pb2.SearchExperimentsResponse:
        def search() -> query_pb2.SearchExperimentsResponse:
            found, token = self._state.search_experiments(
                request.view_type,
                request.filter,
                list(request.order_by),
                request.max_results,
                request.page_token,
            )
            return query_pb2.SearchExperimentsResponse(experiments=found, next_page_token=token)

        return self._call(request.read, context, search)

    def GetRun(
        self, request: query_pb2.GetRunRequest, context: grpc.ServicerContext
    ) -> query_pb2.Run:
        return self._call(request.read, context, lambda: self._state.get_run(request.run_id))

    def SearchRuns(
        self, request: query_pb2.SearchRunsRequest, context: grpc.ServicerContext
    ) -> query_pb2.SearchRunsResponse:
        def search() -> query_pb2.SearchRunsResponse:
            runs, token = self._state.search_runs(
                list(request.experiment_ids),
                request.filter,
                request.view_type,
                list(request.order_by),
                request.max_results,
                request.page_token,
            )
            return query_pb2.SearchRunsResponse(runs=runs, next_page_token=token)

        return self._call(request.read, context, search)

    def GetMetricHistory(
        self, request: query_pb2.GetMetricHistoryRequest, context: grpc.ServicerContext
    ) -> Iterator[query_pb2.MetricHistoryChunk]:
        # Read fully inside _call, so a failure is a status, not a half-sent stream.
        chunks = self._call(
            request.read, context, lambda: list(self._history.chunks(request.run_id, request.key))
        )
        yield from chunks

    def Sql(
        self, request: query_pb2.SqlRequest, context: grpc.ServicerContext
    ) -> Iterator[query_pb2.SqlChunk]:
        timeout = request.timeout_ms / 1000 if request.timeout_ms > 0 else DEFAULT_SQL_TIMEOUT_S
        max_rows = request.max_rows if request.max_rows > 0 else DEFAULT_SQL_MAX_ROWS
        table = self._call(
            request.read,
            context,
            lambda: self._sql.execute(request.query, timeout_s=timeout, max_rows=max_rows),
        )
        for piece in arrow_ipc_chunks(table):
            yield query_pb2.SqlChunk(arrow_ipc=piece)

    # -- model registry --

    def _registry_or_abort(self, context: grpc.ServicerContext) -> RegistryReader:
        """The registry reader; a servicer built without one answers UNIMPLEMENTED."""
        if self._registry is None:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, "this server does not serve the registry")
            raise AssertionError("unreachable: abort raises")
        return self._registry

    def GetRegisteredModel(
        self, request: query_pb2.GetRegisteredModelRequest, context: grpc.ServicerContext
    ) -> query_pb2.RegisteredModel:
        registry = self._registry_or_abort(context)
        return self._call(
            request.read,
            context,
            lambda: registry.get_registered_model(request.name, as_of_ms=request.as_of_ms),
        )

    def SearchRegisteredModels(
        self, request: query_pb2.SearchRegisteredModelsRequest, context: grpc.ServicerContext
    ) -> query_pb2.SearchRegisteredModelsResponse:
        registry = self._registry_or_abort(context)

        def search() -> query_pb2.SearchRegisteredModelsResponse:
            found, token = registry.search_registered_models(
                request.filter, list(request.order_by), request.max_results, request.page_token
            )
            return query_pb2.SearchRegisteredModelsResponse(
                registered_models=found, next_page_token=token
            )

        return self._call(request.read, context, search)

    def GetModelVersion(
        self, request: query_pb2.GetModelVersionRequest, context: grpc.ServicerContext
    ) -> query_pb2.ModelVersion:
        registry = self._registry_or_abort(context)
        return self._call(
            request.read,
            context,
            lambda: registry.get_model_version(
                request.name,
                version=request.version,
                alias=request.alias,
                stage=request.stage,
                as_of_ms=request.as_of_ms,
            ),
        )

    def SearchModelVersions(
        self, request: query_pb2.SearchModelVersionsRequest, context: grpc.ServicerContext
    ) -> query_pb2.SearchModelVersionsResponse:
        registry = self._registry_or_abort(context)

        def search() -> query_pb2.SearchModelVersionsResponse:
            found, token = registry.search_model_versions(
                request.filter, list(request.order_by), request.max_results, request.page_token
            )
            return query_pb2.SearchModelVersionsResponse(
                model_versions=found, next_page_token=token
            )

        return self._call(request.read, context, search)

    def GetModelHistory(
        self, request: query_pb2.ModelHistoryRequest, context: grpc.ServicerContext
    ) -> query_pb2.ModelHistoryResponse:
        registry = self._registry_or_abort(context)
        return self._call(
            request.read,
            context,
            lambda: query_pb2.ModelHistoryResponse(entries=registry.model_history(request.name)),
        )

    def GetPosition(
        self, request: query_pb2.PositionRequest, context: grpc.ServicerContext
    ) -> query_pb2.PositionResponse:
        log_end, folded = self._progress.tokens()
        return query_pb2.PositionResponse(log_end=log_end, folded=folded)


def add_to_server(servicer: QueryServicer, server: grpc.Server) -> None:
    query_pb2_grpc.add_QueryServicer_to_server(servicer, server)
