"""The background sender against an in-process fake gateway (no runlake server)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator

import grpc
import numpy as np
import pytest
from runlake import _sender
from runlake._batching import MAX_EVENTS
from runlake._sender import Sender
from runlake.columns import unpack_metrics
from runlake.errors import Conflict, DeadlineExceeded, InvalidArgument
from runlake.v1 import events_pb2 as E

from tests import events as ev
from tests.unit.client.conftest import Fakes

DEAD_URI = "grpc://127.0.0.1:9"  # discard port: nothing listens


@pytest.fixture
def senders() -> Iterator[list[Sender]]:
    made: list[Sender] = []
    yield made
    for s in made:
        s.close(timeout=1)


def _sender_to(uri: str, made: list[Sender], **kw: object) -> Sender:
    s = Sender(uri, backoff_s=(0.01, 0.05), **kw)  # type: ignore[arg-type]
    made.append(s)
    return s


def _points(fakes: Fakes) -> list[tuple[str, str, float, int, int]]:
    out = []
    for e in fakes.gateway.events():
        if e.WhichOneof("body") == "metrics_logged":
            cols = unpack_metrics(e.metrics_logged.points)
            for k, v, t, s in zip(
                cols.key_index.tolist(),
                cols.values.tolist(),
                cols.timestamps.tolist(),
                cols.steps.tolist(),
                strict=True,
            ):
                out.append((e.metrics_logged.run_id, cols.keys[k], v, t, s))
    return out


def test_order_kept_across_event_types_and_points_coalesced(
    fakes: Fakes, senders: list[Sender]
) -> None:
    s = _sender_to(fakes.uri, senders)
    a, b = ev.run_id(), ev.run_id()
    s.event(ev.created(a))
    s.event(ev.created(b))
    for i in range(3):
        s.metric(a, "loss" if i % 2 else "acc", float(i), 100 + i, i)
    s.metric(b, "loss", 7.0, 107, 0)
    s.metric(a, "acc", 8.0, 108, 3)
    s.event(ev.params(a, lr="0.1"))
    s.metric(a, "loss", 9.0, 200, 9)
    s.event(E.Event(run_updated=E.RunUpdated(run_id=a, status=E.FINISHED)))
    position = s.flush(timeout=10)

    assert fakes.gateway.kinds() == [
        "run_created",
        "run_created",
        "metrics_logged",  # a: three points, two keys
        "metrics_logged",  # b
        "metrics_logged",  # a again: a different run came between
        "params_logged",
        "metrics_logged",
        "run_updated",
    ]
    first = fakes.gateway.events()[2].metrics_logged.points
    assert sorted(first.keys) == ["acc", "loss"]
    assert _points(fakes) == [
        (a, "acc", 0.0, 100, 0),
        (a, "loss", 1.0, 101, 1),
        (a, "acc", 2.0, 102, 2),
        (b, "loss", 7.0, 107, 0),
        (a, "acc", 8.0, 108, 3),
        (a, "loss", 9.0, 200, 9),
    ]
    assert position == s.position == str(len(fakes.gateway.accepted))
    batch_ids = list(fakes.gateway.accepted)
    assert all(bid.startswith(f"{s.client_id}:") for bid in batch_ids)


def test_retry_reuses_the_batch_id_and_loses_nothing(fakes: Fakes, senders: list[Sender]) -> None:
    fakes.gateway.fail_first = 3
    s = _sender_to(fakes.uri, senders)
    rid = ev.run_id()
    for i in range(500):
        s.metric(rid, "x", float(i), 1, i)
    s.flush(timeout=30)
    calls = fakes.gateway.calls
    assert len(calls) >= 4
    sent_ids = [bid for _, ids in calls for bid in ids]
    assert set(sent_ids) == set(fakes.gateway.accepted)  # the failures were retried, same ids
    assert len(set(sent_ids)) < len(sent_ids)
    assert [p[4] for p in _points(fakes)] == list(range(500))


def test_several_ready_batches_go_on_one_stream(fakes: Fakes, senders: list[Sender]) -> None:
    s = _sender_to(fakes.uri, senders, poll_s=30.0)  # nothing is sent before the flush
    rid = ev.run_id()
    n = 3 * MAX_EVENTS + 10
    for i in range(n):
        s.event(ev.tags(rid, k=str(i)))
    s.flush(timeout=30)
    assert [(rpc, len(ids)) for rpc, ids in fakes.gateway.calls] == [("WriteStream", 4)]
    assert [e.tags_set.tags[0].value for e in fakes.gateway.events()] == [str(i) for i in range(n)]


def test_a_broken_stream_is_resent_without_duplicates(fakes: Fakes, senders: list[Sender]) -> None:
    fakes.gateway.break_stream_after = 2
    s = _sender_to(fakes.uri, senders, poll_s=30.0)
    rid = ev.run_id()
    n = 4 * MAX_EVENTS
    for i in range(n):
        s.event(ev.tags(rid, k=str(i)))
    s.flush(timeout=30)
    rpcs = [rpc for rpc, _ in fakes.gateway.calls]
    assert rpcs[0] == "WriteStream" and set(rpcs[1:]) == {"Write"}
    assert fakes.gateway.duplicates == 2  # the two acked before the break, answered again
    assert [e.tags_set.tags[0].value for e in fakes.gateway.events()] == [str(i) for i in range(n)]


def test_rejection_raises_at_flush_naming_field_and_batch(
    fakes: Fakes, senders: list[Sender]
) -> None:
    fakes.gateway.reject = lambda e: (
        e.WhichOneof("body") == "params_logged" and e.params_logged.params[0].key == "bad"
    )
    s = _sender_to(fakes.uri, senders, poll_s=30.0)
    rid = ev.run_id()
    s.event(ev.created(rid))
    s.event(ev.params(rid, good="1"))
    s.event(ev.params(rid, bad="1"))
    s.metric(rid, "m", 1.0, 1, 0)
    s.event(ev.tags(rid, t="x"))
    with pytest.raises(InvalidArgument) as caught:
        s.flush(timeout=10)
    err = caught.value
    assert err.field == "events[2].params_logged.key"  # index within the batch first sent
    assert f"batch {s.client_id}:1" in str(err)
    # only the bad event was dropped: the good calls that shared its batch went through
    assert fakes.gateway.kinds() == ["run_created", "params_logged", "metrics_logged", "tags_set"]
    s.flush(timeout=10)  # reported once; the next flush is clean
    s.metric(rid, "m", 2.0, 2, 1)
    s.flush(timeout=10)


def test_rejection_inside_a_stream(fakes: Fakes, senders: list[Sender]) -> None:
    fakes.gateway.reject = lambda e: (
        e.WhichOneof("body") == "tags_set" and (e.tags_set.tags[0].value == "1500")
    )
    s = _sender_to(fakes.uri, senders, poll_s=30.0)
    rid = ev.run_id()
    for i in range(3 * MAX_EVENTS):
        s.event(ev.tags(rid, k=str(i)))
    with pytest.raises(InvalidArgument, match=r"^events\[500\]\.tags_set\.key"):
        s.flush(timeout=30)
    got = [e.tags_set.tags[0].value for e in fakes.gateway.events()]
    assert got == [str(i) for i in range(3 * MAX_EVENTS) if i != 1500]


def test_a_rejection_keeps_its_error_class(fakes: Fakes, senders: list[Sender]) -> None:
    fakes.gateway.reject = lambda e: e.WhichOneof("body") == "params_logged"
    fakes.gateway.reject_code = grpc.StatusCode.FAILED_PRECONDITION
    s = _sender_to(fakes.uri, senders, poll_s=30.0)
    rid = ev.run_id()
    s.event(ev.params(rid, a="1"))
    s.event(ev.params(rid, b="2"))
    with pytest.raises(Conflict, match=r"params_logged.*\(and 1 more rejected events\)"):
        s.flush(timeout=10)


def test_backpressure_blocks_instead_of_growing(
    fakes: Fakes, senders: list[Sender], capsys: pytest.CaptureFixture[str]
) -> None:
    fakes.gateway.delay_s = 0.005
    s = _sender_to(fakes.uri, senders, max_queue=50)
    rid = ev.run_id()
    peak = 0
    for i in range(2_000):
        s.metric(rid, "x", float(i), 1, i)
        peak = max(peak, len(s._queue))
    s.flush(timeout=60)
    assert peak <= 51
    assert [p[4] for p in _points(fakes)] == list(range(2_000))
    assert capsys.readouterr().err.count("logging blocks") == 1  # one warning


def test_flush_times_out_when_the_server_is_gone(senders: list[Sender]) -> None:
    s = _sender_to(DEAD_URI, senders)
    s.metric(ev.run_id(), "x", 1.0, 1, 0)
    t0 = time.monotonic()
    with pytest.raises(DeadlineExceeded, match=r"^flush: 1 logged items not acknowledged"):
        s.flush(timeout=0.5)
    assert time.monotonic() - t0 < 5
    assert s.close(timeout=0.2) == 1  # given up on, counted


def test_exit_flush_is_bounded_and_reports_the_loss(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(_sender, "_senders", {})
    s = _sender.sender_for(DEAD_URI)
    for i in range(10):
        s.metric(ev.run_id(), "x", 1.0, 1, i)
    t0 = time.monotonic()
    _sender.flush_all_at_exit(timeout_s=0.5)
    assert time.monotonic() - t0 < 5
    assert "10 logged items were not sent" in capsys.readouterr().err
    s.close(timeout=0.1)


def test_interpreter_exit_gives_up_in_bounded_time() -> None:
    script = textwrap.dedent(
        f"""
        import runlake
        runlake.set_tracking_uri("{DEAD_URI}")
        for i in range(100):
            runlake.log_metric("x", float(i), step=i)
        """
    )
    env = {**os.environ, "RUNLAKE_EXIT_FLUSH_TIMEOUT": "1"}
    t0 = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env
    )
    assert out.returncode == 0, out.stderr
    assert time.monotonic() - t0 < 30
    assert "not sent" in out.stderr and "lost" in out.stderr


def test_exit_flush_delivers_what_was_logged(fakes: Fakes) -> None:
    script = textwrap.dedent(
        f"""
        import runlake
        runlake.set_tracking_uri("{fakes.uri}")
        runlake.start_run(run_name="no-end")
        for i in range(1000):
            runlake.log_metric("x", float(i), step=i)
        raise SystemExit(0)  # no end_run, no flush: the exit hooks do both
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    kinds = fakes.gateway.kinds()
    assert kinds[0] == "run_created" and kinds[-1] == "run_updated"
    assert fakes.gateway.events()[-1].run_updated.status == E.FINISHED
    assert [p[4] for p in _points(fakes)] == list(range(1000))


