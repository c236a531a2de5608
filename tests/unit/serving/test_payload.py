"""Payload parsing: every input format of MLflow's scoring protocol, and each bad input class."""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from runlake.models import ColSpec, DataType, Schema, TensorSpec
from runlake.serving.errors import ScoringError
from runlake.serving.payload import (
    Parsed,
    Table,
    narrow_frame,
    parse_content_type,
    parse_request,
)

JSON = "application/json"
COLS = Schema([ColSpec("double", "a"), ColSpec("long", "b"), ColSpec("string", "c")])
TENSOR = Schema([TensorSpec(np.dtype("float32"), (-1, 3))])
NAMED_TENSORS = Schema(
    [TensorSpec(np.dtype("float32"), (-1, 2), "x"), TensorSpec(np.dtype("int32"), (-1,), "y")]
)


def parse(doc: Any, schema: Schema | None = COLS, content_type: str = JSON) -> Parsed:
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return parse_request(body, content_type, schema)


def frame_of(parsed: Parsed) -> pd.DataFrame:
    data = parsed.data
    return data.frame() if isinstance(data, Table) else data


def rejected(doc: Any, schema: Schema | None = COLS, content_type: str = JSON) -> ScoringError:
    with pytest.raises(ScoringError) as info:
        parse(doc, schema, content_type)
    return info.value


EXPECTED = pd.DataFrame({"a": [1.5, 2.5], "b": [1, 2], "c": ["x", "y"]})


# -- the four JSON formats -------------------------------------------------------------------


def test_dataframe_split_is_a_table_of_rows() -> None:
    p = parse(
        {"dataframe_split": {"columns": ["a", "b", "c"], "data": [[1.5, 1, "x"], [2.5, 2, "y"]]}}
    )
    assert isinstance(p.data, Table)
    assert p.data.columns == ("a", "b", "c")
    assert p.rows == 2
    pd.testing.assert_frame_equal(frame_of(p), EXPECTED)
    assert p.params is None


def test_dataframe_split_with_index_goes_through_pandas() -> None:
    p = parse({"dataframe_split": {"columns": ["a"], "data": [[1.0], [2.0]], "index": [7, 9]}})
    assert isinstance(p.data, pd.DataFrame)
    assert list(p.data.index) == [7, 9]


def test_dataframe_split_without_columns() -> None:
    p = parse({"dataframe_split": {"data": [[1, 2], [3, 4]]}})
    assert isinstance(p.data, pd.DataFrame)
    assert p.data.shape == (2, 2)


def test_dataframe_split_one_column_of_bare_values() -> None:
    p = parse({"dataframe_split": {"columns": ["a"], "data": [1.0, 2.0]}})
    assert list(frame_of(p)["a"]) == [1.0, 2.0]


def test_dataframe_records() -> None:
    p = parse({"dataframe_records": [{"a": 1.5, "b": 1, "c": "x"}, {"a": 2.5, "b": 2, "c": "y"}]})
    assert isinstance(p.data, Table)
    pd.testing.assert_frame_equal(frame_of(p), EXPECTED)


def test_dataframe_records_with_differing_keys_are_aligned_by_pandas() -> None:
    p = parse({"dataframe_records": [{"a": 1.0, "b": 1}, {"b": 2, "a": 2.0, "c": "z"}]})
    assert isinstance(p.data, pd.DataFrame)
    assert list(p.data.columns) == ["a", "b", "c"]
    assert p.data["c"].isna().tolist() == [True, False]


def test_instances_records_are_a_table() -> None:
    p = parse({"instances": [{"a": 1.5, "b": 1, "c": "x"}, {"a": 2.5, "b": 2, "c": "y"}]})
    pd.testing.assert_frame_equal(frame_of(p), EXPECTED)


def test_inputs_columns_are_a_table() -> None:
    p = parse({"inputs": {"a": [1.5, 2.5], "b": [1, 2], "c": ["x", "y"]}})
    assert isinstance(p.data, Table)
    pd.testing.assert_frame_equal(frame_of(p), EXPECTED)


def test_inputs_one_row_of_scalars_is_left_to_enforcement() -> None:
    p = parse({"inputs": {"a": 1.5, "b": 1, "c": "x"}})
    assert p.data == {"a": 1.5, "b": 1, "c": "x"}


def test_inputs_list_for_a_one_column_signature() -> None:
    p = parse({"inputs": [1.0, 2.0, 3.0]}, Schema([ColSpec("double", "v")]))
    assert list(frame_of(p)["v"]) == [1.0, 2.0, 3.0]


