"""Predictions as MLflow 3's scoring server writes them: ``{"predictions": ...}``.

numpy arrays become (nested) lists, a DataFrame a list of records (one object per row), a
Series the same records of its one column, as MLflow's ``_get_jsonable_obj`` does; anything
else JSON can hold is written as it is. orjson writes numpy arrays without ``tolist()``,
which is most of the cost of a large answer.

Differs from MLflow on purpose: NaN and infinities are written as ``null`` (valid JSON)
where MLflow writes the non-standard ``NaN``/``Infinity`` tokens.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
from typing import Any

import numpy as np
import orjson
import pandas as pd

__all__ = ["jsonable", "predictions_body"]

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def jsonable(predictions: Any) -> Any:
    """What MLflow would serialize for ``predictions`` (tables as records)."""
    if isinstance(predictions, pd.DataFrame):
        return predictions.to_dict(orient="records")
    if isinstance(predictions, pd.Series):
        return predictions.to_frame().to_dict(orient="records")
    return predictions


def predictions_body(predictions: Any) -> bytes:
    """The JSON answer for ``predictions``; TypeError when some value has no JSON form."""
    return orjson.dumps({"predictions": jsonable(predictions)}, option=_OPTIONS, default=_default)


def _default(obj: Any) -> Any:
    """Values orjson does not write itself (called only for those)."""
    if obj is pd.NaT or obj is pd.NA:
        return None
    if isinstance(obj, np.ndarray):  # non-contiguous, object or string arrays
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dt.datetime | dt.date | dt.time):
        return obj.isoformat()
    if isinstance(obj, bytes | bytearray):  # as MLflow: base64 text
        return base64.b64encode(bytes(obj)).decode("ascii")
    if isinstance(obj, pd.DataFrame | pd.Series):
        return jsonable(obj)
    if isinstance(obj, set | frozenset):
        return list(obj)
    if isinstance(obj, decimal.Decimal):
        return float(obj)
    if isinstance(obj, pd.Timedelta | dt.timedelta):
        return str(obj)
    raise TypeError(f"predictions hold a {type(obj).__name__}, which has no JSON form")
