"""Cutting the queue into batches: order, coalescing and limits, for any interleaving."""

from __future__ import annotations

import itertools
from collections import deque
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from runlake._batching import MAX_EVENTS, Batcher, FlushMarker
from runlake.columns import unpack_metrics
from runlake.v1 import events_pb2 as E

from tests import events as ev

RUNS = ["a" * 32, "b" * 32]

# an op: ("m", run index, key index, value) or ("e", run index) or ("f",)
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("m"), st.integers(0, 1), st.integers(0, 2), st.floats(allow_nan=False)),
        st.tuples(st.just("e"), st.integers(0, 1)),
        st.tuples(st.just("f")),
    ),
    max_size=300,
)


def _flatten(events: list[E.Event]) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for e in events:
        if e.HasField("metrics_logged"):
            cols = unpack_metrics(e.metrics_logged.points)
            for k, v, s in zip(
                cols.key_index.tolist(), cols.values.tolist(), cols.steps.tolist(), strict=True
            ):
                out.append(("m", e.metrics_logged.run_id, cols.keys[k], v, s))
        else:
            out.append(("e", e.tags_set.run_id, e.tags_set.tags[0].value))
    return out


@settings(max_examples=200, deadline=None)
@given(OPS, st.integers(1, 4))
def test_any_interleaving_comes_out_in_order_and_coalesced(
    ops: list[tuple[Any, ...]], max_batches: int
) -> None:
    q: deque[Any] = deque()
    expected: list[tuple[Any, ...]] = []
    n_markers = 0
    for i, op in enumerate(ops):
        if op[0] == "m":
            run, key = RUNS[op[1]], f"k{op[2]}"
            q.append((run, key, op[3], 1, i))
            expected.append(("m", run, key, op[3], i))
        elif op[0] == "e":
            q.append(ev.tags(RUNS[op[1]], n=str(i)))
            expected.append(("e", RUNS[op[1]], str(i)))
        else:
            q.append(FlushMarker())
            n_markers += 1
    batcher = Batcher("cid")
    markers: list[FlushMarker] = []
    events: list[E.Event] = []
    ids: list[str] = []
    while q:
        for batch in batcher.take(q, markers, max_batches):
            ids.append(batch.batch_id)
            events.extend(batch.events)
            assert len(batch.events) <= MAX_EVENTS
            # within a batch, consecutive points of one run always share one event
            runs = [e.metrics_logged.run_id or None for e in batch.events]
            for prev, cur in itertools.pairwise(runs):
                assert prev is None or prev != cur
    assert _flatten(events) == expected
    assert len(markers) == n_markers
    assert ids == [f"cid:{n}" for n in range(1, len(ids) + 1)]


def test_split_keeps_origin_and_offsets() -> None:
    batcher = Batcher("c")
    q: deque[Any] = deque(ev.tags("a" * 32, n=str(i)) for i in range(5))
    (batch,) = batcher.take(q, [], 1)
    left, right = batcher.split(batch)
    assert (left.origin, left.offset, len(left.events)) == ("c:1", 0, 2)
    assert (right.origin, right.offset, len(right.events)) == ("c:1", 2, 3)
    assert left.batch_id != right.batch_id != batch.batch_id
    assert left.items + right.items == batch.items
