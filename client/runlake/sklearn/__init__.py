"""The sklearn flavor: scikit-learn estimators saved as MLflow saves them.

``model.pkl`` holds the estimator (cloudpickle by default, plain pickle on request); MLmodel
gets an ``sklearn`` flavor (``pickled_model``, ``sklearn_version``, ``serialization_format``)
and a python_function flavor with ``loader_module: mlflow.sklearn``, so
``mlflow.sklearn.load_model`` and ``mlflow.pyfunc.load_model`` both read it. MLflow 3 saves
with ``skops`` by default; runlake reads such a model only where the ``skops`` package is
installed, and otherwise says so (save with ``serialization_format="cloudpickle"``).
"""

from __future__ import annotations

import importlib
import os
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runlake.errors import InvalidArgument
from runlake.models import _hooks
from runlake.models.environment import installed_version, resolve_requirements
from runlake.models.errors import MissingFlavorDependency, ModelFormatError
from runlake.models.model import PYFUNC_FLAVOR, Model, ModelInfo
from runlake.models.signature import ModelSignature
from runlake.pyfunc import _flavor
from runlake.pyfunc.loader import add_code_to_path

__all__ = [
    "FLAVOR_NAME",
    "SERIALIZATION_FORMAT_CLOUDPICKLE",
    "SERIALIZATION_FORMAT_PICKLE",
    "SERIALIZATION_FORMAT_SKOPS",
    "load_model",
    "log_model",
    "save_model",
]

FLAVOR_NAME = "sklearn"
LOADER_MODULE = "mlflow.sklearn"
MODEL_FILE = "model.pkl"
SERIALIZATION_FORMAT_PICKLE = "pickle"
SERIALIZATION_FORMAT_CLOUDPICKLE = "cloudpickle"
SERIALIZATION_FORMAT_SKOPS = "skops"
_WRITABLE = (SERIALIZATION_FORMAT_CLOUDPICKLE, SERIALIZATION_FORMAT_PICKLE)

Requirements = Sequence[str] | str | Path | None


def save_model(
    sk_model: Any,
    path: str | Path,
    signature: ModelSignature | None = None,
    input_example: Any = None,
    pip_requirements: Requirements = None,
    extra_pip_requirements: Requirements = None,
    code_paths: Sequence[str | Path] | None = None,
    serialization_format: str = SERIALIZATION_FORMAT_CLOUDPICKLE,
    metadata: dict[str, Any] | None = None,
    pyfunc_predict_fn: str = "predict",
) -> None:
    """Save a fitted estimator into the new directory ``path``.

    Without ``signature``, one is inferred from ``input_example`` and the estimator's
    ``pyfunc_predict_fn`` output on it (``predict`` by default).
    """
    if serialization_format not in _WRITABLE:
        raise InvalidArgument(
            f"unsupported serialization format {serialization_format!r}; use one of {_WRITABLE}",
            field="serialization_format",
        )
    if not callable(getattr(sk_model, pyfunc_predict_fn, None)):
        raise InvalidArgument(
            f"{type(sk_model).__name__} has no method {pyfunc_predict_fn!r}",
            field="pyfunc_predict_fn",
        )
    model_dir = _flavor.prepare_dir(path)
    code = _flavor.copy_code_paths(code_paths, model_dir)
    with (model_dir / MODEL_FILE).open("wb") as f:
        if serialization_format == SERIALIZATION_FORMAT_CLOUDPICKLE:
            _cloudpickle().dump(sk_model, f)
        else:
            pickle.dump(sk_model, f, protocol=pickle.DEFAULT_PROTOCOL)
    model = Model(metadata=metadata)
    model.add_flavor(
        PYFUNC_FLAVOR,
        loader_module=LOADER_MODULE,
        model_path=MODEL_FILE,
        predict_fn=pyfunc_predict_fn,
        code=code,
    )
    model.add_flavor(
        FLAVOR_NAME,
        pickled_model=MODEL_FILE,
        sklearn_version=installed_version("scikit-learn"),
        serialization_format=serialization_format,
        code=code,
    )
    defaults = ["scikit-learn", "numpy", "pandas"]
    if serialization_format == SERIALIZATION_FORMAT_CLOUDPICKLE:
        defaults.append("cloudpickle")
    _flavor.complete(
        model,
        model_dir,
        requirements=resolve_requirements(defaults, pip_requirements, extra_pip_requirements),
        signature=signature,
        input_example=input_example,
    )


