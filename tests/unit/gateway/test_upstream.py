"""What a gateway passes on: the Query service forwarded byte for byte, and which writes
only the coordinator may take. Real gRPC servers on loopback, a real query service."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pyarrow as pa
import pytest
from runlake.v1 import events_pb2 as E
from runlake.v1 import query_pb2 as Q
from runlake.v1 import query_pb2_grpc
from runlake_services.gateway.upstream import COORDINATED_KINDS, needs_coordinator, query_proxy
from runlake_services.progress import Progress
from runlake_services.query import MetricHistory, QueryServicer, RunsIndex, SqlEngine, add_to_server
from runlake_services.tables.reader import DeltaTableReader

from tests import events as ev
from tests.unit.query.builders import T0, experiment, kv, metric, result, run, write_delta


def _serve(register: object) -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    register(server)  # type: ignore[operator]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


@pytest.fixture
def via_proxy(tmp_path: Path) -> Iterator[query_pb2_grpc.QueryStub]:
    """A query service, and a 'gateway' serving only the proxy in front of it."""
    write_delta(
        tmp_path,
        "metrics",
        [{**metric("r1", "loss", float(i), step=i), "position": 1} for i in range(3)],
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
        )
    )
    servicer = QueryServicer(
        index, MetricHistory(reader), SqlEngine(reader), Progress(folded=7, log_end=7),
        default_wait_s=0.2,
    )  # fmt: skip
    query, qport = _serve(lambda s: add_to_server(servicer, s))
    upstream = grpc.insecure_channel(f"127.0.0.1:{qport}")
    gateway, gport = _serve(
        lambda s: s.add_generic_rpc_handlers((query_proxy(upstream, lambda: "9"),))
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{gport}")
    try:
        yield query_pb2_grpc.QueryStub(channel)
    finally:
        channel.close()
        gateway.stop(None)
        upstream.close()
        query.stop(None)


def test_reads_pass_through_the_gateway_unchanged(via_proxy: query_pb2_grpc.QueryStub) -> None:
    got = via_proxy.GetRun(Q.GetRunRequest(run_id="r1"))
    assert got.info.status == E.FINISHED and [p.value for p in got.data.params] == ["0.1"]
    found = via_proxy.SearchRuns(Q.SearchRunsRequest(filter="params.lr = '0.1'", max_results=5))
    assert [r.info.run_id for r in found.runs] == ["r1"]
    # server-streaming calls too: metric history and SQL come back whole
    chunks = list(via_proxy.GetMetricHistory(Q.GetMetricHistoryRequest(run_id="r1", key="loss")))
    assert sum(len(c.steps) for c in chunks) == 3 * 8  # packed int64 steps
    sql = list(via_proxy.Sql(Q.SqlRequest(query="SELECT count(*) AS n FROM metrics")))
    reader = pa.ipc.open_stream(b"".join(c.arrow_ipc for c in sql))
    assert reader.read_all().to_pylist() == [{"n": 3}]


def test_errors_keep_their_status_and_field(via_proxy: query_pb2_grpc.QueryStub) -> None:
    with pytest.raises(grpc.RpcError) as info:
        via_proxy.GetRun(Q.GetRunRequest(run_id="nope"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert info.value.details().startswith("run_id: ")
    with pytest.raises(grpc.RpcError) as info:
        list(via_proxy.Sql(Q.SqlRequest(query="DROP VIEW runs")))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # a read waiting for a position the tables never reach: the upstream's deadline answer
    with pytest.raises(grpc.RpcError) as info:
        via_proxy.GetRun(Q.GetRunRequest(run_id="r1", read=Q.ReadOptions(min_position="99")))
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_get_position_adds_what_the_log_holds(via_proxy: query_pb2_grpc.QueryStub) -> None:
    got = via_proxy.GetPosition(Q.PositionRequest())
    assert (got.folded, got.log_end) == ("7", "9")  # folded by the tables, held by the log


def test_registry_writes_and_experiment_creation_need_the_coordinator() -> None:
    rid = ev.run_id()
    assert not needs_coordinator([ev.created(rid), ev.params(rid, a="1"), ev.finished(rid)])
    create = E.Event(experiment_created=E.ExperimentCreated(experiment_id="5", name="x"))
    assert needs_coordinator([ev.params(rid, a="1"), create])
    alias = E.Event(model_alias_set=E.ModelAliasSet(name="m", alias="champion", version=1))
    assert needs_coordinator([alias])
    assert {
        "experiment_created",
        "model_version_created",
        "registered_model_created",
    } <= COORDINATED_KINDS
    assert "run_created" not in COORDINATED_KINDS and "experiment_tag_set" not in COORDINATED_KINDS
