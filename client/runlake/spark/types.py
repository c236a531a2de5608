"""Spark result types from a model's output signature, and predictions shaped to fit them.

The mapping follows the MLflow types: boolean, integer, long, float, double, string,
binary and datetime map to the Spark type of the same name (datetime → timestamp); a
tensor output is an array of its element type. An output schema with more than one
column is a struct with one field per column, so a multi-output model gives one struct
column (``prediction.label``, ``prediction.score``). No output signature: double, as
MLflow's ``spark_udf`` defaults.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from runlake.errors import InvalidArgument
from runlake.models.schema import ColSpec, DataType, Schema, TensorSpec

if TYPE_CHECKING:
    from pyspark.sql import types as T

__all__ = ["parse_result_type", "result_type_for", "same_columns", "shape_output"]


def _scalar(t: DataType) -> T.DataType:
    from pyspark.sql import types as T

    return {
        DataType.boolean: T.BooleanType(),
        DataType.integer: T.IntegerType(),
        DataType.long: T.LongType(),
        DataType.float: T.FloatType(),
        DataType.double: T.DoubleType(),
        DataType.string: T.StringType(),
        DataType.binary: T.BinaryType(),
        DataType.datetime: T.TimestampType(),
    }[t]


def _tensor(spec: TensorSpec) -> T.DataType:
    from pyspark.sql import types as T

    kind = spec.dtype.kind
    elem: T.DataType
    if kind == "b":
        elem = T.BooleanType()
    elif kind in "iu":
        elem = T.LongType() if spec.dtype.itemsize >= 4 else T.IntegerType()
    elif kind == "f":
        elem = T.FloatType() if spec.dtype.itemsize == 4 else T.DoubleType()
    elif kind in "OUS":
        elem = T.StringType()
    else:
        raise InvalidArgument(f"no Spark type for tensor dtype {spec.dtype}", field="result_type")
    return elem if len(spec.shape) <= 1 else T.ArrayType(elem)


def _spec_type(spec: ColSpec | TensorSpec) -> T.DataType:
    if isinstance(spec, TensorSpec):
        return _tensor(spec)
    if not isinstance(spec.type, DataType):
        raise InvalidArgument(
            f"no Spark type for the nested output {spec.type!r}; pass result_type",
            field="result_type",
        )
    return _scalar(spec.type)


def result_type_for(outputs: Schema | None) -> T.DataType:
    """The Spark type of the ``prediction`` column for a model's output schema."""
    from pyspark.sql import types as T

    if outputs is None:
        return T.DoubleType()
    specs = list(outputs)
    if len(specs) == 1:
        return _spec_type(specs[0])
    fields = [
        T.StructField(s.name if s.name is not None else f"_{i}", _spec_type(s), True)
        for i, s in enumerate(specs)
    ]
    return T.StructType(fields)


def parse_result_type(result_type: Any) -> T.DataType:
    """A Spark DataType, or a DDL string (``"double"``, ``"struct<a: int, b: string>"``)."""
    from pyspark.sql import types as T

    if isinstance(result_type, T.DataType):
        return result_type
    if isinstance(result_type, str):
        try:
            return T._parse_datatype_string(result_type)
        except Exception as exc:
            raise InvalidArgument(
                f"{result_type!r} is not a Spark type: {str(exc).splitlines()[0]}",
                field="result_type",
            ) from None
    raise InvalidArgument(
        f"must be a pyspark DataType or a DDL string, got {result_type!r}", field="result_type"
    )


_NUMPY = {
    "boolean": "bool",
    "int": "int32",
    "bigint": "int64",
    "smallint": "int16",
    "tinyint": "int8",
    "float": "float32",
    "double": "float64",
}


def _column(values: Any, t: T.DataType) -> pd.Series:
    """One output column as a Series Spark's Arrow conversion accepts for type ``t``."""
    from pyspark.sql import types as T

    if isinstance(t, T.ArrayType):
        arr = np.asarray(values)
        return pd.Series(list(arr) if arr.ndim > 1 else [np.atleast_1d(v) for v in arr])
    if isinstance(values, pd.Series):
        s = values
    else:
        arr = np.asarray(values)
        if arr.ndim == 2 and arr.shape[1] == 1:
            arr = arr[:, 0]
        if arr.ndim != 1:
            raise InvalidArgument(
                f"the model returned shape {arr.shape} for a {t.simpleString()} result",
                field="result_type",
            )
        s = pd.Series(arr)
    s = s.reset_index(drop=True)
    dtype = _NUMPY.get(t.simpleString())
    if dtype is not None and s.dtype != dtype:
        s = s.astype(np.dtype(dtype))
    elif (
        isinstance(t, T.StringType)
        and s.dtype.kind != "O"
        and not isinstance(s.dtype, pd.StringDtype)
    ):
        s = s.map(str)
    return s


def shape_output(pred: Any, t: T.DataType) -> pd.Series | pd.DataFrame:
    """Predictions (ndarray, Series, DataFrame, list, dict of arrays) shaped for ``t``."""
    from pyspark.sql import types as T

    if isinstance(t, T.StructType):
        names = [f.name for f in t.fields]
        if isinstance(pred, dict):
            pred = pd.DataFrame(pred)
        cols: list[Any]
        if isinstance(pred, pd.DataFrame):
            if all(n in pred.columns for n in names):
                cols = [pred[n] for n in names]
            elif pred.shape[1] == len(names):
                cols = [pred.iloc[:, i] for i in range(len(names))]
            else:
                raise InvalidArgument(
                    f"the model returned columns {list(pred.columns)}, the result type has {names}",
                    field="result_type",
                )
        else:
            arr = np.asarray(pred)
            if arr.ndim != 2 or arr.shape[1] != len(names):
                raise InvalidArgument(
                    f"the model returned shape {arr.shape}, the result type has {len(names)} "
                    "fields",
                    field="result_type",
                )
            cols = [arr[:, i] for i in range(len(names))]
        return pd.DataFrame(
            {f.name: _column(c, f.dataType) for f, c in zip(t.fields, cols, strict=True)}
        )
    if isinstance(pred, pd.DataFrame):
        if pred.shape[1] != 1 and not isinstance(t, T.ArrayType):
            raise InvalidArgument(
                f"the model returned {pred.shape[1]} columns for a {t.simpleString()} result; "
                "pass a struct result_type",
                field="result_type",
            )
        pred = pred.to_numpy() if isinstance(t, T.ArrayType) else pred.iloc[:, 0]
    return _column(pred, t)


def same_columns(theirs: T.StructType, ours: T.StructType) -> str:
    """How two schemas' columns differ by name and type (nullability aside); "" if not."""
    a = {f.name: f.dataType.simpleString() for f in theirs.fields}
    b = {f.name: f.dataType.simpleString() for f in ours.fields}
    diff = [f"{n}: {a.get(n, 'missing')} vs {b.get(n, 'missing')}"
            for n in sorted(set(a) | set(b)) if a.get(n) != b.get(n)]  # fmt: skip
    return "; ".join(diff)
