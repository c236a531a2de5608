"""The background sender: log calls only enqueue; one daemon thread batches, sends, retries.

Why this shape:

- **Caller cost.** A log call is ``deque.append`` of a small tuple: no lock, no
  ``Condition.notify``. The sender polls every ~25 ms and is woken early only when
  the queue crosses a size threshold (or by ``flush``), so a training loop pays
  about a microsecond a point.
- **Order.** One thread drains the queue in order (see :mod:`runlake._batching`),
  so a ``RunCreated`` always reaches the gateway before that run's metrics, and the
  last acknowledgement is always the latest position (read-your-writes token).
- **Exactly once.** Batch ids are ``<client id>:<seq>``; a retry (after UNAVAILABLE,
  RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED or a broken connection) reuses the id, and
  the gateway answers a known id with the original position instead of appending
  again. A failed ``WriteStream`` is resent batch by batch with the same ids.
- **Rejections.** A rejected batch appended nothing. It is bisected under fresh ids
  until the rejected event is alone, so one bad call never takes the good calls
  that happened to share its batch down with it (which batch a call lands in is a
  timing accident); the bad event is dropped and its error raised by the next
  :meth:`Sender.flush`, naming the batch and the field.
- **Bounded memory.** Past ``max_queue`` items a log call blocks (warning once)
  until the sender catches up.
- **Exit and fork.** At interpreter exit every sender gets a bounded flush; what
  could not be sent is counted on stderr. A forked child gets fresh senders.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import random
import re
import sys
import threading
import time
import uuid
from collections import deque
from typing import Any

import grpc

from runlake._batching import Batch, Batcher, FlushMarker
from runlake._uri import channel
from runlake.errors import DeadlineExceeded, RunlakeError, Unavailable, from_grpc
from runlake.positions import later
from runlake.v1 import events_pb2, gateway_pb2_grpc

__all__ = ["DEFAULT_MAX_QUEUE", "Sender", "existing_sender", "flush_all_at_exit", "sender_for"]

DEFAULT_MAX_QUEUE = 1_000_000
#: Queue length at which a log call wakes the sender instead of waiting for its poll.
WAKE_AT = 10_000
#: Batches taken per round; more than one go out on a single WriteStream call.
MAX_STREAM = 16
_RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    }
)
#: Answers about the batch's content: bisect to drop only the event at fault. Any other
#: non-retryable answer (INTERNAL, UNIMPLEMENTED, ...) drops the batch whole, error kept.
_REJECTED = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.OUT_OF_RANGE,
    }
)
_HINT = re.compile(r"retry in (\d+(?:\.\d+)?) ?(ms|s)\b")
_EVENT_INDEX = re.compile(r"^events\[(\d+)\]")


class _Abandoned(Exception):
    """The sender was stopped while a batch still waited for a retry."""


def _code(exc: grpc.RpcError) -> grpc.StatusCode:
    code = exc.code() if hasattr(exc, "code") else None
    return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN


def _hint_s(exc: grpc.RpcError) -> float:
    """The server's "retry in N s" hint of a RESOURCE_EXHAUSTED answer, 0 when absent."""
    detail = exc.details() if hasattr(exc, "details") else ""
    m = _HINT.search(detail or "")
    if not m:
        return 0.0
    return float(m[1]) / (1000.0 if m[2] == "ms" else 1.0)


