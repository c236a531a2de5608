"""Result types from output signatures, and predictions shaped to them (no JVM needed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import types as T
from runlake.errors import InvalidArgument
from runlake.models import ColSpec, DataType, Schema, TensorSpec
from runlake.spark.types import parse_result_type, result_type_for, shape_output


def test_result_types_follow_the_output_signature() -> None:
    assert result_type_for(None) == T.DoubleType()
    assert result_type_for(Schema([ColSpec(DataType.long)])) == T.LongType()
    assert result_type_for(Schema([ColSpec(DataType.string, "label")])) == T.StringType()
    multi = Schema([ColSpec(DataType.string, "label"), ColSpec(DataType.double, "score")])
    assert result_type_for(multi) == T.StructType(
        [T.StructField("label", T.StringType()), T.StructField("score", T.DoubleType())]
    )
    tensor = Schema([TensorSpec(np.dtype("float32"), (-1, 3))])
    assert result_type_for(tensor) == T.ArrayType(T.FloatType())


def test_nested_outputs_need_an_explicit_result_type() -> None:
    nested = Schema([ColSpec({"type": "array", "items": {"type": "double"}}, "v")])
    with pytest.raises(InvalidArgument, match=r"^result_type: no Spark type"):
        result_type_for(nested)
    with pytest.raises(InvalidArgument, match=r"^result_type: must be a pyspark DataType"):
        parse_result_type(3)
    assert parse_result_type(T.LongType()) == T.LongType()


def test_scalar_predictions_are_cast_to_the_result_type() -> None:
    out = shape_output(np.array([1, 2, 3]), T.DoubleType())
    assert isinstance(out, pd.Series) and out.dtype == np.float64 and out.tolist() == [1, 2, 3]
    col = shape_output(np.array([[0.5], [1.5]]), T.FloatType())
    assert col.dtype == np.float32 and col.tolist() == [0.5, 1.5]
    labels = shape_output(np.array([0, 1]), T.StringType())
    assert labels.tolist() == ["0", "1"]
    frame = shape_output(pd.DataFrame({"p": [0.1, 0.2]}, index=[7, 9]), T.DoubleType())
    assert frame.tolist() == [0.1, 0.2] and list(frame.index) == [0, 1]


def test_struct_results_by_name_then_by_position() -> None:
    t = T.StructType(
        [T.StructField("label", T.StringType()), T.StructField("score", T.DoubleType())]
    )
    by_name = shape_output(pd.DataFrame({"score": [0.9, 0.1], "label": ["a", "b"]}), t)
    assert isinstance(by_name, pd.DataFrame) and list(by_name.columns) == ["label", "score"]
    assert by_name["label"].tolist() == ["a", "b"] and by_name["score"].tolist() == [0.9, 0.1]
    positional = shape_output(pd.DataFrame({0: ["x"], 1: [2]}), t)
    assert positional.iloc[0].tolist() == ["x", 2.0]
    from_array = shape_output(np.array([[1.0, 2.0]]), T.StructType(
        [T.StructField("a", T.DoubleType()), T.StructField("b", T.DoubleType())]))  # fmt: skip
    assert from_array.iloc[0].tolist() == [1.0, 2.0]


def test_shapes_that_do_not_fit_are_clear_errors() -> None:
    t = T.StructType([T.StructField("a", T.DoubleType()), T.StructField("b", T.DoubleType())])
    with pytest.raises(InvalidArgument, match=r"returned columns \['x'\]"):
        shape_output(pd.DataFrame({"x": [1.0]}), t)
    with pytest.raises(InvalidArgument, match=r"returned shape \(2, 3\)"):
        shape_output(np.zeros((2, 3)), t)
    with pytest.raises(InvalidArgument, match="pass a struct result_type"):
        shape_output(pd.DataFrame({"a": [1.0], "b": [2.0]}), T.DoubleType())
    with pytest.raises(InvalidArgument, match=r"returned shape \(2, 2\) for a double"):
        shape_output(np.zeros((2, 2)), T.DoubleType())


def test_array_results_from_2d_predictions() -> None:
    out = shape_output(np.array([[1.0, 2.0], [3.0, 4.0]]), T.ArrayType(T.DoubleType()))
    assert [list(v) for v in out] == [[1.0, 2.0], [3.0, 4.0]]
