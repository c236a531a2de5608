"""Schemas and signatures: MLflow's JSON, and inference per input type."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
from runlake.errors import InvalidArgument
from runlake.models import (
    ColSpec,
    DataType,
    ModelFormatError,
    ModelSignature,
    ParamSchema,
    ParamSpec,
    Schema,
    TensorSpec,
    infer_signature,
)

# Strings exactly as MLflow 3.17 writes them in MLmodel.
MLFLOW_COLS = (
    '[{"type": "double", "name": "a", "required": true}, '
    '{"type": "long", "name": "b", "required": false}]'
)
MLFLOW_TENSOR = '[{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 4]}}]'
MLFLOW_PARAMS = (
    '[{"name": "temperature", "default": 0.5, "shape": null, "type": "double"}, '
    '{"name": "l", "default": [1, 2], "shape": [-1], "type": "long"}]'
)


def test_mlflow_column_json_round_trips_byte_for_byte() -> None:
    schema = Schema.from_json(MLFLOW_COLS)
    assert schema.inputs == [
        ColSpec(DataType.double, "a"),
        ColSpec(DataType.long, "b", required=False),
    ]
    assert schema.to_json() == MLFLOW_COLS


def test_mlflow_tensor_and_param_json_round_trip() -> None:
    tensors = Schema.from_json(MLFLOW_TENSOR)
    assert tensors.inputs == [TensorSpec(np.dtype("float32"), (-1, 4))]
    assert tensors.to_json() == MLFLOW_TENSOR
    params = ParamSchema.from_json(MLFLOW_PARAMS)
    assert params.params[1] == ParamSpec("l", DataType.long, [1, 2], (-1,))
    assert params.to_json() == MLFLOW_PARAMS


def test_nested_mlflow_types_are_kept_as_read() -> None:
    text = '[{"type": "array", "items": {"type": "long"}, "name": "a", "required": true}]'
    schema = Schema.from_json(text)
    assert schema.to_json() == text


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[{"type": "decimal", "name": "a"}]', "unknown column type"),
        ("[]", "at least one"),
        ('[{"type": "long", "name": "a"}, {"type": "long"}]', "all named"),
        ('[{"type": "long", "name": "a"}, {"type": "long", "name": "a"}]', "duplicate"),
        ("{", "not valid JSON"),
    ],
)
def test_bad_schema_json_is_a_format_error(text: str, needle: str) -> None:
    with pytest.raises(ModelFormatError, match=needle):
        Schema.from_json(text)


def test_signature_dict_matches_mlmodel_block() -> None:
    sig = ModelSignature(Schema.from_json(MLFLOW_COLS), Schema.from_json(MLFLOW_TENSOR))
    assert sig.to_dict() == {"inputs": MLFLOW_COLS, "outputs": MLFLOW_TENSOR, "params": None}
    assert ModelSignature.from_dict(sig.to_dict()) == sig


def test_dataframe_inference_uses_mlflow_type_names() -> None:
    df = pd.DataFrame(
        {
            "bo": [True, False],
            "i32": np.array([1, 2], dtype=np.int32),
            "i64": [1, 2],
            "f32": np.array([1.0, 2.0], dtype=np.float32),
            "f64": [1.5, 2.5],
            "s": ["x", "y"],
            "by": [b"x", b"y"],
            "t": pd.to_datetime(["2020-01-01", "2020-01-02"]),
            "gap": [1, None],
            "obj_s": pd.Series(["p", None], dtype=object),
        }
    )
    cols = infer_signature(df).inputs
    assert cols is not None
    assert json.loads(cols.to_json()) == [
        {"type": "boolean", "name": "bo", "required": True},
        {"type": "integer", "name": "i32", "required": True},
        {"type": "long", "name": "i64", "required": True},
        {"type": "float", "name": "f32", "required": True},
        {"type": "double", "name": "f64", "required": True},
        {"type": "string", "name": "s", "required": True},
        {"type": "binary", "name": "by", "required": True},
        {"type": "datetime", "name": "t", "required": True},
        {"type": "double", "name": "gap", "required": False},
        {"type": "string", "name": "obj_s", "required": False},
    ]


def test_dict_of_columns_infers_like_the_dataframe() -> None:
    as_dict = infer_signature({"a": [1.0, 2.0], "b": ["x", "y"]})
    as_frame = infer_signature(pd.DataFrame({"a": [1.0, 2.0], "b": ["x", "y"]}))
    assert as_dict == as_frame
    one_row = infer_signature({"a": 1, "b": "x"}).inputs
    assert one_row is not None and [str(c) for c in one_row] == ["'a': long", "'b': string"]


def test_numpy_inputs_are_tensors_with_a_free_batch_dimension() -> None:
    sig = infer_signature(np.zeros((3, 4), dtype=np.float32), np.zeros(3))
    assert sig.to_dict() == {
        "inputs": MLFLOW_TENSOR,
        "outputs": '[{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1]}}]',
        "params": None,
    }
    named = infer_signature({"x": np.zeros((2, 3)), "y": np.arange(2)}).inputs
    assert named is not None
    assert named.inputs == [
        TensorSpec(np.dtype("float64"), (-1, 3), "x"),
        TensorSpec(np.dtype("int64"), (-1,), "y"),
    ]


def test_series_list_and_params_inference() -> None:
    sig = infer_signature(
        [{"a": 1, "b": "x"}],
        pd.Series([0.5], name="score"),
        params={"k": 3, "t": 0.1, "names": ["a"], "when": dt.datetime(2024, 1, 1)},
    )
    assert sig.inputs is not None and sig.inputs.input_names() == ["a", "b"]
    assert sig.outputs is not None and sig.outputs.inputs == [ColSpec(DataType.double, "score")]
    assert sig.params is not None
    assert [(p.name, p.type, p.shape) for p in sig.params] == [
        ("k", DataType.long, None),
        ("t", DataType.double, None),
        ("names", DataType.string, (-1,)),
        ("when", DataType.datetime, None),
    ]
    assert json.loads(sig.params.to_json())[3]["default"] == "2024-01-01T00:00:00"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (pd.DataFrame({"m": pd.Series([1, "x"], dtype=object)}), "m"),
        (pd.DataFrame({"n": pd.Series([None, None], dtype=object)}), "n"),
        (pd.DataFrame({"z": pd.to_datetime(["2020-01-01"]).tz_localize("UTC")}), "z"),
        (pd.DataFrame({"c": pd.Series([1 + 2j])}), "c"),
    ],
)
def test_uninferable_columns_are_named(data: pd.DataFrame, field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        infer_signature(data)
    assert info.value.field == field


def test_unsupported_example_type() -> None:
    with pytest.raises(InvalidArgument, match="cannot infer a schema from object"):
        infer_signature(object())
