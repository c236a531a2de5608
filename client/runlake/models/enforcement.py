"""Make ``predict`` input match the model's signature, or say which column does not.

What happens to a table input (DataFrame, dict of columns, list of records):

- every required column must be present, else ModelSchemaError naming it; a missing optional
  column is left out;
- columns the signature does not name are dropped, and the rest come in the signature's order;
- a column whose dtype differs is converted when no value changes (MLflow's rules): int to a
  wider int, float32 to double, any datetime64 precision to nanoseconds, ISO 8601 strings or
  Python datetimes to datetime, and int to float/double. On that last one runlake is more lenient
  than MLflow, which converts int64 to double only for 0/1 values: runlake converts whenever
  every value is exactly representable (|v| <= 2**53 for double, 2**24 for float), since
  pandas makes every integer column int64 and the values are unchanged;
- anything else (float to int, double to float, str to number, bool to number) is refused
  with ModelSchemaError naming the column, the dtype found and the type expected.

A tensor input must have the spec's rank and fixed dimensions; its dtype must match or cast
safely (numpy's "safe" rule, e.g. int32 to float64), which again is a little more lenient than
MLflow's exact match, for the same reason.
"""

from __future__ import annotations

import datetime as dt
import warnings
from typing import Any

import numpy as np
import pandas as pd

from runlake.models.errors import ModelSchemaError
from runlake.models.schema import ColSpec, DataType, ParamSchema, ParamSpec, Schema, TensorSpec
from runlake.models.signature import dict_to_frame

__all__ = ["enforce_params", "enforce_schema"]

#: Largest integer magnitude a float type holds exactly (2 ** mantissa bits).
_EXACT_INT = {DataType.float: 2**24, DataType.double: 2**53}


def enforce_schema(data: Any, schema: Schema) -> Any:
    """``data`` converted to what ``schema`` describes (a DataFrame, an array or a dict)."""
    if schema.is_tensor_spec:
        return _enforce_tensors(data, schema)
    return _enforce_columns(_as_frame(data, schema), schema)


# -- tables ---------------------------------------------------------------------------------


def _as_frame(data: Any, schema: Schema) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, pd.Series):
        return data.to_frame(name=data.name if data.name is not None else _first_name(schema))
    if isinstance(data, dict):
        return dict_to_frame(data)
    if isinstance(data, list):
        if data and all(isinstance(r, dict) for r in data):
            return pd.DataFrame(data)
        data = np.asarray(data)
    if isinstance(data, np.ndarray):
        if schema.has_names and not (data.ndim == 1 and len(schema) == 1):
            raise ModelSchemaError(
                f"the model expects named columns {schema.input_names()}, got a numpy array "
                f"of shape {data.shape}; pass a DataFrame or a dict of columns"
            )
        frame = pd.DataFrame(data if data.ndim > 1 else {_first_name(schema) or 0: data})
        return frame
    raise ModelSchemaError(
        f"the model expects a table with columns {schema.input_names() or len(schema)}, "
        f"got {type(data).__name__}"
    )


def _first_name(schema: Schema) -> str | None:
    return schema.inputs[0].name


