"""Turning the sender's queue into write batches (runs on the sender thread only).

The queue holds three kinds of items, told apart by type alone so the training
thread never builds anything bigger than a tuple:

- a metric point: the plain tuple ``(run_id, key, value, timestamp_ms, step)``;
- any other write: a ready ``events_pb2.Event``;
- a flush marker: a :class:`FlushMarker`, released once everything before it is answered.

Consecutive points of one run become one columnar ``MetricsLogged`` event (keys as
a dictionary); every other event keeps its place, so a run's ``RunCreated`` always
precedes its metrics and a delete never overtakes the writes logged before it.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from runlake.columns import pack_metrics
from runlake.v1 import events_pb2, gateway_pb2

__all__ = [
    "MAX_BYTES",
    "MAX_EVENTS",
    "MAX_POINTS",
    "Batch",
    "Batcher",
    "FlushMarker",
    "PointItem",
]

#: Limits of one batch; well under the gateway's (10,000 events, 100,000 points,
#: 16 MiB) so a batch is never rejected for its size and one retry stays cheap.
MAX_EVENTS = 1_000
MAX_POINTS = 50_000
MAX_BYTES = 4 * 1024 * 1024
_POINT_BYTES = 28  # uint32 key index + float64 + int64 + int64

PointItem = tuple[str, str, float, int, int]


class FlushMarker(threading.Event):
    """Put in the queue by ``flush``; set once every item queued before it is answered."""


@dataclass
class Batch:
    """One WriteRequest to be, plus where its events came from (for error messages)."""

    batch_id: str
    events: list[events_pb2.Event]
    items: int  #: queued items it carries (points and events), for loss accounting
    origin: str = ""  #: the id the events were first sent under (bisection keeps it)
    offset: int = 0  #: index of ``events[0]`` within the origin batch

    def __post_init__(self) -> None:
        if not self.origin:
            self.origin = self.batch_id

    def request(self) -> gateway_pb2.WriteRequest:
        return gateway_pb2.WriteRequest(batch_id=self.batch_id, events=self.events)


def metrics_event(run_id: str, points: list[PointItem]) -> events_pb2.Event:
    """One ``MetricsLogged`` event carrying ``points`` (all of ``run_id``) as columns."""
    keys: dict[str, int] = {}
    _, names, values, stamps, steps = zip(*points, strict=True)
    index = [keys.setdefault(k, len(keys)) for k in names]
    cols = pack_metrics(list(keys), index, values, stamps, steps)
    return events_pb2.Event(metrics_logged=events_pb2.MetricsLogged(run_id=run_id, points=cols))


class Batcher:
    """Cuts the queue into batches with ids ``<client id>:<sequence>``."""

    def __init__(self, client_id: str) -> None:
        self.client_id = client_id
        self._seq = itertools.count(1)

    def next_id(self) -> str:
        return f"{self.client_id}:{next(self._seq)}"

    def take(self, queue: deque[Any], markers: list[FlushMarker], max_batches: int) -> list[Batch]:
        """Up to ``max_batches`` batches from the head of ``queue``; markers go to ``markers``."""
        batches: list[Batch] = []
        while queue and len(batches) < max_batches:
            batch = self._take_one(queue, markers)
            if batch is not None:
                batches.append(batch)
        return batches

    def _take_one(self, queue: deque[Any], markers: list[FlushMarker]) -> Batch | None:
        events: list[events_pb2.Event] = []
        segment: list[PointItem] = []
        segment_run = ""
        n_points = n_bytes = n_items = 0
        popleft = queue.popleft
        while queue:
            if (
                len(events) + (1 if segment else 0) >= MAX_EVENTS
                or n_points >= MAX_POINTS
                or n_bytes >= MAX_BYTES
            ):
                break
            item = popleft()
            kind = type(item)
            if kind is tuple:
                if item[0] != segment_run and segment:
                    events.append(metrics_event(segment_run, segment))
                    segment = []
                segment_run = item[0]
                segment.append(item)
                n_points += 1
                n_bytes += _POINT_BYTES + len(item[1])
                n_items += 1
            elif kind is FlushMarker:
                markers.append(item)
            else:
                if segment:
                    events.append(metrics_event(segment_run, segment))
                    segment = []
                events.append(item)
                n_bytes += item.ByteSize()
                n_items += 1
        if segment:
            events.append(metrics_event(segment_run, segment))
        if not events:
            return None
        return Batch(self.next_id(), events, n_items)

    def split(self, batch: Batch) -> tuple[Batch, Batch]:
        """Halves of a rejected batch, under fresh ids, to find the event at fault."""
        mid = len(batch.events) // 2
        left, right = batch.events[:mid], batch.events[mid:]
        share = batch.items * mid // len(batch.events)
        return (
            Batch(self.next_id(), left, share, batch.origin, batch.offset),
            Batch(self.next_id(), right, batch.items - share, batch.origin, batch.offset + mid),
        )
