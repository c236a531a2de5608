"""``runlake.spark.udf``: a model as a Spark pandas UDF (iterator of Arrow batches).

The driver resolves the model URI once — a ``models:/name@alias`` or ``/Stage`` URI is
pinned to the version it names now, so every executor scores the same version — downloads
it, and ships the directory to the executors with ``SparkContext.addFile``. Executors load
it once per Python worker (:mod:`runlake.spark.worker`).
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from runlake.errors import InvalidArgument

if TYPE_CHECKING:
    from pyspark.sql import Column, SparkSession
    from pyspark.sql import types as T

    from runlake._registry import ModelVersion
    from runlake.models.model import Model

__all__ = ["ModelUdf", "StagedModel", "resolve_version", "stage_model", "udf"]


def resolve_version(model_uri: str) -> ModelVersion | None:
    """The registered version a ``models:/`` URI names now (None for other URIs)."""
    if not model_uri.startswith("models:/"):
        return None
    from runlake._registry import parse_models_uri
    from runlake.client import RunlakeClient

    client = RunlakeClient()
    name, what = parse_models_uri(model_uri)
    if what.startswith("@"):
        return client.get_model_version_by_alias(name, what[1:])
    if what.isdigit():
        return client.get_model_version(name, int(what))
    stages = None if what.lower() == "latest" else [what]
    found = sorted(client.get_latest_versions(name, stages), key=lambda v: v.version)
    if not found:
        raise InvalidArgument(f"model {name!r} has no version in {what!r}", field="model_uri")
    return found[-1]


@dataclass(frozen=True)
class StagedModel:
    """A model downloaded on the driver, pinned to one version, shipped to the executors."""

    model_uri: str
    #: what was downloaded: the version's runs:/ source for a models:/ URI
    source: str
    directory: Path
    meta: Model
    version: ModelVersion | None
    shipped: Any = field(repr=False)


def stage_model(spark: SparkSession, model_uri: str) -> StagedModel:
    """Resolve, download and ``addFile`` the model; its metadata for the driver."""
    from runlake.artifacts import download_artifacts
    from runlake.models._hooks import download_model
    from runlake.models.model import Model
    from runlake.spark.worker import ShippedModel

    if not isinstance(model_uri, str) or not model_uri:
        raise InvalidArgument(f"must be a model URI, got {model_uri!r}", field="model_uri")
    version = resolve_version(model_uri)
    source = version.source if version is not None else model_uri
    stage = Path(tempfile.mkdtemp(prefix=f"runlake-model-{uuid.uuid4().hex[:12]}-"))
    if source.startswith(("runs:/", "models:/")):
        local = Path(download_artifacts(source, dst_path=str(stage)))
    else:
        local = download_model(source)
        if not local.is_dir():
            raise InvalidArgument(f"no model directory at {model_uri!r}", field="model_uri")
        local = Path(shutil.copytree(local, stage / "model"))
    meta = Model.load(local)  # a clear error here when it is not a model
    spark.sparkContext.addFile(str(stage), recursive=True)
    shipped = ShippedModel(stage.name, local.relative_to(stage).as_posix())
    return StagedModel(model_uri, source, local, meta, version, shipped)


def _column_name(col: Any) -> str | None:
    return col if isinstance(col, str) else None


class ModelUdf:
    """Call with the input columns (names or Columns; none: the signature's inputs)."""

    def __init__(
        self, staged: StagedModel, result_type: T.DataType, params: dict[str, Any] | None
    ) -> None:
        self.staged = staged
        self.result_type = result_type
        self.params = params
        sig = staged.meta.signature
        self.input_names: list[str] = (
            sig.inputs.input_names() if sig is not None and sig.inputs is not None else []
        )

    def __call__(self, *cols: str | Column) -> Column:
        from pyspark.sql import functions as F

        if not cols:
            if not self.input_names:
                raise InvalidArgument(
                    "the model has no named input signature: pass the input columns",
                    field="cols",
                )
            cols = tuple(self.input_names)
        names = [_column_name(c) for c in cols]
        if any(n is None for n in names):  # Columns: match the signature's order
            if len(cols) == len(self.input_names):
                names = list(self.input_names)
            else:
                names = [n if n is not None else f"_{i}" for i, n in enumerate(names)]
        fn = _pandas_udf(self.staged.shipped, [str(n) for n in names], self.result_type,
                         self.params)  # fmt: skip
        return fn(*[F.col(c) if isinstance(c, str) else c for c in cols])  # type: ignore[no-any-return]


def _pandas_udf(
    shipped: Any, names: list[str], result_type: T.DataType, params: dict[str, Any] | None
) -> Any:
    from pyspark.sql.pandas.functions import pandas_udf

    from runlake.spark.worker import predict_batches

    def predict(batches: Iterator[tuple[pd.Series, ...]]) -> Iterator[pd.Series]:
        return predict_batches(shipped, names, result_type, batches, params)  # type: ignore[return-value]

    with warnings.catch_warnings():  # runlake pins pandas 3, which PySpark 4.2 warns about
        warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas")
        return pandas_udf(predict, returnType=result_type)  # type: ignore[call-overload]


def udf(
    spark: SparkSession,
    model_uri: str,
    result_type: T.DataType | str | None = None,
    *,
    params: dict[str, Any] | None = None,
) -> ModelUdf:
    """A Spark UDF scoring with the model at ``model_uri`` (runs:/, models:/, a path).

    ``result_type`` defaults to the output signature's type (a struct for several outputs,
    double without one). ``params`` are the model's inference params.

    >>> predict = runlake.spark.udf(spark, "models:/churn@champion")  # doctest: +SKIP
    >>> df.withColumn("prediction", predict("age", "plan"))  # doctest: +SKIP
    """
    from runlake.spark.types import parse_result_type, result_type_for

    staged = stage_model(spark, model_uri)
    sig = staged.meta.signature
    rtype = (
        parse_result_type(result_type)
        if result_type is not None
        else result_type_for(sig.outputs if sig is not None else None)
    )
    return ModelUdf(staged, rtype, params)