def test_a_forked_child_gets_a_fresh_sender(fakes: Fakes) -> None:
    script = textwrap.dedent(
        f"""
        import os, sys
        from runlake._sender import sender_for
        parent = sender_for("{fakes.uri}")
        parent.metric("a" * 32, "x", 1.0, 1, 0)
        parent.flush(timeout=10)
        pid = os.fork()
        if pid == 0:
            child = sender_for("{fakes.uri}")
            ok = child is not parent and child.client_id != parent.client_id and parent.stale
            child.metric("b" * 32, "x", 2.0, 2, 0)
            child.flush(timeout=10)
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
        parent.metric("a" * 32, "x", 3.0, 3, 1)
        parent.flush(timeout=10)
        sys.exit(os.waitstatus_to_exitcode(status))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    clients = {bid.split(":")[0] for bid in fakes.gateway.accepted}
    assert len(clients) == 2
    assert sorted(p[2] for p in _points(fakes)) == [1.0, 2.0, 3.0]


def test_logging_from_many_threads_loses_nothing(fakes: Fakes, senders: list[Sender]) -> None:
    s = _sender_to(fakes.uri, senders)
    rids = [ev.run_id() for _ in range(4)]

    def work(rid: str) -> None:
        for i in range(5_000):
            s.metric(rid, "x", float(i), 1, i)

    threads = [threading.Thread(target=work, args=(r,)) for r in rids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    s.flush(timeout=60)
    points = _points(fakes)
    for rid in rids:
        assert [p[4] for p in points if p[0] == rid] == list(range(5_000))


def test_big_bursts_respect_the_batch_limits(fakes: Fakes, senders: list[Sender]) -> None:
    s = _sender_to(fakes.uri, senders, poll_s=30.0)
    rid = ev.run_id()
    steps = np.arange(120_000)
    for i in steps.tolist():
        s.metric(rid, "x", 0.5, 1, i)
    s.flush(timeout=60)
    sizes = [
        sum(len(e.metrics_logged.points.values) // 8 for e in r.events)
        for r in fakes.gateway.accepted.values()
    ]
    assert max(sizes) <= 50_000 and sum(sizes) == 120_000
