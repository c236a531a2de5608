"""Decoding of the streamed read answers: metric-history column chunks and Arrow IPC bytes."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pyarrow as pa

from runlake.entities import Metric
from runlake.errors import RunlakeError
from runlake.v1 import query_pb2

__all__ = ["arrow_table", "history"]


def history(key: str, chunks: Iterable[query_pb2.MetricHistoryChunk]) -> list[Metric]:
    """Unpack little-endian column chunks into Metric points, in the order streamed."""
    out: list[Metric] = []
    for c in chunks:
        values = np.frombuffer(c.values, "<f8").tolist()
        stamps = np.frombuffer(c.timestamps, "<i8").tolist()
        steps = np.frombuffer(c.steps, "<i8").tolist()
        if not len(values) == len(stamps) == len(steps):
            raise RunlakeError(
                f"ragged history chunk ({len(values)}/{len(stamps)}/{len(steps)})",
                field="history",
            )
        name = c.key or key
        out.extend(map(Metric, [name] * len(values), values, stamps, steps))
    return out


def arrow_table(chunks: list[bytes]) -> pa.Table:
    """Concatenate the chunks of one Arrow IPC stream and read it as a table."""
    data = b"".join(chunks)
    if not data:
        return pa.table({})
    with pa.ipc.open_stream(pa.py_buffer(data)) as reader:
        return reader.read_all()