class Sender:
    """One per tracking URI and process (see :func:`sender_for`); tests build their own."""

    def __init__(
        self,
        uri: str,
        *,
        max_queue: int | None = None,
        user: str = "",
        poll_s: float = 0.025,
        rpc_timeout_s: float = 60.0,
        backoff_s: tuple[float, float] = (0.05, 5.0),
    ) -> None:
        self.uri = uri
        if max_queue is None:
            max_queue = int(os.environ.get("RUNLAKE_MAX_QUEUE", DEFAULT_MAX_QUEUE))
        self.max_queue = max(1, max_queue)
        self._wake_at = max(1, min(WAKE_AT, self.max_queue // 2))
        self._queue: deque[Any] = deque()
        self._stub = gateway_pb2_grpc.GatewayStub(channel(uri))
        self._metadata = (("x-runlake-user", user),) if user else ()
        self._batcher = Batcher(uuid.uuid4().hex[:16])
        self._poll_s = poll_s
        self._rpc_timeout_s = rpc_timeout_s
        self._backoff = backoff_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._errors_lock = threading.Lock()
        self._errors: list[RunlakeError] = []
        self._rejected = 0
        self._inflight = 0
        self._warned = False
        self.lost = 0  #: items given up on when stopped before they were acknowledged
        self.stale = False  #: set in a forked child: this object's thread lives in the parent
        #: The latest position the gateway acknowledged; sent as ReadOptions.min_position.
        self.position = ""
        self._thread = threading.Thread(target=self._loop, name="runlake-sender", daemon=True)
        self._thread.start()

    @property
    def client_id(self) -> str:
        return self._batcher.client_id

    # -- the caller's side: cheap, lock-free --

    def metric(self, run_id: str, key: str, value: float, timestamp: int, step: int) -> None:
        """Queue one checked metric point."""
        q = self._queue
        if len(q) >= self._wake_at:
            self._pressure()
        q.append((run_id, key, value, timestamp, step))

    def event(self, event: events_pb2.Event) -> None:
        """Queue any other write; it keeps its place relative to every other item."""
        q = self._queue
        if len(q) >= self._wake_at:
            self._pressure()
        q.append(event)

    def _pressure(self) -> None:
        """Wake the sender; block while the queue is full (backpressure, not unbounded memory)."""
        self._wake.set()
        q = self._queue
        if len(q) < self.max_queue:
            return
        if not self._warned:
            self._warned = True
            print(
                f"runlake: {len(q):,} logged items wait to be sent to {self.uri}; logging "
                "blocks until the server catches up (set RUNLAKE_MAX_QUEUE to change the limit)",
                file=sys.stderr,
            )
        while len(q) >= self.max_queue and not self._stop.is_set():
            self._wake.set()
            time.sleep(0.001)

    def flush(self, timeout: float | None = None) -> str:
        """Wait until everything queued before this call is answered; return the latest position.

        Raises the first rejection seen since the previous flush (its runlake error class,
        message naming the field and the batch), or DeadlineExceeded when ``timeout`` runs
        out first (nothing is dropped then: the sender keeps retrying).
        """
        if self._stop.is_set() or not self._thread.is_alive():
            raise Unavailable(f"the sender for {self.uri} was stopped", field="flush")
        marker = FlushMarker()
        self._queue.append(marker)
        self._wake.set()
        if not marker.wait(timeout):
            raise DeadlineExceeded(
                f"{self.pending():,} logged items not acknowledged within {timeout:g} s "
                f"(is the server at {self.uri} up?)",
                field="flush",
            )
        self.raise_rejections()
        return self.position

    def raise_rejections(self) -> None:
        """Raise (and forget) the first rejection kept since the last call, if any."""
        with self._errors_lock:
            errors, self._errors = self._errors, []
            rejected, self._rejected = self._rejected, 0
        if not errors:
            return
        first = errors[0]
        if rejected > 1:
            first.args = (f"{first.args[0]} (and {rejected - 1} more rejected events)",)
        raise first

    def note_position(self, position: str) -> None:
        """Adopt a position from a synchronous write (CreateExperiment) as the latest."""
        if position:
            self.position = later(self.position, position)

    def pending(self) -> int:
        """Items queued or in flight, not yet answered (approximate while logging goes on)."""
        return len(self._queue) + self._inflight

    def close(self, timeout: float = 5.0) -> int:
        """Flush for at most ``timeout`` seconds, then stop the thread; return items lost."""
        with contextlib.suppress(RunlakeError):
            self.flush(timeout)
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=max(1.0, timeout))
        left = sum(1 for item in list(self._queue) if type(item) is not FlushMarker)
        return self.lost + left

    # -- the sender thread --

    def _loop(self) -> None:
        q = self._queue
        while not self._stop.is_set():
            if not q:
                self._wake.wait(self._poll_s)
                self._wake.clear()
                continue
            markers: list[FlushMarker] = []
            try:
                batches = self._batcher.take(q, markers, MAX_STREAM)
                self._inflight = sum(b.items for b in batches)
                self._deliver(batches)
            except _Abandoned:
                self.lost += self._inflight
            except Exception as exc:  # a bug here must neither kill the thread nor hang flush
                self._keep(RunlakeError(f"runlake sender failed on a batch: {exc!r}"))
            finally:
                self._inflight = 0
                for m in markers:
                    m.set()
        try:
            for item in list(q):  # stopped: wake whoever still waits
                if type(item) is FlushMarker:
                    item.set()
        except RuntimeError:  # appended to while listed; those callers get the stop error
            pass

    def _deliver(self, batches: list[Batch]) -> None:
        if len(batches) == 1:
            self._send(batches[0])
            return
        if batches and self._stream(batches):
            return
        for b in batches:  # unary resend of what the stream did not ack; ids dedupe
            self._send(b)

    def _stream(self, batches: list[Batch]) -> bool:
        """One WriteStream call; True when every batch was acknowledged."""
        try:
            reply = self._stub.WriteStream(
                iter([b.request() for b in batches]),
                timeout=self._rpc_timeout_s,
                metadata=self._metadata,
            )
        except grpc.RpcError:
            return False
        if len(reply.acks) != len(batches):
            return False
        self.position = later(self.position, reply.acks[-1].position)
        return True

    def _send(self, batch: Batch) -> None:
        """Unary Write with capped, jittered exponential backoff on transient failures."""
        request = batch.request()
        delay, cap = self._backoff
        while True:
            try:
                reply = self._stub.Write(
                    request, timeout=self._rpc_timeout_s, metadata=self._metadata
                )
            except grpc.RpcError as exc:
                code = _code(exc)
                if code not in _RETRYABLE:
                    self._rejected_batch(batch, exc)
                    return
                pause = max(delay * (0.5 + random.random()), _hint_s(exc))
                if self._stop.wait(pause):
                    raise _Abandoned from None
                delay = min(delay * 2, cap)
                continue
            self.position = later(self.position, reply.position)
            return

    def _rejected_batch(self, batch: Batch, exc: grpc.RpcError) -> None:
        if len(batch.events) > 1 and _code(exc) in _REJECTED:
            left, right = self._batcher.split(batch)
            self._send(left)
            self._send(right)
            return
        self._keep(self._rejection(batch, exc))

    @staticmethod
    def _rejection(batch: Batch, exc: grpc.RpcError) -> RunlakeError:
        """The error of a lone rejected event, its index mapped back to the original batch."""
        err = from_grpc(exc)
        detail = str(err)
        m = _EVENT_INDEX.match(detail)
        if m:
            detail = f"events[{int(m[1]) + batch.offset}]{detail[m.end() :]}"
        what: str
        if len(batch.events) == 1:
            what = batch.events[0].WhichOneof("body") or "event"
        else:
            what = f"{len(batch.events)} events dropped"
        out = type(err)(f"{detail} (batch {batch.origin}, {what})")
        out.code = err.code
        out.field = detail.split(": ", 1)[0] if ": " in detail else None
        return out

    def _keep(self, err: RunlakeError) -> None:
        with self._errors_lock:
            self._rejected += 1
            if not self._errors:
                self._errors.append(err)


# -- one sender per (process, URI) --

_senders: dict[str, Sender] = {}
_lock = threading.Lock()


def sender_for(uri: str, user: str = "") -> Sender:
    """The process's sender for ``uri``, started on first use."""
    s = _senders.get(uri)
    if s is not None:
        return s
    with _lock:
        s = _senders.get(uri)
        if s is None:
            s = _senders[uri] = Sender(uri, user=user)
        return s


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()
    for s in _senders.values():
        s.stale = True  # its thread did not survive the fork; its queue is the parent's to send
    _senders.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def exit_timeout_s() -> float:
    """How long interpreter exit waits for unsent items (RUNLAKE_EXIT_FLUSH_TIMEOUT, 30 s)."""
    try:
        return max(0.0, float(os.environ.get("RUNLAKE_EXIT_FLUSH_TIMEOUT", "30")))
    except ValueError:
        return 30.0


def flush_all_at_exit(timeout_s: float | None = None) -> None:
    """Bounded flush of every sender; report on stderr what was lost or rejected."""
    deadline = time.monotonic() + (exit_timeout_s() if timeout_s is None else timeout_s)
    for s in list(_senders.values()):
        if s.pending() == 0:
            try:
                s.raise_rejections()
            except RunlakeError as exc:
                print(f"runlake: a logged write was rejected: {exc}", file=sys.stderr)
            continue
        try:
            s.flush(timeout=max(0.0, deadline - time.monotonic()))
        except DeadlineExceeded:
            print(
                f"runlake: gave up at exit; {s.pending():,} logged items were not sent to "
                f"{s.uri} (lost)",
                file=sys.stderr,
            )
        except RunlakeError as exc:
            print(f"runlake: a logged write was rejected: {exc}", file=sys.stderr)


atexit.register(flush_all_at_exit)


def existing_sender(uri: str) -> Sender | None:
    """The process's sender for ``uri`` if one was started (reads need not start one)."""
    return _senders.get(uri)
