"""Turn one ``POST /invocations`` body into model input: MLflow's scoring protocol.

Accepted, as ``mlflow models serve`` accepts them:

- ``application/json``: an object with exactly one of ``dataframe_split``
  (``{"columns", "data", "index"}``), ``dataframe_records`` (a list of objects),
  ``instances`` or ``inputs`` (rows, columns or tensors, read against the signature), and
  optionally ``params``;
- ``text/csv``: a table with a header line (string columns of the signature stay strings);
- ``application/vnd.apache.parquet``: a table.

What comes out is a ``Parsed``: the params, and the data in the form that lets the batcher
merge requests safely. Tables of plain scalars stay Python rows (``Table``) until a batch is
built, so merging 50 one-row requests builds one DataFrame instead of 50 and a concat; each
``Table`` carries the set of Python types in each column, and only tables whose columns have
equal type sets are merged, which makes pandas infer the same dtypes for the merged frame as
for each request alone.

Numbers in JSON and CSV carry no width, so a column or tensor the signature declares as
32-bit (``float``, ``integer``, a float32 tensor) receives them narrowed to that width when
no value changes (floats: the nearest float32, as the text has no precision of its own).
Every other conversion is left to the signature's enforcement, which refuses lossy ones and
names the column. Parquet keeps the widths it was written with.
"""

from __future__ import annotations

import io
import json
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pandas as pd

from runlake.models.schema import ColSpec, DataType, Schema, TensorSpec
from runlake.serving.errors import ScoringError

__all__ = [
    "CONTENT_CSV",
    "CONTENT_JSON",
    "CONTENT_PARQUET",
    "FORMATS",
    "Parsed",
    "Table",
    "build_frame",
    "narrow_frame",
    "parse_content_type",
    "parse_request",
]

CONTENT_JSON = "application/json"
CONTENT_CSV = "text/csv"
CONTENT_PARQUET = "application/vnd.apache.parquet"
CONTENT_TYPES = (CONTENT_JSON, CONTENT_CSV, CONTENT_PARQUET)

DF_SPLIT = "dataframe_split"
DF_RECORDS = "dataframe_records"
INSTANCES = "instances"
INPUTS = "inputs"
PARAMS = "params"
FORMATS = (DF_SPLIT, DF_RECORDS, INSTANCES, INPUTS)
_FORMATS_TEXT = ", ".join(FORMATS)

_SCALAR_TYPES = frozenset({float, int, str, bool, type(None)})
_INT64_MIN, _UINT64_END = -(2**63), 2**63  # ints outside stay apart: pandas makes them objects


@dataclass(frozen=True)
class Table:
    """Rows of JSON scalars under named columns, kept as lists until a DataFrame is needed.

    ``key`` is the tuple of each column's set of Python types, or None when the rows hold
    something other than plain scalars (nested lists, objects, 64-bit-overflowing ints):
    such a table is scored on its own, never merged.
    """

    columns: tuple[str, ...]
    rows: list[list[Any]]
    key: Hashable | None

    def frame(self) -> pd.DataFrame:
        """The DataFrame pandas makes of these rows (as ``pd.DataFrame(data, columns)``)."""
        return build_frame(self.columns, self.rows, self.key)


@dataclass(frozen=True)
class Parsed:
    """One request's input and params.

    ``data`` is a ``Table``, a ``pd.DataFrame`` (CSV, Parquet, tables pandas had to build)
    or anything else a model may take (numpy arrays, dicts of them). ``textual`` says the
    numbers came from JSON or CSV text, so narrowing them to the signature's width is a
    parsing choice, not a lossy conversion.
    """

    data: Any
    params: dict[str, Any] | None = None
    textual: bool = True

    @property
    def rows(self) -> int | None:
        """Number of rows of a tabular input, else None."""
        if isinstance(self.data, Table):
            return len(self.data.rows)
        if isinstance(self.data, pd.DataFrame):
            return len(self.data)
        return None


