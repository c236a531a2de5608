"""The background sender against an in-process fake gateway (no runlake server)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field

import grpc
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from runlake._sender import Sender
from runlake.client import point
from runlake.columns import unpack_metrics
from runlake.errors import InvalidArgument
from runlake.v1 import events_pb2 as E
from runlake.v1 import gateway_pb2 as G
from runlake.v1 import gateway_pb2_grpc

from tests import events as ev


@dataclass
class FakeGateway(gateway_pb2_grpc.GatewayServicer):
    fail_first: int = 0
    delay_s: float = 0.0
    calls: list[G.WriteRequest] = field(default_factory=list)
    accepted: dict[str, G.WriteRequest] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def Write(self, request: G.WriteRequest, context: grpc.ServicerContext) -> G.WriteResponse:
        time.sleep(self.delay_s)
        with self.lock:
            self.calls.append(request)
            if len(self.calls) <= self.fail_first:
                context.abort(grpc.StatusCode.UNAVAILABLE, "try later")
            for i, e in enumerate(request.events):
                if (
                    e.WhichOneof("body") == "params_logged"
                    and e.params_logged.params[0].key == "bad"
                ):
                    context.abort(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f"events[{i}].params_logged.params[0].key: bad key",
                    )
            self.accepted.setdefault(request.batch_id, request)
            return G.WriteResponse(batch_id=request.batch_id, position=str(len(self.accepted)))

    def events(self) -> list[E.Event]:
        return [e for r in self.accepted.values() for e in r.events]


@pytest.fixture
def gateway() -> Iterator[tuple[FakeGateway, str]]:
    fake = FakeGateway()
    server = grpc.server(futures.ThreadPoolExecutor(4))
    gateway_pb2_grpc.add_GatewayServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield fake, f"grpc://127.0.0.1:{port}"
    server.stop(0)


def test_order_is_kept_and_points_are_coalesced(gateway: tuple[FakeGateway, str]) -> None:
    fake, uri = gateway
    s = Sender(uri)
    rid = ev.run_id()
    s.event(ev.created(rid))
    for i in range(3):
        s.metric(rid, "loss" if i % 2 else "acc", float(i), 100 + i, i)
    s.event(ev.params(rid, lr="0.1"))
    s.metric(rid, "loss", 9.0, 200, 9)
    s.flush(timeout=10)
    events = fake.events()
    assert [e.WhichOneof("body") for e in events] == [
        "run_created",
        "metrics_logged",
        "params_logged",
        "metrics_logged",
    ]
    cols = unpack_metrics(events[1].metrics_logged.points)
    assert [cols.keys[k] for k in cols.key_index] == ["acc", "loss", "acc"]
    assert cols.values.tolist() == [0.0, 1.0, 2.0] and cols.steps.tolist() == [0, 1, 2]
    assert s.token == str(len(fake.accepted))


def test_retry_reuses_the_batch_id_and_loses_nothing(gateway: tuple[FakeGateway, str]) -> None:
    fake, uri = gateway
    fake.fail_first = 3
    s = Sender(uri)
    rid = ev.run_id()
    for i in range(500):
        s.metric(rid, "x", float(i), 1, i)
    s.flush(timeout=30)
    assert len(fake.calls) >= 4
    assert {c.batch_id for c in fake.calls} == set(fake.accepted)  # the failures were retries
    steps = np.concatenate([unpack_metrics(e.metrics_logged.points).steps for e in fake.events()])
    assert sorted(steps.tolist()) == list(range(500))


def test_rejection_raises_at_flush_and_spares_the_good_calls(
    gateway: tuple[FakeGateway, str],
) -> None:
    fake, uri = gateway
    s = Sender(uri)
    rid = ev.run_id()
    s.event(ev.params(rid, good="1"))
    s.event(ev.params(rid, bad="1"))
    s.metric(rid, "m", 1.0, 1, 0)
    with pytest.raises(InvalidArgument, match="key: bad key"):
        s.flush(timeout=10)
    kinds = [(e.WhichOneof("body"), e) for e in fake.events()]
    assert [k for k, _ in kinds] == ["params_logged", "metrics_logged"]
    s.flush(timeout=10)  # the error was reported once


def test_backpressure_blocks_instead_of_growing(gateway: tuple[FakeGateway, str]) -> None:
    fake, uri = gateway
    fake.delay_s = 0.01
    s = Sender(uri, max_queue=50)
    rid = ev.run_id()
    peak = 0
    for i in range(2_000):
        s.metric(rid, "x", float(i), 1, i)
        peak = max(peak, len(s._queue))
    s.flush(timeout=30)
    assert peak <= 50
    assert sum(len(e.metrics_logged.points.values) // 8 for e in fake.events()) == 2_000


def test_flush_times_out_when_the_server_is_gone() -> None:
    s = Sender("grpc://127.0.0.1:9")
    s.metric(ev.run_id(), "x", 1.0, 1, 0)
    with pytest.raises(Exception, match="not acknowledged"):
        s.flush(timeout=0.5)


@pytest.mark.parametrize(
    ("value", "timestamp", "step", "field"),
    [
        (1.0, None, float("nan"), "step"),
        (1.0, None, 1.5, "step"),
        (True, None, 0, "value"),
        ("1.0", None, 0, "value"),
        (1.0, "now", 0, "timestamp"),
    ],
)
def test_client_side_checks_name_the_field(
    value: object, timestamp: object, step: object, field: str
) -> None:
    with pytest.raises(InvalidArgument, match=rf"^{field}"):
        point(value, timestamp, step)


@given(st.one_of(st.integers(), st.floats(), st.booleans(), st.text(), st.none()))
def test_any_step_is_an_integer_or_rejected(step: object) -> None:
    try:
        _, _, got = point(1.0, 5, step)
    except InvalidArgument as exc:
        assert str(exc).startswith("step")
    else:
        assert isinstance(got, int)


def test_out_of_range_step_is_rejected_before_queueing() -> None:
    with pytest.raises(InvalidArgument, match=r"^step.*64 bits"):
        point(1.0, 5, 2**63)
