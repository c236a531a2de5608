"""Input examples stored beside a model, in MLflow's files and JSON layout.

Two files are written, as MLflow 3 does:

- ``input_example.json``: a DataFrame in pandas' "split" orient (``{"columns": [...],
  "data": [[...], ...]}``), a numpy array as nested lists, a dict of arrays as a dict of
  lists, any other dict as is;
- ``serving_input_example.json``: the same data as a scoring server's request body
  (``{"dataframe_split": ...}`` or ``{"inputs": ...}``).

Values are made JSON-able the way MLflow does: bytes as base64 text, datetimes as ISO
strings, numpy scalars as Python numbers, NaN as ``NaN``. ``saved_input_example_info`` in
MLmodel records the file, the kind (``dataframe``/``ndarray``/``json_object``) and, for a
DataFrame, ``pandas_orient: split``; loading uses the signature to restore bytes and datetimes.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from runlake.errors import InvalidArgument
from runlake.models.errors import ModelFormatError
from runlake.models.schema import ColSpec, DataType, Schema, TensorSpec

__all__ = ["EXAMPLE_FILENAME", "SERVING_FILENAME", "load_input_example", "save_input_example"]

EXAMPLE_FILENAME = "input_example.json"
SERVING_FILENAME = "serving_input_example.json"


def save_input_example(example: Any, model_dir: Path) -> dict[str, Any]:
    """Write the example files into ``model_dir``; returns ``saved_input_example_info``."""
    info: dict[str, Any] = {"artifact_path": EXAMPLE_FILENAME}
    if isinstance(example, pd.Series):
        example = example.to_frame()
    if isinstance(example, list) and example and all(isinstance(r, dict) for r in example):
        example = pd.DataFrame(example)
    if isinstance(example, pd.DataFrame):
        body: Any = {
            "columns": [str(c) for c in example.columns],
            "data": [[_jsonable(v) for v in row] for row in example.itertuples(index=False)],
        }
        serving: Any = {"dataframe_split": body}
        info.update(type="dataframe", pandas_orient="split")
    elif isinstance(example, np.ndarray):
        body = _jsonable(example)
        serving = {"inputs": body}
        info["type"] = "ndarray"
    elif isinstance(example, dict):
        arrays = [isinstance(v, np.ndarray) for v in example.values()]
        if any(arrays) and not all(arrays):
            raise InvalidArgument(
                "input_example: a dict mixes numpy arrays with other values; use arrays only "
                "(named tensors) or lists/scalars only (columns)"
            )
        body = {str(k): _jsonable(v) for k, v in example.items()}
        serving = {"inputs": body}
        info["type"] = "ndarray" if arrays and all(arrays) else "json_object"
    else:
        raise InvalidArgument(
            f"input_example: unsupported type {type(example).__name__}; use a pandas "
            "DataFrame, a dict of columns or a numpy array"
        )
    (model_dir / EXAMPLE_FILENAME).write_text(json.dumps(body))
    (model_dir / SERVING_FILENAME).write_text(json.dumps(serving, indent=2))
    info["serving_input_path"] = SERVING_FILENAME
    return info


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return [_jsonable(x) for x in v.tolist()] if v.dtype.kind in "OSMm" else v.tolist()
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, bytes | bytearray):
        return base64.encodebytes(bytes(v)).decode("ascii")
    if isinstance(v, pd.Timestamp):
        return None if pd.isna(v) else v.isoformat()
    if isinstance(v, np.datetime64):
        return None if np.isnat(v) else pd.Timestamp(v).isoformat()
    if isinstance(v, dt.datetime | dt.date):
        return v.isoformat()
    if isinstance(v, np.generic):
        return v.item()
    if v is pd.NA or v is pd.NaT:
        return None
    return v


def load_input_example(model_dir: Path, info: dict[str, Any], inputs: Schema | None) -> Any:
    """The example as saved, restored to a DataFrame / array / dict using ``inputs``."""
    path = model_dir / str(info.get("artifact_path", EXAMPLE_FILENAME))
    try:
        body = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelFormatError("input example file is missing", field=path.name) from None
    kind = info.get("type")
    if kind == "dataframe":
        if info.get("pandas_orient", "split") != "split":
            raise ModelFormatError(
                f"unsupported pandas_orient {info.get('pandas_orient')!r}; expected 'split'"
            )
        frame = pd.DataFrame(body["data"], columns=body["columns"])
        return _restore_columns(frame, inputs)
    if kind == "ndarray":
        if isinstance(body, dict):
            dtypes = _tensor_dtypes(inputs)
            return {k: np.asarray(v, dtype=dtypes.get(k)) for k, v in body.items()}
        dtypes = _tensor_dtypes(inputs)
        return np.asarray(body, dtype=dtypes.get(None))
    if kind == "json_object":
        return body
    raise ModelFormatError(f"unknown input example type {kind!r}")


def _tensor_dtypes(inputs: Schema | None) -> dict[str | None, Any]:
    if inputs is None or not inputs.is_tensor_spec:
        return {}
    return {s.name: s.dtype for s in inputs if isinstance(s, TensorSpec)}


def _restore_columns(frame: pd.DataFrame, inputs: Schema | None) -> pd.DataFrame:
    if inputs is None or inputs.is_tensor_spec:
        return frame
    specs = [s for s in inputs if isinstance(s, ColSpec)]
    pairs = (
        [(s.name, s) for s in specs if s.name in frame.columns]
        if inputs.has_names
        else list(zip(frame.columns, specs, strict=False))
    )
    for col, spec in pairs:
        if spec.type == DataType.binary:
            frame[col] = [
                None if v is None else base64.decodebytes(str(v).encode("ascii"))
                for v in frame[col].tolist()
            ]
        elif spec.type == DataType.datetime:
            frame[col] = pd.to_datetime(frame[col], format="ISO8601").astype("datetime64[ns]")
        elif isinstance(spec.type, DataType) and spec.type not in (
            DataType.string,
            DataType.boolean,
        ):
            has_gaps = frame[col].isna().any() if hasattr(frame[col], "isna") else False
            numpy_type = spec.type.to_numpy()
            if not (has_gaps and numpy_type.kind in "iu"):
                frame[col] = frame[col].astype(numpy_type)
    return frame