#: Tables whose every column holds only one of these types are built through one numpy
#: array: the dtype pandas would infer column by column, in a fraction of the time.
_HOMOGENEOUS = {
    frozenset({float}): np.float64,
    frozenset({int}): np.int64,
    frozenset({bool}): np.bool_,
}


def build_frame(
    columns: Sequence[str], rows: list[list[Any]], key: Hashable | None = None
) -> pd.DataFrame:
    """``pd.DataFrame(rows, columns=columns)``: one place, so merged and single agree.

    With a merge key saying every column holds only floats (or only ints, only bools; ints
    within int64), the rows go through one numpy array of that dtype: the same frame.
    """
    if rows and isinstance(key, tuple) and key:
        dtype = _HOMOGENEOUS.get(key[0])
        if dtype is not None and all(k == key[0] for k in key):
            return pd.DataFrame(np.array(rows, dtype=dtype), columns=list(columns))
    return pd.DataFrame(rows, columns=list(columns))


# -- content type ------------------------------------------------------------------------


def parse_content_type(value: str | None) -> str:
    """The media type of a ``Content-Type`` header, or a 415 ScoringError.

    As MLflow: only ``charset=utf-8`` may follow the media type; any other parameter (such
    as MLflow 1's ``format=pandas-split``) is refused rather than ignored.
    """
    if not value:
        raise ScoringError(
            f"a Content-Type header is required: one of {', '.join(CONTENT_TYPES)}", status=415
        )
    mime, *params = (part.strip() for part in value.split(";"))
    mime = mime.lower()
    if mime not in CONTENT_TYPES:
        raise ScoringError(
            f"unsupported Content-Type {value!r}; use one of {', '.join(CONTENT_TYPES)}",
            status=415,
        )
    for param in params:
        if not param:
            continue
        name, _, arg = param.partition("=")
        name, arg = name.strip().lower(), arg.strip().strip('"').lower()
        if name != "charset":
            raise ScoringError(
                f"unsupported Content-Type parameter {name!r} (only charset=utf-8 is accepted); "
                "MLflow 1's format= parameters were replaced by the JSON keys "
                f"{_FORMATS_TEXT}",
                status=415,
            )
        if arg not in ("utf-8", "utf8"):
            raise ScoringError(f"unsupported charset {arg!r}: the server reads UTF-8", status=415)
    return mime


# -- the request ---------------------------------------------------------------------------


def parse_request(body: bytes, content_type: str | None, schema: Schema | None) -> Parsed:
    """The model input of one request, or a ScoringError (400, 415) saying what is wrong.

    ``schema`` is the model's input signature (None without one): it decides how
    ``instances``/``inputs`` are read (tensors or columns) and which CSV columns stay strings.
    """
    mime = parse_content_type(content_type)
    if mime == CONTENT_JSON:
        return parse_json(body, schema)
    if mime == CONTENT_CSV:
        return Parsed(_parse_csv(body, schema))
    return Parsed(_parse_parquet(body), textual=False)


