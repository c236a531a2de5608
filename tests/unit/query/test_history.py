"""Metric history from the Delta metrics table: order, exact-duplicate removal, chunking."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from runlake.v1 import query_pb2
from runlake_services.query import MetricHistory
from runlake_services.query.history import sort_distinct
from runlake_services.tables.reader import DeltaTableReader

from tests.unit.query.builders import T0, write_delta


def _point(
    run_id: str, key: str, value: float, step: int, ts: int, position: int = 1
) -> dict[str, object]:
    return {
        "run_id": run_id,
        "key": key,
        "value": value,
        "timestamp": ts,
        "step": step,
        "position": position,
    }


def _unpack(chunks: list[query_pb2.MetricHistoryChunk]) -> list[tuple[int, int, float]]:
    out: list[tuple[int, int, float]] = []
    for c in chunks:
        steps = np.frombuffer(c.steps, "<i8").tolist()
        stamps = np.frombuffer(c.timestamps, "<i8").tolist()
        values = np.frombuffer(c.values, "<f8").tolist()
        assert len(steps) == len(stamps) == len(values)
        out += zip(steps, stamps, values, strict=True)
    return out


@pytest.fixture
def history(tmp_path: Path) -> MetricHistory:
    # two commits, so the points come from more than one Parquet file
    write_delta(
        tmp_path,
        "metrics",
        [
            _point("r1", "loss", 0.5, step=2, ts=T0 + 5),
            _point("r1", "loss", 0.9, step=1, ts=T0 + 9),
            _point("r1", "loss", 0.7, step=1, ts=T0 + 1),
            _point("r1", "acc", 1.0, step=0, ts=T0),
            _point("r2", "loss", 9.0, step=0, ts=T0),
        ],
    )
    write_delta(
        tmp_path,
        "metrics",
        [
            _point("r1", "loss", 0.5, step=2, ts=T0 + 5, position=2),  # exact duplicate
            _point("r1", "loss", 0.6, step=2, ts=T0 + 5, position=2),  # same step/time, new value
            _point("r1", "loss", -1.0, step=-3, ts=T0, position=2),
        ],
    )
    return MetricHistory(DeltaTableReader(str(tmp_path)))


def test_ordered_by_step_then_timestamp_without_exact_duplicates(history: MetricHistory) -> None:
    chunks = list(history.chunks("r1", "loss"))
    assert [c.key for c in chunks] == ["loss"]
    assert _unpack(chunks) == [
        (-3, T0, -1.0),
        (1, T0 + 1, 0.7),
        (1, T0 + 9, 0.9),
        (2, T0 + 5, 0.5),
        (2, T0 + 5, 0.6),
    ]


def test_chunks_hold_at_most_the_requested_points(history: MetricHistory) -> None:
    chunks = list(history.chunks("r1", "loss", max_points_per_chunk=2))
    assert [len(c.values) // 8 for c in chunks] == [2, 2, 1]
    assert _unpack(chunks) == _unpack(list(history.chunks("r1", "loss")))


def test_bytes_are_little_endian(history: MetricHistory) -> None:
    (chunk,) = history.chunks("r1", "acc")
    assert chunk.values == np.array([1.0], dtype="<f8").tobytes()
    assert chunk.timestamps == np.array([T0], dtype="<i8").tobytes()
    assert chunk.steps == (0).to_bytes(8, "little")


def test_unknown_run_or_key_is_an_empty_history(history: MetricHistory, tmp_path: Path) -> None:
    assert list(history.chunks("nope", "loss")) == []
    assert list(history.chunks("r1", "nope")) == []
    missing = MetricHistory(DeltaTableReader(str(tmp_path / "no-tables")))
    assert list(missing.chunks("r1", "loss")) == []


def test_a_key_that_looks_like_sql_is_just_a_key(tmp_path: Path) -> None:
    key = "x' OR '1'='1"
    write_delta(tmp_path, "metrics", [_point("r1", key, 1.0, 0, T0), _point("r1", "y", 2.0, 0, T0)])
    h = MetricHistory(DeltaTableReader(str(tmp_path)))
    assert _unpack(list(h.chunks("r1", key))) == [(0, T0, 1.0)]


def test_reads_points_committed_after_the_reader_opened(tmp_path: Path) -> None:
    write_delta(tmp_path, "metrics", [_point("r1", "m", 1.0, 0, T0)])
    h = MetricHistory(DeltaTableReader(str(tmp_path)))
    assert len(_unpack(list(h.chunks("r1", "m")))) == 1
    write_delta(tmp_path, "metrics", [_point("r1", "m", 2.0, 1, T0)])
    assert len(_unpack(list(h.chunks("r1", "m")))) == 2


_small = st.integers(min_value=-3, max_value=3)
_values = st.sampled_from([0.0, -0.0, 1.5, -2.0, float("nan"), float("inf")])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_small, _small, _values), max_size=40), st.booleans())
def test_sort_distinct_matches_a_sorted_set(
    points: list[tuple[int, int, float]], presorted: bool
) -> None:
    """The numpy fast path agrees with the obvious definition, NaN and -0.0 included."""

    def norm(p: tuple[int, int, float]) -> tuple[int, int, float, bool]:
        step, ts, value = p
        nan = math.isnan(value)
        return (step, ts, math.inf if nan else value + 0.0, nan)

    if presorted:
        points = sorted(points, key=norm)
    step = np.array([p[0] for p in points], dtype=np.int64)
    ts = np.array([p[1] for p in points], dtype=np.int64)
    value = np.array([p[2] for p in points], dtype=np.float64)
    keep = sort_distinct(step, ts, value)
    got = [norm((int(step[i]), int(ts[i]), float(value[i]))) for i in keep]
    assert got == sorted(set(map(norm, points)))
