"""Decoding of the streamed read answers: metric-history column chunks and Arrow IPC bytes."""

from __future__ import annotations

import functools
import gc
import itertools
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import numpy as np
import pyarrow as pa

from runlake.entities import Metric
from runlake.errors import RunlakeError
from runlake.v1 import query_pb2

__all__ = ["arrow_table", "history"]


@contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic GC while building many acyclic objects.

    Every 700 new objects would trigger a collection that walks the young
    generation, and the list being built is promoted and rescanned again and again:
    for a million points that was most of the time. Tuples of floats and ints cannot
    form cycles, so nothing is lost by collecting once afterwards instead.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def history(key: str, chunks: Iterable[query_pb2.MetricHistoryChunk]) -> list[Metric]:
    """Unpack little-endian column chunks into Metric points, in the order streamed."""
    out: list[Metric] = []
    with _no_gc():
        for c in chunks:
            _extend(out, key, c)
    return out


def _extend(out: list[Metric], key: str, c: query_pb2.MetricHistoryChunk) -> None:
    values = np.frombuffer(c.values, "<f8").tolist()
    stamps = np.frombuffer(c.timestamps, "<i8").tolist()
    steps = np.frombuffer(c.steps, "<i8").tolist()
    if not len(values) == len(stamps) == len(steps):
        raise RunlakeError(
            f"ragged history chunk ({len(values)}/{len(stamps)}/{len(steps)})",
            field="history",
        )
    # tuple.__new__ straight from map: no Python frame per point (Metric is a NamedTuple).
    make = functools.partial(tuple.__new__, Metric)
    out.extend(map(make, zip(itertools.repeat(c.key or key), values, stamps, steps)))


def arrow_table(chunks: list[bytes]) -> pa.Table:
    """Concatenate the chunks of one Arrow IPC stream and read it as a table."""
    data = b"".join(chunks)
    if not data:
        return pa.table({})
    with pa.ipc.open_stream(pa.py_buffer(data)) as reader:
        return reader.read_all()
