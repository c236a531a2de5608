"""Client-side checks: what the wire cannot carry is refused on the caller's thread."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from runlake import _uri
from runlake._validate import key_values, point
from runlake.entities import Param, RunTag
from runlake.errors import InvalidArgument

NON_INTEGERS = st.one_of(st.floats(), st.booleans(), st.text(), st.binary(), st.decimals())


@pytest.mark.parametrize(
    ("value", "timestamp", "step", "field"),
    [
        (1.0, None, float("nan"), "step"),
        (1.0, None, 1.5, "step"),
        (1.0, None, 2.0, "step"),  # a float step is refused even when whole
        (1.0, None, True, "step"),
        (1.0, None, 2**63, "step"),
        (True, None, 0, "value"),
        (np.bool_(True), None, 0, "value"),
        ("1.0", None, 0, "value"),
        (None, None, 0, "value"),
        (1.0, "now", 0, "timestamp"),
        (1.0, 1.7e12, 0, "timestamp"),
    ],
)
def test_bad_points_name_the_field(
    value: object, timestamp: object, step: object, field: str
) -> None:
    with pytest.raises(InvalidArgument, match=rf"^{field}: ") as caught:
        point(value, timestamp, step)
    assert caught.value.field == field


@given(NON_INTEGERS)
def test_any_non_integer_step_is_rejected(step: object) -> None:
    with pytest.raises(InvalidArgument, match=r"^step: "):
        point(1.0, 5, step)


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1), st.floats(allow_nan=True))
def test_int64_steps_and_any_float_value_pass_unchanged(step: int, value: float) -> None:
    v, ts, s = point(value, 7, step)
    assert s == step and ts == 7
    assert (math.isnan(v) and math.isnan(value)) or v == value


@given(st.one_of(st.integers(min_value=2**63), st.integers(max_value=-(2**63) - 1)))
def test_steps_outside_int64_are_rejected(step: int) -> None:
    with pytest.raises(InvalidArgument, match=r"^step: .*64 bits"):
        point(1.0, 5, step)


@pytest.mark.parametrize(
    "value", [np.float32(0.5), np.float64(0.5), np.int64(3), 3, np.array(0.5), 0.5]
)
def test_numeric_scalars_are_accepted(value: object) -> None:
    assert isinstance(point(value, np.int64(5), np.int32(2))[0], float)


def test_defaults_are_now_and_step_zero() -> None:
    _, ts, step = point(1.0, None, None)
    assert step == 0 and ts > 1_600_000_000_000


def test_key_values_from_mapping_entities_and_pairs() -> None:
    kvs = key_values({"lr": 0.1, "layers": 3}, "params")
    assert [(kv.key, kv.value) for kv in kvs] == [("lr", "0.1"), ("layers", "3")]
    kvs = key_values([Param("a", "1"), RunTag("b", "2"), ("c", None)], "tags")
    assert [(kv.key, kv.value) for kv in kvs] == [("a", "1"), ("b", "2"), ("c", "None")]


@pytest.mark.parametrize("items", [{1: "x"}, [("ok", 1), (None, 2)], ["abc"]])
def test_key_values_reject_non_string_keys(items: object) -> None:
    with pytest.raises(InvalidArgument, match=r"^params"):
        key_values(items, "params")


@pytest.mark.parametrize(
    "uri", ["localhost:5055", "http://h:1", "grpc://h", "grpc://:5", "grpc://h:x", "grpc://h:1/p"]
)
def test_bad_tracking_uris_name_the_field(uri: str) -> None:
    with pytest.raises(InvalidArgument, match=r"^tracking_uri: "):
        _uri.resolve(uri)


def test_tracking_uri_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(_uri.ENV, raising=False)
    assert _uri.resolve(None) == "grpc://127.0.0.1:5055"
    monkeypatch.setenv(_uri.ENV, "grpc://env:1")
    assert _uri.resolve(None) == "grpc://env:1"
    assert _uri.resolve(None, "grpc://session:2") == "grpc://session:2"
    assert _uri.resolve("grpc://arg:3", "grpc://session:2") == "grpc://arg:3"


def test_one_channel_per_uri() -> None:
    assert _uri.channel("grpc://127.0.0.1:7") is _uri.channel("grpc://127.0.0.1:7")
    assert _uri.channel("grpc://127.0.0.1:7") is not _uri.channel("grpc://127.0.0.1:8")