def _enforce_columns(frame: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    out: dict[Any, pd.Series] = {}
    if schema.has_names:
        present = {str(c): c for c in frame.columns}
        for spec in schema:
            assert isinstance(spec, ColSpec) and spec.name is not None
            if spec.name not in present:
                if spec.required:
                    raise ModelSchemaError(
                        "required input column is missing; the model's signature expects "
                        f"{schema.required_input_names()}",
                        column=spec.name,
                    )
                continue
            out[spec.name] = convert_column(spec.name, frame[present[spec.name]], spec.type)
    else:
        if frame.shape[1] < len(schema):
            raise ModelSchemaError(
                f"the model expects {len(schema)} positional columns, got {frame.shape[1]}"
            )
        for i, spec in enumerate(schema):
            assert isinstance(spec, ColSpec)
            col = frame.columns[i]
            out[col] = convert_column(str(col), frame.iloc[:, i], spec.type)
    return pd.DataFrame(out, index=frame.index)


def convert_column(name: str, values: pd.Series, t: DataType | dict[str, Any]) -> pd.Series:
    """One column converted to ``t`` without changing a value, else ModelSchemaError."""
    if not isinstance(t, DataType):  # MLflow's nested types: presence is all we check
        return values
    dtype = values.dtype
    if isinstance(dtype, pd.StringDtype):
        if t == DataType.string:
            return values
        if t != DataType.datetime:  # strings parse as datetimes, and as nothing else
            raise _mismatch(name, "strings", t, values)
        values = values.astype(object).where(values.notna(), None)
        dtype = values.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        raise ModelSchemaError(
            f"expected {t}; timezone-aware datetimes are not accepted, convert to naive UTC",
            column=name,
        )
    if not isinstance(dtype, np.dtype):  # nullable extension dtypes: Int64, Float64, boolean
        values = _from_extension(name, values, t)
        dtype = values.dtype
    assert isinstance(dtype, np.dtype)
    if dtype.kind == "O" and t not in (DataType.string, DataType.binary):
        inferred = values.infer_objects()  # e.g. Python ints in an object column -> int64
        if isinstance(inferred.dtype, np.dtype):  # (pandas 3 makes str columns StringDtype)
            values, dtype = inferred, inferred.dtype
    if t == DataType.string:
        return _objects_of(name, values, t, (str,))
    if t == DataType.binary:
        return values if dtype.kind == "S" else _objects_of(name, values, t, (bytes, bytearray))
    if t == DataType.datetime:
        return _to_datetime(name, values)
    if t == DataType.boolean:
        if dtype.kind == "b":
            return values
        if dtype.kind == "O":
            return _objects_of(name, values, t, (bool, np.bool_))
        raise _mismatch(name, str(dtype), t, values)
    return _to_number(name, values, t)


def _from_extension(name: str, values: pd.Series, t: DataType) -> pd.Series:
    numpy_dtype = getattr(values.dtype, "numpy_dtype", None)
    if numpy_dtype is None:
        return values.astype(object)
    if not values.isna().any():
        return values.astype(numpy_dtype)
    if t in (DataType.float, DataType.double) and numpy_dtype.kind in "iuf":
        return values.astype("float64")
    if t in (DataType.boolean, DataType.string, DataType.binary, DataType.datetime):
        return values.astype(object)
    raise ModelSchemaError(
        f"expected {t}, got {values.dtype} with missing values, which {t} cannot hold; "
        "declare the column as double (or optional) when it may have gaps",
        column=name,
    )


def _objects_of(name: str, values: pd.Series, t: DataType, kinds: tuple[type, ...]) -> pd.Series:
    if values.dtype.kind != "O":
        raise _mismatch(name, str(values.dtype), t, values)
    for v in values.tolist():
        if v is None or (isinstance(v, float) and v != v):
            continue
        if not isinstance(v, kinds):
            raise ModelSchemaError(
                f"expected {t}, got a value of type {type(v).__name__}: {v!r}", column=name
            )
    return values


def _to_datetime(name: str, values: pd.Series) -> pd.Series:
    kind = values.dtype.kind
    if kind == "M":
        return values.astype("datetime64[ns]")
    if kind == "O":
        sample = [v for v in values.tolist() if v is not None]
        if all(isinstance(v, str | dt.datetime | dt.date | np.datetime64) for v in sample):
            try:
                out = pd.to_datetime(values, errors="raise", format="ISO8601")
            except (ValueError, TypeError, OverflowError) as e:
                raise ModelSchemaError(
                    f"expected datetime, values could not be parsed: {e}", column=name
                ) from None
            if isinstance(out.dtype, pd.DatetimeTZDtype):
                raise ModelSchemaError(
                    "expected datetime; timezone-aware datetimes are not accepted", column=name
                )
            return out.astype("datetime64[ns]")
    raise _mismatch(name, str(values.dtype), DataType.datetime, values)


def _to_number(name: str, values: pd.Series, t: DataType) -> pd.Series:
    src = values.dtype
    assert isinstance(src, np.dtype)
    dst = t.to_numpy()
    if src == dst:
        return values
    if src.kind in "iu" and dst.kind == "i":
        wider = src.itemsize <= dst.itemsize if src.kind == "i" else src.itemsize < dst.itemsize
        if wider:
            return values.astype(dst)
    elif src.kind in "iu" and dst.kind == "f":
        limit = _EXACT_INT[t]
        if src.itemsize < dst.itemsize or len(values) == 0:
            return values.astype(dst)
        arr = values.to_numpy()
        biggest = max(abs(int(arr.min())), abs(int(arr.max())))  # Python ints: no overflow
        if biggest <= limit:
            return values.astype(dst)
        raise ModelSchemaError(
            f"expected {t}, got {src} with a value of magnitude {biggest} that {t} cannot "
            "hold exactly",
            column=name,
        )
    elif src.kind == "f" and dst.kind == "f" and src.itemsize <= dst.itemsize:
        return values.astype(dst)
    hint = ""
    if src.kind == "f" and dst.kind == "i" and values.hasnans:
        hint = (
            "; the column has missing values, which pandas stores as NaN in a float column: "
            "declare it as double in the signature, or fill the gaps"
        )
    raise _mismatch(name, str(src), t, values, hint)


def _mismatch(
    name: str, found: str, t: DataType, values: pd.Series, hint: str = ""
) -> ModelSchemaError:
    sample = next((v for v in values.tolist() if v is not None), None)
    shown = f" (e.g. {sample!r})" if sample is not None else ""
    return ModelSchemaError(
        f"expected {t}, got {found}{shown}, which cannot be converted without changing "
        f"values{hint}",
        column=name,
    )


# -- tensors --------------------------------------------------------------------------------


def _enforce_tensors(data: Any, schema: Schema) -> Any:
    specs = [s for s in schema if isinstance(s, TensorSpec)]
    if not schema.has_names:
        if len(specs) != 1:
            raise ModelSchemaError("a positional tensor schema must hold exactly one tensor")
        if isinstance(data, pd.DataFrame):
            data = data.to_numpy()
        elif isinstance(data, dict) and len(data) == 1:
            data = next(iter(data.values()))
        return _enforce_tensor(None, np.asarray(data), specs[0])
    if isinstance(data, pd.DataFrame):
        data = {str(c): _column_tensor(data[c]) for c in data.columns}
    if isinstance(data, np.ndarray) and len(specs) == 1:
        data = {specs[0].name: data}
    if not isinstance(data, dict):
        raise ModelSchemaError(
            f"the model expects named tensors {schema.input_names()}, "
            f"got {type(data).__name__}; pass a dict of numpy arrays"
        )
    out: dict[str, np.ndarray[Any, Any]] = {}
    for spec in specs:
        assert spec.name is not None
        if spec.name not in data:
            raise ModelSchemaError(
                f"required input tensor is missing; the model expects {schema.input_names()}",
                column=spec.name,
            )
        out[spec.name] = _enforce_tensor(spec.name, np.asarray(data[spec.name]), spec)
    return out


def _column_tensor(col: pd.Series) -> np.ndarray[Any, Any]:
    cells = col.tolist()
    if cells and all(isinstance(c, list | np.ndarray) for c in cells):
        return np.stack([np.asarray(c) for c in cells])
    return col.to_numpy()


def _enforce_tensor(
    name: str | None, arr: np.ndarray[Any, Any], spec: TensorSpec
) -> np.ndarray[Any, Any]:
    want = spec.shape
    if spec.dtype == np.dtype(object) and want == (-1,):
        return arr  # MLflow's "anything goes" ragged tensor
    if arr.ndim != len(want) or any(
        w not in (-1, a) for w, a in zip(want, arr.shape, strict=False)
    ):
        raise ModelSchemaError(
            f"tensor of shape {arr.shape} does not match the expected shape {want} "
            "(-1 is any size)",
            column=name,
        )
    if arr.dtype == spec.dtype:
        return arr
    if spec.dtype.kind == "O" and arr.dtype.kind in "US":
        return arr.astype(object)
    if np.can_cast(arr.dtype, spec.dtype, casting="safe"):
        return arr.astype(spec.dtype)
    raise ModelSchemaError(
        f"tensor dtype {arr.dtype} cannot be converted to the expected {spec.dtype} without "
        "changing values",
        column=name,
    )


# -- params ---------------------------------------------------------------------------------


def enforce_params(
    params: dict[str, Any] | None, schema: ParamSchema | None
) -> dict[str, Any] | None:
    """Params with defaults filled in and values converted to their declared types.

    Params the schema does not declare are dropped with a warning, as MLflow does; a model
    without a param schema gets none.
    """
    if schema is None:
        if params:
            warnings.warn(
                f"params {sorted(params)} ignored: the model's signature declares no params",
                UserWarning,
                stacklevel=3,
            )
        return None
    given = dict(params or {})
    out: dict[str, Any] = {}
    for spec in schema:
        if spec.name in given:
            out[spec.name] = _convert_param(spec, given.pop(spec.name))
        else:
            out[spec.name] = spec.default
    if given:
        warnings.warn(
            f"params {sorted(given)} ignored: not in the model's signature",
            UserWarning,
            stacklevel=3,
        )
    return out


def _convert_param(spec: ParamSpec, value: Any) -> Any:
    if spec.shape is not None:
        if not isinstance(value, list | tuple | np.ndarray):
            raise ModelSchemaError(
                f"param expects a list of {spec.type}, got {type(value).__name__}",
                column=spec.name,
            )
        return [_convert_scalar_param(spec, v) for v in value]
    return _convert_scalar_param(spec, value)


def _convert_scalar_param(spec: ParamSpec, value: Any) -> Any:
    t = spec.type
    if isinstance(value, np.generic):
        value = value.item()
    ok: Any
    if t == DataType.boolean:
        ok = value if isinstance(value, bool) else None
    elif t in (DataType.integer, DataType.long):
        ok = value if isinstance(value, int) and not isinstance(value, bool) else None
    elif t in (DataType.float, DataType.double):
        number = isinstance(value, int | float) and not isinstance(value, bool)
        ok = float(value) if number else None
    elif t == DataType.string:
        ok = value if isinstance(value, str) else None
    elif t == DataType.binary:
        ok = value if isinstance(value, bytes) else None
    else:  # datetime
        ok = value if isinstance(value, dt.datetime) else None
        if isinstance(value, str):
            try:
                ok = dt.datetime.fromisoformat(value)
            except ValueError:
                ok = None
    if ok is None:
        raise ModelSchemaError(
            f"param expects {t}, got {type(value).__name__}: {value!r}", column=spec.name
        )
    return ok
