"""Micro-batching: merging never changes what a request gets, and the batcher merges for real."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Hashable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from runlake.models import ColSpec, ModelSchemaError, Schema
from runlake.serving.batching import Batcher, Outcome, merge_inputs, model_input, split_rows
from runlake.serving.payload import Parsed, Table, parse_request

SCHEMA = Schema([ColSpec("double", "a"), ColSpec("double", "b")])

# JSON scalars as a client may send them: the types pandas infers from differ per mix
SCALARS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.integers(-(2**63), 2**64 - 1),
    st.booleans(),
    st.text(alphabet="xyz", max_size=3),
    st.none(),
)


def _request(rows: list[list[Any]]) -> Parsed:
    body = json.dumps({"dataframe_split": {"columns": ["a", "b"], "data": rows}}).encode()
    return parse_request(body, "application/json", None)


REQUESTS = st.lists(
    st.lists(st.lists(SCALARS, min_size=2, max_size=2), min_size=1, max_size=4).map(_request),
    min_size=1,
    max_size=8,
)


def _groups(requests: list[Parsed]) -> list[list[Parsed]]:
    batcher = Batcher(lambda d, p: d, schema=None, merge=True)
    by_key: dict[Hashable, list[Parsed]] = defaultdict(list)
    for r in requests:
        key = batcher._key(r)
        if key is not None:
            by_key[key].append(r)
    return list(by_key.values())


@settings(max_examples=300, deadline=None)
@given(REQUESTS)
def test_a_merged_frame_holds_what_each_request_would_alone(requests: list[Parsed]) -> None:
    """The safety property: pandas infers the same dtypes and values merged as alone."""
    for group in _groups(requests):
        merged = merge_inputs(group, None)
        parts = split_rows(merged, [r.rows or 0 for r in group])
        assert parts is not None
        for part, request in zip(parts, group, strict=True):
            alone = model_input(request, None)
            pd.testing.assert_frame_equal(part.reset_index(drop=True), alone)


HOMOGENEOUS = st.sampled_from(
    [
        st.floats(allow_nan=False, allow_infinity=False),
        st.integers(-(2**63), 2**63 - 1),
        st.booleans(),
    ]
).flatmap(lambda values: st.lists(st.lists(values, min_size=3, max_size=3), min_size=1, max_size=5))


@settings(max_examples=200, deadline=None)
@given(st.one_of(HOMOGENEOUS, st.lists(st.lists(SCALARS, min_size=3, max_size=3), min_size=1)))
def test_table_frames_are_what_pandas_makes_of_the_rows(rows: list[list[Any]]) -> None:
    """The numpy shortcut for one-type tables builds exactly pandas' own frame."""
    body = json.dumps({"dataframe_split": {"columns": ["x", "y", "z"], "data": rows}}).encode()
    table = parse_request(body, "application/json", None).data
    assert isinstance(table, Table)
    expected = pd.DataFrame(json.loads(body)["dataframe_split"]["data"], columns=["x", "y", "z"])
    pd.testing.assert_frame_equal(table.frame(), expected)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=10))
def test_split_rows_cuts_each_output_kind_back(sizes: list[int]) -> None:
    total = sum(sizes)
    values = np.arange(total * 2).reshape(total, 2)
    for out in (values, pd.DataFrame(values), pd.Series(values[:, 0]), values.tolist()):
        parts = split_rows(out, sizes)
        assert parts is not None
        assert [len(p) for p in parts] == sizes
        rebuilt = np.concatenate([np.asarray(p).reshape(-1, *np.shape(out)[1:]) for p in parts])
        assert rebuilt.tolist() == np.asarray(out).tolist()


def test_split_rows_refuses_outputs_that_do_not_line_up() -> None:
    assert split_rows(np.arange(3), [1, 1]) is None
    assert split_rows(np.float64(1.0), [1]) is None
    assert split_rows({"a": [1, 2]}, [1, 1]) is None
    assert split_rows(pd.DataFrame({"a": [1]}), [1, 1]) is None


