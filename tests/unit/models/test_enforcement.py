"""Schema enforcement at predict: each bad input class gets its own clear error."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
from runlake.errors import InvalidArgument
from runlake.models import (
    ColSpec,
    DataType,
    ModelSchemaError,
    ParamSchema,
    ParamSpec,
    Schema,
    TensorSpec,
    enforce_params,
    enforce_schema,
)

SCHEMA = Schema(
    [
        ColSpec(DataType.double, "a"),
        ColSpec(DataType.long, "b"),
        ColSpec(DataType.string, "s"),
        ColSpec(DataType.datetime, "t", required=False),
    ]
)


def frame(**cols: object) -> pd.DataFrame:
    base: dict[str, object] = {"a": [1.5, 2.5], "b": [1, 2], "s": ["x", "y"]}
    base.update(cols)
    return pd.DataFrame(base)


def test_missing_required_column_names_it() -> None:
    with pytest.raises(ModelSchemaError) as info:
        enforce_schema(frame().drop(columns=["b"]), SCHEMA)
    err = info.value
    assert err.column == "b" and err.field == "b"
    assert str(err).startswith("b: required input column is missing")
    assert isinstance(err, InvalidArgument)


def test_missing_optional_column_is_fine_and_extras_are_dropped_in_signature_order() -> None:
    data = frame(extra=[0, 0])[["extra", "s", "b", "a"]]
    out = enforce_schema(data, SCHEMA)
    assert list(out.columns) == ["a", "b", "s"]
    assert out["a"].tolist() == [1.5, 2.5]


@pytest.mark.parametrize(
    ("col", "values", "needle"),
    [
        ("a", ["1.0", "x"], "expected double"),
        ("b", [1.5, 2.0], "expected long, got float64"),
        ("s", [1, 2], "expected string, got int64"),
        ("a", [True, False], "expected double, got bool"),
        ("t", ["not a date", "2020-01-01"], "could not be parsed"),
        ("b", np.array([2**40, 1], dtype=np.uint64), "expected long, got uint64"),
    ],
)
def test_wrong_type_is_refused_naming_the_column(col: str, values: object, needle: str) -> None:
    with pytest.raises(ModelSchemaError, match=needle) as info:
        enforce_schema(frame(**{col: values}), SCHEMA)
    assert info.value.column == col


def test_float_with_gaps_into_long_hints_at_missing_values() -> None:
    with pytest.raises(ModelSchemaError, match="missing values"):
        enforce_schema(frame(b=[1.0, None]), SCHEMA)


def test_double_into_float_is_refused() -> None:
    schema = Schema([ColSpec(DataType.float, "f")])
    with pytest.raises(ModelSchemaError, match="expected float, got float64"):
        enforce_schema(pd.DataFrame({"f": [0.1]}), schema)


def test_compatible_types_are_converted_without_changing_values() -> None:
    data = pd.DataFrame(
        {
            "a": [1, 2**53],  # int64 -> double: exact
            "b": np.array([7, 8], dtype=np.int32),  # int32 -> long: widening
            "s": ["x", "y"],
            "t": ["2020-01-01", "2021-06-30T12:00:00"],  # strings -> datetime
        }
    )
    out = enforce_schema(data, SCHEMA)
    assert out["a"].dtype == np.float64 and out["a"].tolist() == [1.0, float(2**53)]
    assert out["b"].dtype == np.int64 and out["b"].tolist() == [7, 8]
    assert out["t"].dtype == np.dtype("datetime64[ns]")
    assert out["t"].iloc[1] == pd.Timestamp("2021-06-30 12:00:00")


def test_int_too_big_for_double_is_refused() -> None:
    with pytest.raises(ModelSchemaError, match="cannot hold exactly") as info:
        enforce_schema(frame(a=[2**53 + 1, 0]), SCHEMA)
    assert info.value.column == "a"


def test_other_widening_conversions() -> None:
    schema = Schema(
        [
            ColSpec(DataType.double, "f32"),
            ColSpec(DataType.datetime, "ms"),
            ColSpec(DataType.long, "nullable"),
            ColSpec(DataType.boolean, "bo"),
            ColSpec(DataType.binary, "by"),
        ]
    )
    data = pd.DataFrame(
        {
            "f32": np.array([0.5], dtype=np.float32),
            "ms": np.array(["2020-01-01"], dtype="datetime64[ms]"),
            "nullable": pd.array([3], dtype="Int64"),
            "bo": pd.Series([True], dtype=object),
            "by": [b"\x00"],
        }
    )
    out = enforce_schema(data, schema)
    assert [str(t) for t in out.dtypes] == [
        "float64",
        "datetime64[ns]",
        "int64",
        "bool",
        "object",
    ]


def test_dict_of_columns_and_records_are_tables() -> None:
    out = enforce_schema({"a": [1.0], "b": [2], "s": ["z"]}, SCHEMA)
    assert isinstance(out, pd.DataFrame) and out.shape == (1, 3)
    out = enforce_schema([{"a": 1.0, "b": 2, "s": "z"}], SCHEMA)
    assert out.shape == (1, 3)


def test_numpy_array_against_named_columns_says_what_to_pass() -> None:
    with pytest.raises(ModelSchemaError, match="pass a DataFrame"):
        enforce_schema(np.zeros((2, 3)), SCHEMA)


def test_positional_columns() -> None:
    schema = Schema([ColSpec(DataType.double), ColSpec(DataType.long)])
    out = enforce_schema(np.array([[1, 2], [3, 4]]), schema)
    assert out.dtypes.tolist() == [np.float64, np.int64]
    with pytest.raises(ModelSchemaError, match="2 positional columns, got 1"):
        enforce_schema(pd.DataFrame({"x": [1.0]}), schema)


def test_tensor_shape_and_dtype() -> None:
    schema = Schema([TensorSpec(np.dtype("float64"), (-1, 3))])
    ok = enforce_schema(np.ones((5, 3), dtype=np.int32), schema)
    assert ok.dtype == np.float64
    with pytest.raises(ModelSchemaError, match=r"shape \(5, 2\)"):
        enforce_schema(np.ones((5, 2)), schema)
    with pytest.raises(ModelSchemaError, match="cannot be converted"):
        enforce_schema(np.ones((5, 3), dtype=np.complex128), schema)
    frame_in = enforce_schema(pd.DataFrame(np.ones((2, 3))), schema)
    assert frame_in.shape == (2, 3)


def test_named_tensors() -> None:
    schema = Schema(
        [
            TensorSpec(np.dtype("float32"), (-1, 2), "x"),
            TensorSpec(np.dtype("int64"), (-1,), "y"),
        ]
    )
    out = enforce_schema({"x": np.ones((4, 2), np.float32), "y": np.arange(4)}, schema)
    assert set(out) == {"x", "y"}
    with pytest.raises(ModelSchemaError) as info:
        enforce_schema({"x": np.ones((4, 2), np.float32)}, schema)
    assert info.value.column == "y"
    with pytest.raises(ModelSchemaError) as info:
        enforce_schema({"x": np.ones((4, 2)), "y": np.arange(4)}, schema)
    assert info.value.column == "x"  # float64 -> float32 narrows


def test_params_defaults_conversion_and_errors() -> None:
    schema = ParamSchema(
        [
            ParamSpec("k", DataType.long, 3),
            ParamSpec("t", DataType.double, 0.5),
            ParamSpec("when", DataType.datetime, None),
            ParamSpec("tags", DataType.string, ["a"], (-1,)),
        ]
    )
    out = enforce_params({"t": 1, "when": "2024-01-02T00:00:00", "tags": ["x", "y"]}, schema)
    assert out == {"k": 3, "t": 1.0, "when": dt.datetime(2024, 1, 2), "tags": ["x", "y"]}
    with pytest.raises(ModelSchemaError, match="param expects long") as info:
        enforce_params({"k": "3"}, schema)
    assert info.value.column == "k"
    with pytest.warns(UserWarning, match="not in the model's signature"):
        enforce_params({"nope": 1}, schema)
    with pytest.warns(UserWarning, match="declares no params"):
        assert enforce_params({"k": 1}, None) is None