def test_inputs_tensor_takes_the_spec_dtype() -> None:
    p = parse({"inputs": [[1.0, 2.0, 3.0], [4.0, 5.0, 6.5]]}, TENSOR)
    assert isinstance(p.data, np.ndarray)
    assert p.data.dtype == np.float32
    assert p.data.shape == (2, 3)
    assert p.rows is None  # tensors are never merged


def test_instances_of_ints_for_a_float_tensor_when_exact() -> None:
    p = parse({"instances": [[1, 2, 3]]}, TENSOR)
    assert p.data.dtype == np.float32
    big = parse({"instances": [[2**30 + 1, 2, 3]]}, TENSOR)
    assert big.data.dtype == np.int64  # left for enforcement to refuse by name


def test_named_tensors() -> None:
    p = parse({"inputs": {"x": [[1.0, 2.0]], "y": [3]}}, NAMED_TENSORS)
    assert p.data["x"].dtype == np.float32
    assert p.data["y"].dtype == np.int32
    records = parse(
        {"instances": [{"x": [1.0, 2.0], "y": 3}, {"x": [3.0, 4.0], "y": 4}]}, NAMED_TENSORS
    )
    assert records.data["x"].shape == (2, 2)
    assert records.data["y"].tolist() == [3, 4]


def test_inputs_without_signature_stays_arrays() -> None:
    p = parse({"inputs": {"a": [1, 2]}}, None)
    assert isinstance(p.data["a"], np.ndarray)
    q = parse({"inputs": [[1, 2], [3, 4]]}, None)
    assert isinstance(q.data, np.ndarray) and q.data.shape == (2, 2)


def test_params_are_passed_along() -> None:
    p = parse({"dataframe_split": {"columns": ["a"], "data": [[1.0]]}, "params": {"k": 3}})
    assert p.params == {"k": 3}


def test_nan_and_infinity_from_python_clients() -> None:
    body = b'{"dataframe_split": {"columns": ["a"], "data": [[NaN], [Infinity]]}}'
    p = parse(body)
    values = frame_of(p)["a"]
    assert np.isnan(values[0]) and values[1] == np.inf


def test_ints_past_int64_are_never_merged() -> None:
    # pandas makes them uint64 or objects: merged with small ints they would change dtype
    p = parse({"dataframe_split": {"columns": ["b"], "data": [[2**64 - 1]]}})
    assert isinstance(p.data, Table) and p.data.key is None
    q = parse({"dataframe_split": {"columns": ["b"], "data": [[2**63 - 1]]}})
    assert q.data.key is not None


def test_nested_cells_are_never_merged() -> None:
    p = parse({"dataframe_split": {"columns": ["a"], "data": [[[1, 2]]]}})
    assert isinstance(p.data, Table) and p.data.key is None


def test_merge_key_is_the_type_set_per_column() -> None:
    one = parse({"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 1]]}}).data
    two = parse({"dataframe_records": [{"a": 2.0, "b": 5}, {"a": 3.0, "b": 6}]}).data
    ints = parse({"dataframe_split": {"columns": ["a", "b"], "data": [[1, 1]]}}).data
    assert one.key == two.key
    assert one.key != ints.key


# -- CSV and Parquet ---------------------------------------------------------------------------


def test_csv_keeps_string_columns_strings() -> None:
    body = b"a,b,c\n1.5,1,007\n2.5,2,42\n"
    p = parse_request(body, "text/csv", COLS)
    assert isinstance(p.data, pd.DataFrame)
    assert p.data["c"].tolist() == ["007", "42"]
    assert p.data["a"].tolist() == [1.5, 2.5]


def test_csv_with_charset() -> None:
    p = parse_request(b"a\n1.0\n", "text/csv; charset=UTF-8", COLS)
    assert p.rows == 1


def test_parquet() -> None:
    buf = io.BytesIO()
    EXPECTED.to_parquet(buf)
    p = parse_request(buf.getvalue(), "application/vnd.apache.parquet", COLS)
    pd.testing.assert_frame_equal(p.data, EXPECTED, check_dtype=False)
    assert not p.textual


# -- bad input: one test per class ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "empty"),
        (b"\xff\xfe\x00", "not valid JSON"),
        (b"[1, 2]", "got a JSON array"),
        (b'"text"', "got a JSON string"),
        (b"{}", "no input"),
    ],
)
def test_malformed_bodies(body: bytes, needle: str) -> None:
    err = rejected(body)
    assert err.status == 400 and err.error_code == "BAD_REQUEST"
    assert needle in err.message