# -- the batcher, on an event loop --------------------------------------------------------------


class RowWise:
    """A model scoring rows independently, recording every call it gets."""

    def __init__(self, fail_on: float | None = None, unsplittable: bool = False) -> None:
        self.calls: list[int] = []
        self.fail_on = fail_on
        self.unsplittable = unsplittable

    def __call__(self, data: Any, params: dict[str, Any] | None) -> Any:
        frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame(data)
        self.calls.append(len(frame))
        if frame["a"].dtype.kind not in "fi":
            raise ModelSchemaError("expected double", column="a")
        if self.fail_on is not None and (frame["a"] == self.fail_on).any():
            raise ValueError("cannot score this row")
        scale = (params or {}).get("scale", 1)
        out = (frame["a"] * 2 + frame["b"]).to_numpy() * scale
        return out.sum() if self.unsplittable else out


def _req(rows: list[list[Any]], params: dict[str, Any] | None = None) -> Parsed:
    doc: dict[str, Any] = {"dataframe_split": {"columns": ["a", "b"], "data": rows}}
    if params is not None:
        doc["params"] = params
    return parse_request(json.dumps(doc).encode(), "application/json", SCHEMA)


def _expected(rows: list[list[Any]], scale: float = 1) -> list[float]:
    return [(a * 2 + b) * scale for a, b in rows]


def _score_all(batcher: Batcher, requests: list[Parsed]) -> list[Outcome]:
    async def go() -> list[Outcome]:
        return list(await asyncio.gather(*(batcher.score(r) for r in requests)))

    return asyncio.run(go())


@pytest.mark.parametrize("in_thread", [False, True])
def test_concurrent_requests_share_one_call(in_thread: bool) -> None:
    model = RowWise()
    batcher = Batcher(model, schema=SCHEMA, merge=True, in_thread=in_thread)
    rows = [[[float(i), 1.0]] for i in range(20)] + [[[1.0, 2.0], [3.0, 4.0]]]
    outcomes = _score_all(batcher, [_req(r) for r in rows])
    assert model.calls == [22]
    for outcome, r in zip(outcomes, rows, strict=True):
        assert outcome.error is None
        assert outcome.value.tolist() == _expected(r)
    assert batcher.stats.merged_calls == 1 and batcher.stats.largest == 21
    batcher.close()


def test_max_rows_bounds_a_call() -> None:
    model = RowWise()
    batcher = Batcher(model, schema=SCHEMA, merge=True, max_rows=5)
    outcomes = _score_all(batcher, [_req([[float(i), 0.0]]) for i in range(12)])
    assert model.calls == [5, 5, 2]
    assert [o.value.tolist() for o in outcomes] == [[2.0 * i] for i in range(12)]


def test_a_request_larger_than_max_rows_is_scored_whole() -> None:
    model = RowWise()
    batcher = Batcher(model, schema=SCHEMA, merge=True, max_rows=2)
    outcomes = _score_all(batcher, [_req([[1.0, 0.0]] * 5), _req([[2.0, 0.0]])])
    assert sorted(model.calls) == [1, 5]
    assert outcomes[0].value.tolist() == [2.0] * 5


def test_different_columns_types_or_params_are_not_merged() -> None:
    model = RowWise()
    batcher = Batcher(model, schema=SCHEMA, merge=True)
    requests = [
        _req([[1.0, 1.0]]),
        _req([[2.0, 2.0]]),
        _req([[1, 1]]),  # ints: another type set
        _req([[1.0, 1.0]], {"scale": 10}),
        _req([[2.0, 1.0]], {"scale": 10}),
    ]
    outcomes = _score_all(batcher, requests)
    assert sorted(model.calls) == [1, 2, 2]
    assert outcomes[3].value.tolist() == [30.0]
    assert outcomes[4].value.tolist() == [50.0]