def _loads(body: bytes) -> Any:
    """JSON through orjson; the standard library only when orjson refuses.

    The fallback keeps what MLflow's clients may send and orjson does not read:
    ``NaN``/``Infinity`` (Python's ``json.dumps`` writes them) and integers wider than
    64 bits. Its error message is the one reported, as it names line and column.
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as first:
        try:
            return json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError is a ValueError
            detail = str(e) if isinstance(e, json.JSONDecodeError) else str(first)
            raise ScoringError(f"the body is not valid JSON: {detail}") from None


def parse_json(body: bytes, schema: Schema | None) -> Parsed:
    """An ``application/json`` body: exactly one input key, and optional ``params``."""
    if not body.strip():
        raise ScoringError(
            f"the body is empty; send a JSON object with exactly one of {_FORMATS_TEXT}"
        )
    doc = _loads(body)
    if not isinstance(doc, dict):
        raise ScoringError(
            f"the body must be a JSON object with exactly one of {_FORMATS_TEXT} "
            f"(and optionally params); got a JSON {_json_kind(doc)}"
        )
    keys = [k for k in doc if k in FORMATS]
    unknown = [k for k in doc if k not in FORMATS and k != PARAMS]
    if unknown:
        raise ScoringError(
            f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"the body holds exactly one of {_FORMATS_TEXT}, and optionally params",
            field=str(unknown[0]),
        )
    if not keys:
        raise ScoringError(f"the body has no input: give exactly one of {_FORMATS_TEXT}")
    if len(keys) > 1:
        raise ScoringError(
            f"the body has several inputs ({', '.join(keys)}); give exactly one of {_FORMATS_TEXT}"
        )
    params = doc.get(PARAMS)
    if params is not None and not isinstance(params, dict):
        raise ScoringError(
            f"params must be a JSON object of name: value, got a JSON {_json_kind(params)}",
            field=PARAMS,
        )
    fmt = keys[0]
    value = doc[fmt]
    if fmt == DF_SPLIT:
        data: Any = _split(value)
    elif fmt == DF_RECORDS:
        data = _records(value, DF_RECORDS)
    else:
        data = _tf_serving(value, fmt, schema)
    return Parsed(data, params or None)


def _json_kind(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    return names.get(type(value), "number")


def _split(value: Any) -> Table | pd.DataFrame:
    """``dataframe_split``: ``{"columns": [...], "data": [[...], ...], "index": [...]}``."""
    if not isinstance(value, dict):
        raise ScoringError(
            f"{DF_SPLIT} must be an object with data (a list of rows) and optionally columns "
            f"and index; got a JSON {_json_kind(value)}",
            field=DF_SPLIT,
        )
    extra = [k for k in value if k not in ("columns", "data", "index")]
    if extra or "data" not in value:
        what = f"unknown key(s) {', '.join(map(repr, extra))}" if extra else "no data"
        raise ScoringError(
            f"{DF_SPLIT} has {what}; it holds data and optionally columns and index",
            field=DF_SPLIT,
        )
    data, columns, index = value["data"], value.get("columns"), value.get("index")
    if not isinstance(data, list):
        raise ScoringError(
            f"{DF_SPLIT}.data must be a list of rows, got a JSON {_json_kind(data)}",
            field=f"{DF_SPLIT}.data",
        )
    if columns is not None:
        if not isinstance(columns, list):
            raise ScoringError(
                f"{DF_SPLIT}.columns must be a list of names, got a JSON {_json_kind(columns)}",
                field=f"{DF_SPLIT}.columns",
            )
        _check_unique(columns, f"{DF_SPLIT}.columns")
    if columns is not None and index is None and all(isinstance(c, str) for c in columns):
        width = len(columns)
        for i, row in enumerate(data):
            if type(row) is not list:
                if width == 1:  # a one-column table may list bare values
                    break
                raise ScoringError(
                    f"{DF_SPLIT}.data[{i}] must be a list of {width} values, "
                    f"got a JSON {_json_kind(row)}",
                    field=f"{DF_SPLIT}.data",
                )
            if len(row) != width:
                raise ScoringError(
                    f"{DF_SPLIT}.data[{i}] has {len(row)} values for {width} columns",
                    field=f"{DF_SPLIT}.data",
                )
        else:
            return _table(tuple(columns), data)
    try:
        return pd.DataFrame(data=data, columns=columns, index=index)
    except (ValueError, TypeError) as e:
        raise ScoringError(
            f"{DF_SPLIT} is not a valid table: {e}", field=f"{DF_SPLIT}.data"
        ) from None


def _check_unique(columns: list[Any], field: str) -> None:
    seen: set[Any] = set()
    for c in columns:
        if not isinstance(c, str | int | float | bool) or c is None:
            raise ScoringError(f"column names must be strings, got {c!r}", field=field)
        if c in seen:
            raise ScoringError(f"column {c!r} appears twice", field=field)
        seen.add(c)


def _records(value: Any, where: str) -> Table | pd.DataFrame:
    """A list of records ``[{"a": 1, "b": 2}, ...]`` (``dataframe_records``, ``instances``)."""
    if not isinstance(value, list):
        raise ScoringError(
            f"{where} must be a list of records (JSON objects), got a JSON {_json_kind(value)}",
            field=where,
        )
    if value and all(type(r) is dict for r in value):
        keys = tuple(value[0])
        if all(tuple(r) == keys for r in value):
            return _table(keys, [list(r.values()) for r in value])
    try:  # records with differing keys (pandas aligns them, filling gaps) or bare rows
        return pd.DataFrame(value)
    except (ValueError, TypeError) as e:
        raise ScoringError(f"{where} is not a valid table: {e}", field=where) from None


def _table(columns: tuple[str, ...], rows: list[list[Any]]) -> Table:
    return Table(columns, rows, _merge_key(rows))


def _merge_key(rows: list[list[Any]]) -> Hashable | None:
    """Each column's set of Python types, or None when the rows may not be merged."""
    if not rows:
        return None
    key = []
    for col in zip(*rows, strict=True):
        types = frozenset(map(type, col))
        if not types <= _SCALAR_TYPES:
            return None
        if int in types:
            ints = [v for v in col if type(v) is int]
            if min(ints) < _INT64_MIN or max(ints) >= _UINT64_END:
                return None
        key.append(types)
    return tuple(key)


