"""Client-side checks for what the wire cannot carry, done before anything is queued.

The gateway validates names, sizes and state; but a NaN step or a ``True`` value
would already be mangled by the time it is packed into int64/float64 columns, and
an error found by the background sender surfaces only at the next flush. So these
checks run on the caller's thread and raise at once, naming the field. The common
case (a float value, an int step) takes a fast path of two ``type() is`` tests.
"""

from __future__ import annotations

import numbers
import time
from collections.abc import Iterable, Mapping
from typing import Any

from runlake.errors import InvalidArgument
from runlake.v1 import events_pb2

__all__ = ["integer", "key", "key_values", "now_ms", "point", "real"]

_I64_MIN = -(2**63)
_I64_MAX = 2**63 - 1


def now_ms() -> int:
    """Wall-clock milliseconds since the epoch (MLflow's timestamp unit)."""
    return time.time_ns() // 1_000_000


def integer(value: Any, field: str) -> int:
    """An int64; floats (even 1.0 or NaN) and bools are rejected rather than coerced."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidArgument(f"must be an integer, got {value!r}", field=field)
    out = int(value)
    if not _I64_MIN <= out <= _I64_MAX:
        raise InvalidArgument(f"{out} does not fit in 64 bits", field=field)
    return out


def real(value: Any, field: str = "value") -> float:
    """A float64; bools and strings are rejected, numpy/torch scalars are unwrapped."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "ndim", None) == 0 and not isinstance(value, str):
        try:
            inner = item()
        except Exception:  # an object with an unrelated .item()
            inner = None
        if isinstance(inner, numbers.Real) and not isinstance(inner, bool):
            return float(inner)
    raise InvalidArgument(f"must be a real number, got {value!r}", field=field)


def point(value: Any, timestamp: Any, step: Any) -> tuple[float, int, int]:
    """Checked (value, timestamp ms, step) of one metric point; defaults: now, step 0."""
    v = value if type(value) is float else real(value)
    if timestamp is None:
        ts = time.time_ns() // 1_000_000
    elif type(timestamp) is int and _I64_MIN <= timestamp <= _I64_MAX:
        ts = timestamp
    else:
        ts = integer(timestamp, "timestamp")
    if step is None:
        st = 0
    elif type(step) is int and _I64_MIN <= step <= _I64_MAX:
        st = step
    else:
        st = integer(step, "step")
    return v, ts, st


def key(value: Any, field: str = "key") -> str:
    """Keys must already be strings (MLflow rejects others too); the gateway checks the rest."""
    if type(value) is not str and not isinstance(value, str):
        raise InvalidArgument(f"must be a string, got {type(value).__name__}", field=field)
    return value


def key_values(items: Any, field: str) -> list[events_pb2.KeyValue]:
    """Params or tags as ``KeyValue``s, from a mapping or from Param/RunTag/(key, value) items.

    Values are converted with ``str()`` as MLflow does, so ``log_param("lr", 0.1)`` works.
    """
    if not items:
        return []
    pairs: Iterable[tuple[Any, Any]]
    if isinstance(items, Mapping):
        pairs = items.items()
    else:
        pairs = (
            (item.key, item.value) if hasattr(item, "key") and hasattr(item, "value") else item
            for item in items
        )
    out = []
    for i, pair in enumerate(pairs):
        try:
            k, v = pair
        except (TypeError, ValueError):
            raise InvalidArgument(
                f"must be a (key, value) pair, got {pair!r}", field=f"{field}[{i}]"
            ) from None
        out.append(events_pb2.KeyValue(key=key(k, f"{field}[{i}].key"), value=str(v)))
    return out
