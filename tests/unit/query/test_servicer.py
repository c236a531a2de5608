"""The Query service over a real in-process gRPC server on loopback."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pyarrow as pa
import pytest
from runlake.v1 import events_pb2 as E
from runlake.v1 import query_pb2 as Q
from runlake.v1 import query_pb2_grpc
from runlake_services.progress import Progress
from runlake_services.query import (
    MetricHistory,
    QueryServicer,
    RunsIndex,
    SqlEngine,
    add_to_server,
)
from runlake_services.query.servicer import MAX_IPC_CHUNK, arrow_ipc_chunks
from runlake_services.tables.reader import DeltaTableReader

from tests.unit.query.builders import T0, experiment, kv, metric, result, run, write_delta


@dataclass
class Service:
    stub: query_pb2_grpc.QueryStub
    progress: Progress
    index: RunsIndex


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    write_delta(
        tmp_path,
        "metrics",
        [{**metric("r1", "loss", float(i), step=i), "position": 1} for i in range(5)],
    )
    write_delta(tmp_path, "runs", [run("r1")])
    reader = DeltaTableReader(str(tmp_path))
    index = RunsIndex()
    index.apply(
        result(
            1,
            experiments=[experiment("0", "Default")],
            runs=[run("r1", status="FINISHED", end_time=T0 + 1)],
            params=[kv("r1", "lr", "0.1")],
            latest_metrics=[metric("r1", "loss", 4.0, step=4)],
        )
    )
    progress = Progress(folded=10, log_end=12)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    add_to_server(
        QueryServicer(
            index, MetricHistory(reader), SqlEngine(reader), progress, default_wait_s=0.3
        ),
        server,
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Service(query_pb2_grpc.QueryStub(channel), progress, index)
    finally:
        channel.close()
        server.stop(grace=None)


def _code(call: Callable[[], object]) -> grpc.StatusCode:
    """The status a call fails with (a streaming call fails while it is read)."""
    with pytest.raises(grpc.RpcError) as info:
        answer = call()
        if isinstance(answer, Iterator):
            list(answer)
    code: grpc.StatusCode = info.value.code()
    return code


def test_get_run_and_search(service: Service) -> None:
    got = service.stub.GetRun(Q.GetRunRequest(run_id="r1"))
    assert got.info.status == E.FINISHED and got.info.end_time == T0 + 1
    assert [(p.key, p.value) for p in got.data.params] == [("lr", "0.1")]
    reply = service.stub.SearchRuns(
        Q.SearchRunsRequest(filter="metrics.loss > 3 AND params.lr = '0.1'", max_results=10)
    )
    assert [r.info.run_id for r in reply.runs] == ["r1"] and reply.next_page_token == ""


def test_experiments(service: Service) -> None:
    assert service.stub.GetExperiment(Q.GetExperimentRequest(name="Default")).experiment_id == "0"
    assert service.stub.GetExperiment(Q.GetExperimentRequest(experiment_id="0")).name == "Default"
    found = service.stub.SearchExperiments(Q.SearchExperimentsRequest(filter="name LIKE 'D%'"))
    assert [e.name for e in found.experiments] == ["Default"]


def test_errors_map_to_status_codes_with_the_field(service: Service) -> None:
    with pytest.raises(grpc.RpcError) as info:
        service.stub.GetRun(Q.GetRunRequest(run_id="nope"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert info.value.details().startswith("run_id: ")
    with pytest.raises(grpc.RpcError) as info:
        service.stub.SearchRuns(Q.SearchRunsRequest(filter="metrics.loss >"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith("filter: ")
    assert (
        _code(lambda: service.stub.GetExperiment(Q.GetExperimentRequest(name="nope")))
        == grpc.StatusCode.NOT_FOUND
    )
    assert (
        _code(lambda: service.stub.SearchRuns(Q.SearchRunsRequest(max_results=50_001)))
        == grpc.StatusCode.INVALID_ARGUMENT
    )
    assert (
        _code(lambda: service.stub.GetRun(Q.GetRunRequest(read=Q.ReadOptions(min_position="x"))))
        == grpc.StatusCode.INVALID_ARGUMENT
    )


def test_metric_history_streams_packed_columns(service: Service) -> None:
    chunks = list(service.stub.GetMetricHistory(Q.GetMetricHistoryRequest(run_id="r1", key="loss")))
    steps = np.concatenate([np.frombuffer(c.steps, "<i8") for c in chunks]).tolist()
    values = np.concatenate([np.frombuffer(c.values, "<f8") for c in chunks]).tolist()
    assert steps == [0, 1, 2, 3, 4] and values == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert list(service.stub.GetMetricHistory(Q.GetMetricHistoryRequest(run_id="x", key="y"))) == []


def test_sql_streams_arrow_ipc(service: Service) -> None:
    chunks = list(service.stub.Sql(Q.SqlRequest(query="SELECT run_id, status FROM runs")))
    table = pa.ipc.open_stream(pa.py_buffer(b"".join(c.arrow_ipc for c in chunks))).read_all()
    assert table.to_pylist() == [{"run_id": "r1", "status": "RUNNING"}]
    assert (
        _code(lambda: service.stub.Sql(Q.SqlRequest(query="DROP VIEW runs")))
        == grpc.StatusCode.INVALID_ARGUMENT
    )
    slow = "SELECT count(*) FROM range(1000000000000) a, range(1000) b"
    assert (
        _code(lambda: service.stub.Sql(Q.SqlRequest(query=slow, timeout_ms=200)))
        == grpc.StatusCode.DEADLINE_EXCEEDED
    )
    assert (
        _code(lambda: service.stub.Sql(Q.SqlRequest(query="SELECT * FROM range(5)", max_rows=4)))
        == grpc.StatusCode.INVALID_ARGUMENT
    )


def test_large_sql_results_come_in_chunks_of_at_most_one_mib(service: Service) -> None:
    chunks = list(
        service.stub.Sql(
            Q.SqlRequest(query="SELECT range AS i, repeat('x', 40) AS s FROM range(300000)")
        )
    )
    assert len(chunks) > 1 and all(len(c.arrow_ipc) <= MAX_IPC_CHUNK for c in chunks)
    table = pa.ipc.open_stream(pa.py_buffer(b"".join(c.arrow_ipc for c in chunks))).read_all()
    assert table.num_rows == 300_000 and table.column("i").to_pylist()[-1] == 299_999


def test_ipc_chunks_of_an_empty_result_still_carry_the_schema() -> None:
    empty = pa.table({"a": pa.array([], pa.int64())})
    data = b"".join(arrow_ipc_chunks(empty))
    assert pa.ipc.open_stream(pa.py_buffer(data)).read_all().schema == empty.schema


def test_get_position(service: Service) -> None:
    reply = service.stub.GetPosition(Q.PositionRequest())
    assert (reply.log_end, reply.folded) == ("12", "10")


def test_a_read_ahead_of_the_fold_waits_for_it(service: Service) -> None:
    read = Q.ReadOptions(min_position="15", wait_timeout_ms=5_000)
    done = threading.Event()

    def fold_later() -> None:
        time.sleep(0.2)
        service.index.apply(result(15, runs=[run("new")]))
        service.progress.folded_to(15)
        done.set()

    threading.Thread(target=fold_later).start()
    got = service.stub.GetRun(Q.GetRunRequest(read=read, run_id="new"))
    assert done.is_set() and got.info.run_id == "new"


def test_a_read_ahead_of_the_fold_times_out(service: Service) -> None:
    for read in (
        Q.ReadOptions(min_position="11", wait_timeout_ms=100),
        Q.ReadOptions(min_position="11"),  # the server's default wait (0.3 s here)
    ):
        with pytest.raises(grpc.RpcError) as info:
            service.stub.SearchRuns(Q.SearchRunsRequest(read=read))
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert info.value.details().startswith("min_position: ")
    # a position already folded answers at once
    service.stub.SearchRuns(Q.SearchRunsRequest(read=Q.ReadOptions(min_position="10")))
