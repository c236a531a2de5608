"""Model signatures: what a model takes and returns, inferred from an example.

Inference follows MLflow's rules so that a signature inferred by runlake equals the one
MLflow infers from the same pandas DataFrame or numpy array:

- DataFrame columns map by dtype: bool → boolean, int8/16/32 and uint8/16 → integer,
  int64 and uint32 → long, float32 → float, float64 → double, datetime64 → datetime,
  str → string, bytes → binary; a column with a missing value is optional (``required:
  false``) — in pandas an integer column with a gap arrives as float64, hence double.
- A numpy array is a tensor of its dtype whose first dimension is free (``-1``).
- A dict of numpy arrays is a set of named tensors.
- A dict of lists (or of scalars: one row) is a table, one column per key. Here runlake
  differs from MLflow, which reads lists in a dict as array-typed cells; "dict of columns"
  is what tabular models are fed, and the signature stays the same as for the DataFrame.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from runlake.errors import InvalidArgument
from runlake.models.schema import ColSpec, DataType, ParamSchema, ParamSpec, Schema, TensorSpec

__all__ = ["ModelSignature", "infer_signature"]


@dataclass
class ModelSignature:
    """Inputs, outputs (optional) and inference params (optional) of a model."""

    inputs: Schema | None = None
    outputs: Schema | None = None
    params: ParamSchema | None = None

    def to_dict(self) -> dict[str, str | None]:
        """The ``signature`` block of MLmodel: each part a JSON string, or null."""
        return {
            "inputs": self.inputs.to_json() if self.inputs is not None else None,
            "outputs": self.outputs.to_json() if self.outputs is not None else None,
            "params": self.params.to_json() if self.params is not None else None,
        }

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ModelSignature:
        """Read the ``signature`` block of an MLmodel file (runlake's or MLflow's)."""
        inputs, outputs, params = raw.get("inputs"), raw.get("outputs"), raw.get("params")
        return cls(
            inputs=Schema.from_json(inputs) if inputs else None,
            outputs=Schema.from_json(outputs) if outputs else None,
            params=ParamSchema.from_json(params) if params else None,
        )


def infer_signature(
    model_input: Any = None,
    model_output: Any = None,
    params: dict[str, Any] | None = None,
) -> ModelSignature:
    """A signature from example input, the model's output on it, and example params.

    Raises InvalidArgument naming the column whose type cannot be inferred (e.g. a column
    with mixed or unsupported values).
    """
    return ModelSignature(
        inputs=infer_schema(model_input) if model_input is not None else None,
        outputs=infer_schema(model_output) if model_output is not None else None,
        params=infer_param_schema(params) if params else None,
    )


def infer_schema(data: Any) -> Schema:
    """The schema of one example value (DataFrame, Series, dict, numpy array or list)."""
    if isinstance(data, pd.DataFrame):
        if data.shape[1] == 0:
            raise InvalidArgument("cannot infer a schema from a DataFrame without columns")
        names = [str(c) for c in data.columns]
        if len(set(names)) != len(names):
            raise InvalidArgument("column names must be unique to infer a schema")
        return Schema(_colspec(data[c], str(c)) for c in data.columns)
    if isinstance(data, pd.Series):
        return Schema([_colspec(data, None if data.name is None else str(data.name))])
    if isinstance(data, np.ndarray):
        return Schema([_tensorspec(data, None)])
    if isinstance(data, dict):
        if not data:
            raise InvalidArgument("cannot infer a schema from an empty dict")
        if all(isinstance(v, np.ndarray) for v in data.values()):
            return Schema(_tensorspec(v, str(k)) for k, v in data.items())
        return infer_schema(dict_to_frame(data))
    if isinstance(data, list):
        if data and all(isinstance(r, dict) for r in data):
            return infer_schema(pd.DataFrame(data))
        return infer_schema(pd.Series(data))
    if _is_scalar(data):
        return infer_schema(pd.Series([data]))
    raise InvalidArgument(
        f"cannot infer a schema from {type(data).__name__}; "
        "use a pandas DataFrame, a dict of columns or a numpy array"
    )


def dict_to_frame(data: dict[str, Any]) -> pd.DataFrame:
    """A dict of columns (lists, 1-D arrays) or of scalars (one row) as a DataFrame."""
    if all(_is_scalar(v) for v in data.values()):
        return pd.DataFrame({k: [v] for k, v in data.items()})
    for key, value in data.items():
        if isinstance(value, np.ndarray) and value.ndim != 1:
            raise InvalidArgument(
                "a column of a dict input must be one-dimensional, got shape "
                f"{value.shape}; pass a dict of numpy arrays only for tensor inputs",
                field=str(key),
            )
    try:
        return pd.DataFrame({str(k): v for k, v in data.items()})
    except ValueError as e:
        raise InvalidArgument(f"dict input is not a table of equal-length columns: {e}") from None


def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, str | bytes | bool | int | float | np.generic | dt.datetime)


def _tensorspec(arr: np.ndarray[Any, Any], name: str | None) -> TensorSpec:
    if arr.ndim == 0:
        raise InvalidArgument("cannot infer a tensor spec from a 0-d array", field=name)
    dtype = arr.dtype
    if dtype.kind in "US":  # fixed-width strings: any length may come at predict time
        dtype = np.dtype(object)
    return TensorSpec(dtype=dtype, shape=(-1, *arr.shape[1:]), name=name)


def _colspec(col: pd.Series, name: str | None) -> ColSpec:
    required = not bool(col.isna().any())
    return ColSpec(type=column_type(col, name), name=name, required=required)


_BY_KIND_SIZE: dict[tuple[str, int], DataType] = {
    ("b", 1): DataType.boolean,
    ("i", 1): DataType.integer,
    ("i", 2): DataType.integer,
    ("i", 4): DataType.integer,
    ("i", 8): DataType.long,
    ("u", 1): DataType.integer,
    ("u", 2): DataType.integer,
    ("u", 4): DataType.long,
    ("f", 4): DataType.float,
    ("f", 8): DataType.double,
}


def column_type(col: pd.Series, name: str | None) -> DataType:
    """The MLflow type of one pandas column (raises InvalidArgument naming it if none fits)."""
    dtype = col.dtype
    if isinstance(dtype, pd.StringDtype):
        return DataType.string
    if isinstance(dtype, pd.DatetimeTZDtype):
        raise InvalidArgument(
            "timezone-aware datetimes are not supported; convert to naive UTC", field=name
        )
    if isinstance(dtype, pd.api.extensions.ExtensionDtype) and not isinstance(dtype, np.dtype):
        numpy_dtype = getattr(dtype, "numpy_dtype", None)  # Int64, Float64, boolean
        if numpy_dtype is None:
            raise InvalidArgument(f"unsupported column dtype {dtype}", field=name)
        dtype = numpy_dtype
    if dtype.kind == "M":
        return DataType.datetime
    if dtype.kind == "O":
        return _object_type(col, name)
    if dtype.kind in "SU":
        return DataType.binary if dtype.kind == "S" else DataType.string
    found = _BY_KIND_SIZE.get((dtype.kind, dtype.itemsize))
    if found is None:
        raise InvalidArgument(f"unsupported column dtype {dtype}", field=name)
    return found


def _object_type(col: pd.Series, name: str | None) -> DataType:
    values = [v for v in col.tolist() if v is not None and not _is_nan(v)]
    if not values:
        raise InvalidArgument(
            "cannot infer the type of a column whose values are all missing", field=name
        )
    kinds = {_python_type(v) for v in values}
    if len(kinds) == 1:
        (kind,) = kinds
        if kind is not None:
            return kind
    if kinds == {DataType.long, DataType.double}:
        return DataType.double
    shown = sorted({type(v).__name__ for v in values})
    raise InvalidArgument(f"cannot infer one type from values of types {shown}", field=name)


def _is_nan(v: Any) -> bool:
    return isinstance(v, float) and v != v


def _python_type(v: Any) -> DataType | None:
    if isinstance(v, bool | np.bool_):
        return DataType.boolean
    if isinstance(v, int | np.integer):
        return DataType.long
    if isinstance(v, float | np.floating):
        return DataType.double
    if isinstance(v, str):
        return DataType.string
    if isinstance(v, bytes | bytearray):
        return DataType.binary
    if isinstance(v, dt.datetime | np.datetime64 | dt.date):
        return DataType.datetime
    return None


def infer_param_schema(params: dict[str, Any]) -> ParamSchema:
    """Param specs from example params: scalars, or lists of one scalar type (shape [-1])."""
    specs = []
    for name, value in params.items():
        if isinstance(value, list | np.ndarray):
            items = list(value)
            kinds = {_python_type(v) for v in items}
            if len(kinds) != 1 or None in kinds:
                raise InvalidArgument("a list param needs values of one scalar type", field=name)
            specs.append(ParamSpec(name, kinds.pop() or DataType.string, items, (-1,)))
            continue
        kind = _python_type(value)
        if kind is None:
            raise InvalidArgument(
                f"param of type {type(value).__name__} is not supported", field=name
            )
        specs.append(
            ParamSpec(name, kind, value.item() if isinstance(value, np.generic) else value)
        )
    return ParamSchema(specs)
