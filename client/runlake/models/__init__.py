"""runlake's model format: MLflow's MLmodel layout, signatures and input examples.

>>> from runlake.models import infer_signature
>>> import pandas as pd
>>> infer_signature(pd.DataFrame({"x": [1.0]})).inputs
['x': double]

Flavors that save and load models live in ``runlake.pyfunc``, ``runlake.sklearn`` and
``runlake.pytorch``; see docs/decisions/0008-model-format.md for what follows MLflow and what
differs.
"""

from runlake.models.enforcement import enforce_params, enforce_schema
from runlake.models.errors import (
    MissingFlavorDependency,
    ModelFormatError,
    ModelSchemaError,
    UnsupportedModelUri,
)
from runlake.models.model import MLMODEL_FILE_NAME, Model, ModelInfo
from runlake.models.schema import ColSpec, DataType, ParamSchema, ParamSpec, Schema, TensorSpec
from runlake.models.signature import ModelSignature, infer_signature

__all__ = [
    "MLMODEL_FILE_NAME",
    "ColSpec",
    "DataType",
    "MissingFlavorDependency",
    "Model",
    "ModelFormatError",
    "ModelInfo",
    "ModelSchemaError",
    "ModelSignature",
    "ParamSchema",
    "ParamSpec",
    "Schema",
    "TensorSpec",
    "UnsupportedModelUri",
    "enforce_params",
    "enforce_schema",
    "infer_signature",
]
