"""The background sender: log calls only enqueue; one thread batches, sends and retries.

A log call appends a small tuple to a deque (no lock, no notify): that is the
whole cost on the training thread. The sender thread drains the deque in order,
coalesces consecutive points of one run into one columnar MetricsLogged event,
and sends batches with ids ``<client id>:<seq>``; a retry reuses the id, so the
gateway appends a batch at most once. A rejected batch is dropped whole and its
error raised by the next :meth:`Sender.flush`.
"""

from __future__ import annotations

import atexit
import itertools
import os
import random
import sys
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import grpc

from runlake._uri import channel
from runlake.columns import pack_metrics
from runlake.errors import DeadlineExceeded, RunlakeError, from_grpc
from runlake.v1 import events_pb2, gateway_pb2, gateway_pb2_grpc

__all__ = ["Sender", "sender_for"]

_RETRY = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
}
MAX_EVENTS = 1_000
MAX_POINTS = 50_000


@dataclass
class _Points:
    run_id: str
    keys: dict[str, int] = field(default_factory=dict)
    index: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    stamps: list[int] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)

    def event(self) -> events_pb2.Event:
        cols = pack_metrics(list(self.keys), self.index, self.values, self.stamps, self.steps)
        return events_pb2.Event(
            metrics_logged=events_pb2.MetricsLogged(run_id=self.run_id, points=cols)
        )


class Sender:
    """One per tracking URI and process; see the module docstring."""

    def __init__(self, uri: str, *, max_queue: int = 1_000_000, user: str = "") -> None:
        self.uri = uri
        self._stub = gateway_pb2_grpc.GatewayStub(channel(uri))
        self._queue: deque[tuple[Any, ...]] = deque()
        self._max_queue = max_queue
        self._counter = itertools.count(1)
        self._enqueued = 0
        self._acked = 0
        self._client_id = uuid.uuid4().hex[:16]
        self._batch_seq = itertools.count(1)
        self._cond = threading.Condition()
        self._wake = threading.Event()
        self._errors: list[RunlakeError] = []
        self._warned = False
        self._metadata = (("x-runlake-user", user),)
        self.token = ""
        self._thread = threading.Thread(target=self._loop, name="runlake-sender", daemon=True)
        self._thread.start()

    # -- the training thread's side --

    def _put(self, item: tuple[Any, ...]) -> None:
        if len(self._queue) >= self._max_queue:
            self._backpressure()
        self._enqueued = next(self._counter)
        self._queue.append((self._enqueued, *item))
        if len(self._queue) >= MAX_POINTS:
            self._wake.set()

    def _backpressure(self) -> None:
        if not self._warned:
            self._warned = True
            print(
                f"runlake: {len(self._queue)} items wait to be sent; logging blocks until the "
                "server catches up",
                file=sys.stderr,
            )
        self._wake.set()
        while len(self._queue) >= self._max_queue:
            time.sleep(0.001)

    def metric(self, run_id: str, key: str, value: float, timestamp: int, step: int) -> None:
        self._put(("m", run_id, key, value, timestamp, step))

    def event(self, event: events_pb2.Event) -> None:
        self._put(("e", event))

    def flush(self, timeout: float | None = None) -> str:
        """Wait until all enqueued so far is acknowledged; raise the first rejection since."""
        target = self._enqueued
        self._wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._acked < target:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise DeadlineExceeded(
                        f"{target - self._acked} logged items not acknowledged within "
                        f"{timeout:g} s (is the server at {self.uri} up?)",
                        field="flush",
                    )
                self._cond.wait(left if left is not None else 0.5)
            errors, self._errors = self._errors, []
        if errors:
            raise errors[0]
        return self.token

    def pending(self) -> int:
        return self._enqueued - self._acked

    # -- the sender thread --

    def _loop(self) -> None:
        while True:
            self._wake.wait(0.02)
            self._wake.clear()
            while self._queue:
                try:
                    events, last_seq = self._take()
                    if events:
                        self._send(events)
                except Exception as exc:  # never let the sender thread die
                    last_seq = self._enqueued
                    self._queue.clear()
                    with self._cond:
                        self._errors.append(RunlakeError(f"runlake sender: {exc!r}"))
                with self._cond:
                    self._acked = last_seq
                    self._cond.notify_all()

    def _take(self) -> tuple[list[events_pb2.Event], int]:
        events: list[events_pb2.Event] = []
        points: _Points | None = None
        n_points = 0
        last = self._acked
        q = self._queue
        while q and len(events) < MAX_EVENTS and n_points < MAX_POINTS:
            item = q.popleft()
            last = item[0]
            if item[1] == "m":
                _, _, run_id, key, value, ts, step = item
                if points is None or points.run_id != run_id:
                    if points is not None:
                        events.append(points.event())
                    points = _Points(run_id)
                idx = points.keys.setdefault(key, len(points.keys))
                points.index.append(idx)
                points.values.append(value)
                points.stamps.append(ts)
                points.steps.append(step)
                n_points += 1
            else:
                if points is not None:
                    events.append(points.event())
                    points = None
                events.append(item[2])
        if points is not None:
            events.append(points.event())
        return events, last

    def _send(self, events: list[events_pb2.Event]) -> None:
        err = self._send_batch(events)
        if err is not None and len(events) > 1:
            # Isolate the bad call: resend one event a batch, so only it is dropped, not the
            # good calls that happened to share its batch. (Error path only.)
            for event in events:
                self._send_batch([event])
        elif err is not None:
            with self._cond:
                self._errors.append(err)

    def _send_batch(self, events: list[events_pb2.Event]) -> RunlakeError | None:
        request = gateway_pb2.WriteRequest(
            batch_id=f"{self._client_id}:{next(self._batch_seq)}", events=events
        )
        delay = 0.05
        while True:
            try:
                reply = self._stub.Write(request, timeout=60, metadata=self._metadata)
                self.token = reply.position
                return None
            except grpc.RpcError as exc:
                if exc.code() not in _RETRY:
                    err = from_grpc(exc)
                    if len(events) == 1:
                        with self._cond:
                            self._errors.append(err)
                    return err
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 2.0)


_senders: dict[tuple[int, str], Sender] = {}
_lock = threading.Lock()


def sender_for(uri: str, user: str = "") -> Sender:
    key = (os.getpid(), uri)
    with _lock:
        s = _senders.get(key)
        if s is None:
            s = Sender(uri, user=user)
            _senders[key] = s
        return s


@atexit.register
def _flush_at_exit() -> None:
    for (pid, _), s in list(_senders.items()):
        if pid != os.getpid() or not s.pending():
            continue
        try:
            s.flush(timeout=float(os.environ.get("RUNLAKE_EXIT_FLUSH_TIMEOUT", "30")))
        except RunlakeError as exc:
            print(
                f"runlake: at exit, {s.pending()} logged items were not sent: {exc}",
                file=sys.stderr,
            )