def _tf_serving(value: Any, fmt: str, schema: Schema | None) -> Any:
    """``instances`` / ``inputs``: read as tensors or as columns, by the signature.

    - a tensor signature: a list is one array, an object is named arrays (and a list of
      records is turned into named arrays, as MLflow does);
    - a column signature, or none: a list of records is a table; an object of equal-length
      lists is a table of those columns (with no signature it stays named arrays, as in
      MLflow); a bare list is the one column of a one-column signature, else an array.
    """
    tensors = schema is not None and schema.is_tensor_spec
    if isinstance(value, list) and value and all(type(r) is dict for r in value):
        if not tensors:
            return _records(value, fmt)
        keys = list(dict.fromkeys(k for r in value for k in r))
        value = {k: [r.get(k) for r in value] for k in keys}
    if isinstance(value, dict):
        if tensors or schema is None:
            return {
                str(k): _array(v, f"{fmt}.{k}", _tensor_spec(schema, str(k)))
                for k, v in value.items()
            }
        columns = list(value.values())
        if columns and all(type(c) is list for c in columns):
            lengths = {len(c) for c in columns}
            if len(lengths) != 1:
                raise ScoringError(
                    f"the columns of {fmt} have different lengths ({sorted(lengths)})", field=fmt
                )
            return _table(tuple(map(str, value)), [list(r) for r in zip(*columns, strict=True)])
        return value  # one row of scalars, or columns the signature's enforcement will read
    if (
        isinstance(value, list)
        and schema is not None
        and not tensors
        and len(schema.inputs) == 1
        and isinstance(schema.inputs[0], ColSpec)
    ):
        name = schema.inputs[0].name
        if name is not None and not any(type(v) is list for v in value):
            return _table((name,), [[v] for v in value])
    return _array(value, fmt, _tensor_spec(schema, None))


def _tensor_spec(schema: Schema | None, name: str | None) -> TensorSpec | None:
    if schema is None or not schema.is_tensor_spec:
        return None
    for spec in schema.inputs:
        if isinstance(spec, TensorSpec) and (name is None or spec.name == name):
            return spec
    return None


