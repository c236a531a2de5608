"""Packing of metric points into the columnar wire form of ``MetricColumns``.

Both ends move a batch as a few little-endian byte strings, so neither the SDK's
sender nor the gateway nor the fold does per-point work in Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from runlake.v1 import events_pb2

__all__ = ["MetricArrays", "pack_metrics", "unpack_metrics"]

_U32 = np.dtype("<u4")
_F64 = np.dtype("<f8")
_I64 = np.dtype("<i8")


@dataclass(frozen=True)
class MetricArrays:
    """The points of one ``MetricColumns`` as numpy views (zero-copy over the message)."""

    keys: list[str]
    key_index: npt.NDArray[np.uint32]
    values: npt.NDArray[np.float64]
    timestamps: npt.NDArray[np.int64]
    steps: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.values.shape[0])


def pack_metrics(
    keys: Sequence[str],
    key_index: Sequence[int] | npt.NDArray[np.uint32],
    values: Sequence[float] | npt.NDArray[np.float64],
    timestamps: Sequence[int] | npt.NDArray[np.int64],
    steps: Sequence[int] | npt.NDArray[np.int64],
) -> events_pb2.MetricColumns:
    """Build a ``MetricColumns`` message from parallel columns."""
    return events_pb2.MetricColumns(
        keys=list(keys),
        key_index=np.asarray(key_index, dtype=_U32).tobytes(),
        values=np.asarray(values, dtype=_F64).tobytes(),
        timestamps=np.asarray(timestamps, dtype=_I64).tobytes(),
        steps=np.asarray(steps, dtype=_I64).tobytes(),
    )


def _column(raw: bytes, dtype: np.dtype[np.generic], field: str) -> npt.NDArray[np.generic]:
    if len(raw) % dtype.itemsize:
        from runlake.errors import InvalidArgument

        raise InvalidArgument(
            f"{len(raw)} bytes is not a whole number of {dtype.itemsize}-byte entries",
            field=field,
        )
    return np.frombuffer(raw, dtype=dtype)


def unpack_metrics(cols: events_pb2.MetricColumns, field: str = "points") -> MetricArrays:
    """Views over the packed columns; raises InvalidArgument on a ragged batch."""
    from runlake.errors import InvalidArgument

    ki = _column(cols.key_index, _U32, f"{field}.key_index")
    vals = _column(cols.values, _F64, f"{field}.values")
    ts = _column(cols.timestamps, _I64, f"{field}.timestamps")
    steps = _column(cols.steps, _I64, f"{field}.steps")
    n = vals.shape[0]
    for name, arr in (("key_index", ki), ("timestamps", ts), ("steps", steps)):
        if arr.shape[0] != n:
            raise InvalidArgument(
                f"has {arr.shape[0]} entries but values has {n}", field=f"{field}.{name}"
            )
    return MetricArrays(list(cols.keys), ki, vals, ts, steps)  # type: ignore[arg-type]