def test_a_failing_request_gets_its_own_error_and_the_others_their_answers() -> None:
    model = RowWise(fail_on=13.0)
    batcher = Batcher(model, schema=SCHEMA, merge=True)
    requests = [_req([[float(i), 0.0]]) for i in range(16)]
    outcomes = _score_all(batcher, requests)
    for i, outcome in enumerate(outcomes):
        if i == 13:
            assert isinstance(outcome.error, ValueError)
        else:
            assert outcome.error is None and outcome.value.tolist() == [2.0 * i]
    # bisection: far fewer calls than one per request
    assert len(model.calls) <= 1 + 2 * 4 + 1
    assert batcher.stats.bisections >= 1


def test_a_schema_error_in_a_batch_names_its_column() -> None:
    model = RowWise()
    batcher = Batcher(model, schema=SCHEMA, merge=True)
    outcomes = _score_all(batcher, [_req([[1.0, 0.0]]), _req([["x", 0.0]])])
    assert outcomes[0].value.tolist() == [2.0]
    assert isinstance(outcomes[1].error, ModelSchemaError)


def test_output_that_cannot_be_split_stops_merging() -> None:
    model = RowWise(unsplittable=True)
    batcher = Batcher(model, schema=SCHEMA, merge=True)
    outcomes = _score_all(batcher, [_req([[1.0, 0.0]]), _req([[2.0, 0.0]])])
    assert [float(o.value) for o in outcomes] == [2.0, 4.0]
    assert not batcher.merge
    _score_all(batcher, [_req([[1.0, 0.0]]), _req([[2.0, 0.0]])])
    assert model.calls == [2, 1, 1, 1, 1]


def test_merge_off_scores_each_request_alone() -> None:
    model = RowWise()
    batcher = Batcher(model, schema=SCHEMA, merge=False)
    _score_all(batcher, [_req([[float(i), 0.0]]) for i in range(4)])
    assert model.calls == [1, 1, 1, 1]


def test_non_tables_are_scored_alone() -> None:
    calls: list[Any] = []

    def model(data: Any, params: Any) -> Any:
        calls.append(data)
        return np.asarray(data) * 2

    batcher = Batcher(model, schema=None, merge=True)
    arrays = [Parsed(np.array([[1.0, 2.0]])), Parsed(np.array([[3.0, 4.0]]))]
    outcomes = _score_all(batcher, arrays)
    assert len(calls) == 2
    assert outcomes[1].value.tolist() == [[6.0, 8.0]]


def test_a_batch_waits_for_requests_still_being_read() -> None:
    """A request mid-read when the batch forms joins it, within max_wait."""
    model = RowWise()
    batcher = Batcher(model, schema=SCHEMA, merge=True, max_wait_s=1.0)

    async def go() -> list[Outcome]:
        batcher.begin_read()  # a second request is arriving
        first = asyncio.ensure_future(batcher.score(_req([[1.0, 0.0]])))
        await asyncio.sleep(0.05)
        assert not first.done()  # held for the one being read
        batcher.end_read()
        second = await batcher.score(_req([[2.0, 0.0]]))
        return [await first, second]

    outcomes = asyncio.run(go())
    assert model.calls == [2]
    assert [o.value.tolist() for o in outcomes] == [[2.0], [4.0]]


def test_a_lone_request_does_not_wait() -> None:
    model = RowWise()
    batcher = Batcher(model, schema=SCHEMA, merge=True, max_wait_s=5.0)

    async def go() -> float:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await batcher.score(_req([[1.0, 0.0]]))
        return loop.time() - t0

    assert asyncio.run(go()) < 1.0


def test_table_key_survives_frames() -> None:
    """CSV-like frames merge by columns and dtypes; their answers come back in order."""
    model = RowWise()
    batcher = Batcher(model, schema=SCHEMA, merge=True)
    frames = [Parsed(pd.DataFrame({"a": [float(i)], "b": [0.0]})) for i in range(3)]
    outcomes = _score_all(batcher, frames)
    assert model.calls == [3]
    assert [o.value.tolist() for o in outcomes] == [[0.0], [2.0], [4.0]]
    assert isinstance(frames[0].data, pd.DataFrame) and not isinstance(frames[0].data, Table)
