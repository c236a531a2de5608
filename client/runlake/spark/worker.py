"""What runs in Spark's Python workers: the model, loaded once per worker, over Arrow batches.

PySpark reuses a Python worker for many tasks (``spark.python.worker.reuse``, on by
default), so the module-level cache below holds each shipped model for the life of the
worker: it is unpacked and loaded on the worker's first batch, never per task or batch.
Batches arrive as pandas Series built from Arrow record batches
(``spark.sql.execution.arrow.maxRecordsPerBatch`` rows each); the model's ``predict``
applies its signature (column presence and types, naming the column at fault).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from pyspark.sql import types as T

    from runlake.pyfunc import PyFuncModel

__all__ = ["ShippedModel", "load", "predict_batches"]

_MODELS: dict[str, PyFuncModel] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class ShippedModel:
    """A model directory the driver added to the job's files (``SparkContext.addFile``)."""

    #: the name the directory was added under (unique per staging)
    name: str
    #: the model directory inside it
    rel: str
    #: a local path to use instead of SparkFiles (the driver's own process)
    local: str | None = None

    def directory(self) -> Path:
        if self.local is not None:
            return Path(self.local)
        from pyspark import SparkFiles

        return Path(SparkFiles.get(self.name)) / self.rel


def load(shipped: ShippedModel) -> PyFuncModel:
    """The model, loaded on first use in this process and kept."""
    with _LOCK:
        model = _MODELS.get(shipped.name)
        if model is None:
            from runlake.pyfunc import load_model

            model = _MODELS[shipped.name] = load_model(shipped.directory())
        return model


def _frame(batch: Any, names: Sequence[str]) -> pd.DataFrame:
    if isinstance(batch, pd.DataFrame):  # a struct column
        return batch
    cols = (batch,) if isinstance(batch, pd.Series) else tuple(batch)
    if len(cols) != len(names):
        raise ValueError(f"got {len(cols)} columns for the model's {len(names)} inputs")
    return pd.DataFrame(dict(zip(names, cols, strict=True)), copy=False)


def predict_batches(
    shipped: ShippedModel,
    names: Sequence[str],
    result_type: T.DataType,
    batches: Iterator[Any],
    params: dict[str, Any] | None = None,
) -> Iterator[pd.Series | pd.DataFrame]:
    """Score each Arrow batch (as pandas) with the cached model, shaped for ``result_type``."""
    from runlake.spark.types import shape_output

    model = load(shipped)
    for batch in batches:
        yield shape_output(model.predict(_frame(batch, names), params), result_type)