def test_unknown_format_key() -> None:
    err = rejected({"dataframe": {"data": [[1]]}})
    assert err.status == 400 and "unknown key 'dataframe'" in err.message
    assert err.field == "dataframe"


def test_unknown_key_beside_a_format_key() -> None:
    err = rejected({"inputs": [1.0], "extra": 1})
    assert "unknown key 'extra'" in err.message


def test_several_format_keys() -> None:
    err = rejected({"inputs": [1.0], "instances": [1.0]})
    assert err.status == 400 and "several inputs (instances, inputs)" in err.message.replace(
        "inputs, instances", "instances, inputs"
    )


def test_params_must_be_an_object() -> None:
    err = rejected({"inputs": [1.0], "params": [1, 2]})
    assert err.field == "params"


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ({"dataframe_split": [[1]]}, "must be an object"),
        ({"dataframe_split": {"columns": ["a"]}}, "no data"),
        ({"dataframe_split": {"data": [[1]], "shape": [1]}}, "unknown key(s) 'shape'"),
        ({"dataframe_split": {"columns": ["a", "b"], "data": [[1.0]]}}, "has 1 values for 2"),
        ({"dataframe_split": {"columns": ["a", "b"], "data": [1.0]}}, "must be a list of 2"),
        ({"dataframe_split": {"columns": "a", "data": [[1.0]]}}, "list of names"),
        ({"dataframe_split": {"columns": ["a", "a"], "data": [[1, 2]]}}, "appears twice"),
        ({"dataframe_split": {"columns": ["a"], "data": 5}}, "list of rows"),
        ({"dataframe_records": {"a": 1}}, "list of records"),
        ({"inputs": {"a": [1.0, 2.0], "b": [1]}}, "different lengths"),
    ],
)
def test_malformed_tables(doc: Any, needle: str) -> None:
    err = rejected(doc)
    assert err.status == 400, err
    assert needle in err.message, err.message


def test_ragged_tensor() -> None:
    err = rejected({"inputs": [[1.0, 2.0, 3.0], [1.0]]}, TENSOR)
    assert "not a rectangular array" in err.message


def test_bad_csv() -> None:
    err = rejected(b'a,b\n1,"unterminated\n', content_type="text/csv")
    assert err.status == 400 and "CSV" in err.message


def test_bad_parquet() -> None:
    err = rejected(b"PAR1 not really", content_type="application/vnd.apache.parquet")
    assert err.status == 400 and "Parquet" in err.message


# -- content types -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "application/x-www-form-urlencoded",
        "text/plain",
        "application/json; format=pandas-split",
        "application/json; charset=latin-1",
    ],
)
def test_unsupported_content_types_are_415(value: str | None) -> None:
    with pytest.raises(ScoringError) as info:
        parse_content_type(value)
    assert info.value.status == 415
    assert info.value.error_code == "BAD_REQUEST"


@pytest.mark.parametrize(
    ("value", "mime"),
    [
        ("application/json", JSON),
        ("Application/JSON; charset=utf-8", JSON),
        ('application/json; charset="UTF-8"', JSON),
        ("text/csv", "text/csv"),
        ("application/vnd.apache.parquet", "application/vnd.apache.parquet"),
    ],
)
def test_supported_content_types(value: str, mime: str) -> None:
    assert parse_content_type(value) == mime


# -- widths ------------------------------------------------------------------------------------


def test_narrow_frame_to_32_bit_columns() -> None:
    schema = Schema([ColSpec(DataType.float, "f"), ColSpec(DataType.integer, "i")])
    frame = pd.DataFrame({"f": [0.1, 2.0], "i": [1, 2], "other": [1.0, 2.0]})
    out = narrow_frame(frame, schema)
    assert out["f"].dtype == np.float32 and out["i"].dtype == np.int32
    assert out["other"].dtype == np.float64
    assert frame["f"].dtype == np.float64  # the input is not modified


def test_narrow_frame_leaves_ints_that_do_not_fit() -> None:
    schema = Schema([ColSpec(DataType.integer, "i")])
    out = narrow_frame(pd.DataFrame({"i": [1, 2**40]}), schema)
    assert out["i"].dtype == np.int64
