"""``load_model`` for every flavor through one interface: ``PyFuncModel.predict``.

The python_function flavor names a ``loader_module``. Runlake writes MLflow's module names
there (``mlflow.pyfunc.model``, ``mlflow.sklearn``, ``mlflow.pytorch``) so that MLflow loads
runlake's models, and maps each to its own implementation below, so that runlake loads
MLflow's. A loader this table does not know is a clear error naming it.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any, Protocol

from runlake.models import _hooks
from runlake.models.enforcement import enforce_params, enforce_schema
from runlake.models.errors import ModelFormatError
from runlake.models.model import PYFUNC_FLAVOR, Model

__all__ = ["LOADERS", "PyFuncModel", "load_model"]

#: loader_module written in MLmodel → the runlake module whose ``_load_pyfunc`` loads it.
LOADERS: dict[str, str] = {
    "mlflow.pyfunc.model": "runlake.pyfunc.model",
    "mlflow.sklearn": "runlake.sklearn",
    "mlflow.pytorch": "runlake.pytorch",
}


class PredictImpl(Protocol):
    """What a flavor's ``_load_pyfunc`` returns."""

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        """Score already-enforced input."""


class PyFuncModel:
    """A loaded model of any flavor: ``predict`` enforces the signature, then scores."""

    def __init__(self, model_meta: Model, impl: PredictImpl, model_dir: Path) -> None:
        self._meta = model_meta
        self._impl = impl
        self._dir = model_dir

    @property
    def metadata(self) -> Model:
        """The MLmodel content: signature, run_id, flavors, model_uuid..."""
        return self._meta

    @property
    def loader_module(self) -> str:
        """The python_function loader named in MLmodel (MLflow's module name)."""
        return str(self._meta.flavor(PYFUNC_FLAVOR).get("loader_module"))

    @property
    def model_dir(self) -> Path:
        """The local directory the model was loaded from."""
        return self._dir

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        """Score ``data`` after making it match the input signature.

        Raises ModelSchemaError naming the column when a required column is missing or has a
        type that cannot be converted without changing values. Without a signature the data
        and params reach the model unchanged.
        """
        sig = self._meta.signature
        if sig is not None:
            if sig.inputs is not None:
                data = enforce_schema(data, sig.inputs)
            params = enforce_params(params, sig.params)
        return self._impl.predict(data, params)

    def unwrap_python_model(self) -> Any:
        """The user's PythonModel instance (custom models only)."""
        inner = getattr(self._impl, "python_model", None)
        if inner is None:
            raise ModelFormatError(f"a {self.loader_module} model wraps no PythonModel")
        return inner

    def get_raw_model(self) -> Any:
        """The framework object (estimator, module) behind this model."""
        raw = getattr(self._impl, "raw_model", None)
        return raw if raw is not None else self.unwrap_python_model()

    def __repr__(self) -> str:
        return (
            f"PyFuncModel(loader_module={self.loader_module!r}, "
            f"run_id={self._meta.run_id!r}, model_uuid={self._meta.model_uuid!r})"
        )


def add_code_to_path(model_dir: Path, code: str | None) -> None:
    """Put a model's ``code`` directory (its ``code_paths``) first on ``sys.path``, once."""
    if not code:
        return
    path = str(model_dir / code)
    if path not in sys.path:
        sys.path.insert(0, path)


def load_model(
    model_uri: str | os.PathLike[str], model_config: dict[str, Any] | None = None
) -> PyFuncModel:
    """Load a model (runlake's or MLflow's) by URI as a PyFuncModel.

    ``model_uri`` is a local path or ``file://`` URI; ``runs:/`` and ``models:/`` go through
    ``runlake.models._hooks.download_model``.
    """
    model_dir = _hooks.download_model(model_uri)
    meta = Model.load(model_dir)
    conf = meta.flavor(PYFUNC_FLAVOR)
    loader = str(conf.get("loader_module", ""))
    target = LOADERS.get(loader)
    if target is None:
        raise ModelFormatError(
            f"no runlake loader for {loader!r}; runlake loads {sorted(LOADERS)}",
            field="flavors.python_function.loader_module",
        )
    add_code_to_path(model_dir, conf.get("code"))
    module = importlib.import_module(target)
    impl: PredictImpl = module._load_pyfunc(model_dir, meta, conf, model_config)
    return PyFuncModel(meta, impl, model_dir)
