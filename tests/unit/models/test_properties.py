"""Property tests: inference and enforcement agree, and never change a value."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from runlake.models import (
    ColSpec,
    DataType,
    ModelSchemaError,
    Schema,
    TensorSpec,
    enforce_schema,
    infer_signature,
)
from runlake.models.input_example import load_input_example, save_input_example

ROWS = st.integers(min_value=1, max_value=6)
NAMES = st.text(alphabet="abcdefghij_", min_size=1, max_size=6)

_KINDS: dict[str, Any] = {
    "bool": (st.booleans(), "bool"),
    "int32": (st.integers(-(2**31), 2**31 - 1), "int32"),
    "int64": (st.integers(-(2**63), 2**63 - 1), "int64"),
    "float32": (st.floats(width=32, allow_nan=False, allow_infinity=False), "float32"),
    "float64": (st.floats(allow_nan=False), "float64"),
    "str": (st.text(max_size=5), None),
    "bytes": (st.binary(max_size=5), object),
    "datetime": (
        st.datetimes(
            min_value=pd.Timestamp("1900-01-01").to_pydatetime(),
            max_value=pd.Timestamp("2200-01-01").to_pydatetime(),
        ),
        "datetime64[ns]",
    ),
}


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(ROWS)
    names = draw(st.lists(NAMES, min_size=1, max_size=5, unique=True))
    cols: dict[str, pd.Series] = {}
    for name in names:
        values, dtype = _KINDS[draw(st.sampled_from(sorted(_KINDS)))]
        data = draw(st.lists(values, min_size=n, max_size=n))
        cols[name] = pd.Series(data, dtype=dtype)
    return pd.DataFrame(cols)


@settings(max_examples=60, deadline=None)
@given(frames(), st.randoms())
def test_a_frame_satisfies_its_own_inferred_schema_unchanged(df: pd.DataFrame, rnd: Any) -> None:
    sig = infer_signature(df)
    assert sig.inputs is not None
    assert Schema.from_json(sig.inputs.to_json()) == sig.inputs
    out = enforce_schema(df, sig.inputs)
    pd.testing.assert_frame_equal(out, df, check_dtype=False)
    # column order and extra columns never matter
    order = list(df.columns)
    rnd.shuffle(order)
    noisy = df[order].assign(**{"zz_extra_col": 0})
    pd.testing.assert_frame_equal(enforce_schema(noisy, sig.inputs), out)


@settings(max_examples=60, deadline=None)
@given(frames())
@example(
    pd.DataFrame(
        {"t": pd.to_datetime(["2000-01-01", "2000-01-01T00:00:00.000001"], format="ISO8601")}
    )
)
def test_input_example_round_trips_through_json(df: pd.DataFrame) -> None:
    sig = infer_signature(df)
    with tempfile.TemporaryDirectory() as tmp:
        info = save_input_example(df, Path(tmp))
        back = load_input_example(Path(tmp), info, sig.inputs)
    assert sig.inputs is not None
    for col in df.columns:
        got, want = back[col].tolist(), df[col].tolist()
        if df[col].dtype.kind == "f":
            # JSON keeps a double's repr exactly; float32 round-trips through its double value
            np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
        else:
            assert got == want, col


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=8))
@example([-(2**63)])  # |min int64| does not fit in int64
def test_int_to_double_is_exact_or_refused(values: list[int]) -> None:
    schema = Schema([ColSpec(DataType.double, "x")])
    data = pd.DataFrame({"x": np.array(values, dtype=np.int64)})
    if max(abs(v) for v in values) <= 2**53:
        out = enforce_schema(data, schema)["x"]
        assert out.dtype == np.float64
        assert [int(v) for v in out] == values
    else:
        with pytest.raises(ModelSchemaError) as info:
            enforce_schema(data, schema)
        assert info.value.column == "x"


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(["int8", "int16", "int32", "int64", "float32", "float64", "bool"]),
    st.sampled_from(list(DataType)),
)
def test_numeric_enforcement_never_changes_values(src: str, target: DataType) -> None:
    data = pd.DataFrame({"x": np.array([0, 1, 1], dtype=src)})
    try:
        out = enforce_schema(data, Schema([ColSpec(target, "x")]))
    except ModelSchemaError as e:
        assert e.column == "x"
        return
    assert out["x"].tolist() == data["x"].tolist()


@st.composite
def schemas(draw: st.DrawFn) -> Schema:
    named = draw(st.booleans())
    names = draw(st.lists(NAMES, min_size=1, max_size=5, unique=True))
    if draw(st.booleans()):
        dims = st.lists(st.integers(-1, 8).filter(lambda d: d != 0), min_size=1, max_size=3)
        return Schema(
            TensorSpec(
                np.dtype(draw(st.sampled_from(["float32", "float64", "int64", "bool"]))),
                tuple(draw(dims)),
                n if named else None,
            )
            for n in (names if named else names[:1])
        )
    return Schema(
        ColSpec(draw(st.sampled_from(list(DataType))), n if named else None, draw(st.booleans()))
        for n in names
    )


@given(schemas())
def test_schema_json_round_trip(schema: Schema) -> None:
    assert Schema.from_json(schema.to_json()) == schema