def _array(value: Any, where: str, spec: TensorSpec | None) -> Any:
    """A JSON value as a numpy array, narrowed to the spec's number width when exact."""
    if not isinstance(value, list):
        return value if spec is None else np.asarray(value)
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as e:
        raise ScoringError(
            f"{where} is not a rectangular array (rows of equal length): {e}", field=where
        ) from None
    if spec is not None:
        arr = _narrow_array(arr, spec.dtype)
    return arr


def _narrow_array(arr: np.ndarray[Any, Any], want: np.dtype[Any]) -> np.ndarray[Any, Any]:
    """JSON numbers to the tensor's dtype: floats always (JSON has no width), ints if exact."""
    if arr.dtype == want:
        return arr
    if arr.size == 0:  # np.asarray([]) is float64 whatever the spec
        return arr.astype(want) if want.kind in "biuf" else arr
    if arr.dtype.kind not in "iuf":
        return arr
    if want.kind == "f" and arr.dtype.kind == "f":
        return arr.astype(want)
    if want.kind == "f":  # ints: only those the float holds exactly
        exact = 2 ** (np.finfo(want).nmant + 1)
        if max(abs(int(arr.min())), abs(int(arr.max()))) <= exact:
            return arr.astype(want)
        return arr
    if want.kind in "iu" and arr.dtype.kind in "iu":
        info = np.iinfo(want)
        if arr.min() >= info.min and arr.max() <= info.max:
            return arr.astype(want)
    return arr


# -- CSV and Parquet -------------------------------------------------------------------------


def _parse_csv(body: bytes, schema: Schema | None) -> pd.DataFrame:
    """A CSV table with a header; the signature's string columns are read as strings."""
    dtypes: dict[str, str] = {}
    if schema is not None and not schema.is_tensor_spec:
        for spec in schema.inputs:
            if isinstance(spec, ColSpec) and spec.name and spec.type == DataType.string:
                dtypes[spec.name] = "str"
    try:
        return pd.read_csv(io.BytesIO(body), dtype=dtypes or None, encoding="utf-8")
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as e:
        raise ScoringError(f"the body is not a valid CSV table with a header line: {e}") from None


def _parse_parquet(body: bytes) -> pd.DataFrame:
    try:
        return pd.read_parquet(io.BytesIO(body))
    except Exception as e:  # pyarrow raises its own error types for corrupt files
        raise ScoringError(f"the body is not a valid Parquet file: {e}") from None


# -- widths ----------------------------------------------------------------------------------


def narrow_frame(frame: pd.DataFrame, schema: Schema | None) -> pd.DataFrame:
    """Narrow 64-bit number columns parsed from text to 32-bit ones the signature declares.

    ``float`` columns get float64 values as float32; ``integer`` columns get int64 values as
    int32 when every value fits. Anything else (ints into floats included: enforcement checks
    they are exact) is left for enforcement to judge.
    """
    if schema is None or schema.is_tensor_spec or not schema.has_names:
        return frame
    narrow = (DataType.float, DataType.integer)
    if not any(isinstance(s, ColSpec) and s.type in narrow for s in schema.inputs):
        return frame  # the common case: nothing 32-bit, nothing to look at
    changed: dict[str, pd.Series] = {}
    for spec in schema.inputs:
        name = spec.name
        if not isinstance(spec, ColSpec) or name is None or name not in frame.columns:
            continue
        col = frame[name]
        dtype = col.dtype
        if not isinstance(col, pd.Series) or not isinstance(dtype, np.dtype):
            continue
        if spec.type == DataType.float and dtype.kind == "f" and dtype.itemsize > 4:
            changed[name] = col.astype(np.float32)
        elif (
            spec.type == DataType.integer
            and dtype.kind in "iu"
            and dtype.itemsize > 4
            and (len(col) == 0 or (col.min() >= -(2**31) and col.max() < 2**31))
        ):
            changed[name] = col.astype(np.int32)
    if not changed:
        return frame
    out = frame.copy(deep=False)
    for name, col in changed.items():
        out[name] = col
    return out
