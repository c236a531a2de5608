"""cloudpickle in both directions between runlake and MLflow.

Saving: the model's base classes (``runlake.pyfunc._base``) are pickled by value, so the
file names no runlake module and MLflow's loader unpickles it as is.

Loading: an MLflow custom model's pickle names ``mlflow.pyfunc.model.PythonModel`` (its base
class) and often ``mlflow.models.signature._TypeHints`` (a cached attribute). When mlflow is
not installed those few names are mapped to runlake's equivalents; any other mlflow name is
a clear ModelFormatError rather than a bare ModuleNotFoundError.
"""

from __future__ import annotations

import bz2
import gzip
import importlib.util
import lzma
import pickle
import threading
from pathlib import Path
from typing import IO, Any

import cloudpickle  # type: ignore[import-untyped]

from runlake.models.errors import ModelFormatError
from runlake.pyfunc import _base

__all__ = ["dump", "load"]

_LOCK = threading.Lock()


class _TypeHints:
    """Stands in for MLflow's cached ``_TypeHints`` (input/output hints) when unpickling."""

    input: Any = None
    output: Any = None


_STANDINS: dict[tuple[str, str], Any] = {
    ("mlflow.pyfunc.model", "PythonModel"): _base.PythonModel,
    ("mlflow.pyfunc", "PythonModel"): _base.PythonModel,
    ("mlflow.pyfunc.model", "PythonModelContext"): _base.PythonModelContext,
    ("mlflow.pyfunc", "PythonModelContext"): _base.PythonModelContext,
    ("mlflow.models.signature", "_TypeHints"): _TypeHints,
}

_OPENERS: dict[str | None, Any] = {
    None: open,
    "gzip": gzip.open,
    "bzip2": bz2.open,
    "lzma": lzma.open,
}


def dump(obj: Any, path: Path) -> None:
    """cloudpickle ``obj`` into ``path`` with runlake's base classes carried by value."""
    with _LOCK:
        registered = _base.__name__ in cloudpickle.list_registry_pickle_by_value()
        if not registered:
            cloudpickle.register_pickle_by_value(_base)
        try:
            with path.open("wb") as f:
                cloudpickle.dump(obj, f)
        finally:
            if not registered:
                cloudpickle.unregister_pickle_by_value(_base)


class _CompatUnpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes], remap: bool) -> None:
        super().__init__(file)
        self._remap = remap

    def find_class(self, module: str, name: str) -> Any:
        if self._remap and module.split(".")[0] == "mlflow":
            standin = _STANDINS.get((module, name))
            if standin is not None:
                return standin
            raise ModelFormatError(
                f"the pickled model needs {module}.{name}, which only mlflow provides; "
                "install mlflow beside runlake to load it",
                field="python_model",
            )
        return super().find_class(module, name)


def load(path: Path, compression: str | None = None) -> Any:
    """Unpickle a cloudpickled file (optionally compressed as MLflow allows)."""
    opener = _OPENERS.get(compression)
    if opener is None:
        raise ModelFormatError(
            f"unknown compression {compression!r}; expected one of gzip, bzip2, lzma",
            field="python_model_compression",
        )
    remap = importlib.util.find_spec("mlflow") is None
    with opener(path, "rb") as f:
        return _CompatUnpickler(f, remap).load()