def log_model(
    sk_model: Any,
    artifact_path: str | None = None,
    *,
    name: str | None = None,
    registered_model_name: str | None = None,
    **kwargs: Any,
) -> ModelInfo:
    """Save to a temporary directory and log it as the active run's ``name`` artifacts."""
    return _flavor.log_with(
        save_model, artifact_path, name, registered_model_name, sk_model=sk_model, **kwargs
    )


def load_model(model_uri: str | os.PathLike[str]) -> Any:
    """The estimator saved at ``model_uri`` (runlake's or MLflow's sklearn flavor)."""
    model_dir = _hooks.download_model(model_uri)
    meta = Model.load(model_dir)
    conf = meta.flavor(FLAVOR_NAME)
    add_code_to_path(model_dir, conf.get("code"))
    return _load_estimator(model_dir, conf)


def _cloudpickle() -> Any:
    return importlib.import_module("cloudpickle")


def _load_estimator(model_dir: Path, conf: dict[str, Any]) -> Any:
    fmt = conf.get("serialization_format", SERIALIZATION_FORMAT_PICKLE)
    path = model_dir / str(conf.get("pickled_model", MODEL_FILE))
    if fmt == SERIALIZATION_FORMAT_SKOPS:
        try:
            skops_io = importlib.import_module("skops.io")
        except ImportError:
            raise MissingFlavorDependency(
                "this model was saved in the skops format, which needs the skops package; "
                "install it, or save the model with serialization_format='cloudpickle'",
                field="flavors.sklearn.serialization_format",
            ) from None
        return skops_io.load(path, trusted=conf.get("skops_trusted_types"))
    if fmt not in _WRITABLE:
        raise ModelFormatError(
            f"unknown serialization format {fmt!r}", field="flavors.sklearn.serialization_format"
        )
    with path.open("rb") as f:
        # pickle.load reads cloudpickle files too (cloudpickle only adds reducers)
        return pickle.load(f)


class _SklearnImpl:
    """Calls the estimator's predict function named in MLmodel (``predict`` by default)."""

    def __init__(self, estimator: Any, predict_fn: str) -> None:
        self.raw_model = estimator
        self._predict: Any = getattr(estimator, predict_fn, None)
        if not callable(self._predict):
            raise ModelFormatError(
                f"{type(estimator).__name__} has no method {predict_fn!r}",
                field="flavors.python_function.predict_fn",
            )

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        return self._predict(data)


def _load_pyfunc(
    model_dir: Path,
    meta: Model,
    conf: dict[str, Any],
    model_config: dict[str, Any] | None = None,
) -> _SklearnImpl:
    """The python_function view of an sklearn model (called by runlake.pyfunc.load_model)."""
    if FLAVOR_NAME in meta.flavors:
        sk_conf = dict(meta.flavors[FLAVOR_NAME])
    else:  # only a python_function flavor: MLflow then assumes plain pickle
        sk_conf = {"serialization_format": SERIALIZATION_FORMAT_PICKLE}
    sk_conf.setdefault("pickled_model", conf.get("model_path") or conf.get("data") or MODEL_FILE)
    add_code_to_path(model_dir, sk_conf.get("code"))
    estimator = _load_estimator(model_dir, sk_conf)
    return _SklearnImpl(estimator, str(conf.get("predict_fn") or "predict"))
