"""Custom Python models: a PythonModel subclass (or a plain function) plus its artifacts.

Saved as MLflow saves them — ``python_model.pkl`` (cloudpickle), artifacts copied under
``artifacts/``, ``code_paths`` under ``code/`` — with ``loader_module: mlflow.pyfunc.model``,
so ``mlflow.pyfunc.load_model`` loads them, and runlake loads MLflow's the same way.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from runlake.errors import InvalidArgument
from runlake.models import _hooks
from runlake.models.environment import installed_version, resolve_requirements
from runlake.models.errors import ModelFormatError
from runlake.models.model import PYFUNC_FLAVOR, Model, ModelInfo
from runlake.models.signature import ModelSignature
from runlake.pyfunc import _flavor, _pickle
from runlake.pyfunc._base import PythonModel, PythonModelContext, _FunctionModel

__all__ = ["log_model", "save_model"]

LOADER_MODULE = "mlflow.pyfunc.model"
PICKLE_FILE = "python_model.pkl"
ARTIFACTS_DIR = "artifacts"
DEFAULT_REQUIREMENTS = ("cloudpickle", "numpy", "pandas")

Requirements = Sequence[str] | str | Path | None


def save_model(
    path: str | Path,
    python_model: PythonModel | Callable[[Any], Any],
    artifacts: Mapping[str, str] | None = None,
    signature: ModelSignature | None = None,
    input_example: Any = None,
    pip_requirements: Requirements = None,
    extra_pip_requirements: Requirements = None,
    code_paths: Sequence[str | Path] | None = None,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Save a custom model into the new directory ``path``.

    ``artifacts`` maps names to local paths or ``file://`` URIs; each is copied into the
    model and its local path handed to ``load_context`` as ``context.artifacts[name]``.
    ``code_paths`` (files or directories) are copied too and put on ``sys.path`` before
    unpickling, for classes defined in modules the loading side cannot import otherwise.
    Without ``signature``, one is inferred from ``input_example`` and the model's output.
    """
    if not isinstance(python_model, PythonModel):
        if not callable(python_model):
            raise InvalidArgument(
                "python_model must be a runlake.pyfunc.PythonModel or a callable",
                field="python_model",
            )
        python_model = _FunctionModel(python_model)
    model_dir = _flavor.prepare_dir(path)
    saved_artifacts = _copy_artifacts(artifacts or {}, model_dir)
    code = _flavor.copy_code_paths(code_paths, model_dir)
    _pickle.dump(python_model, model_dir / PICKLE_FILE)
    model = Model(metadata=metadata)
    conf: dict[str, Any] = {
        "loader_module": LOADER_MODULE,
        "python_model": PICKLE_FILE,
        "cloudpickle_version": installed_version("cloudpickle"),
        "code": code,
        "streamable": False,
    }
    if saved_artifacts:
        conf["artifacts"] = saved_artifacts
    model.add_flavor(PYFUNC_FLAVOR, **conf)
    _flavor.complete(
        model,
        model_dir,
        requirements=resolve_requirements(
            DEFAULT_REQUIREMENTS, pip_requirements, extra_pip_requirements
        ),
        signature=signature,
        input_example=input_example,
    )


def _copy_artifacts(artifacts: Mapping[str, str], model_dir: Path) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    used: set[str] = set()
    for name, uri in artifacts.items():
        local = _hooks.download_model(uri)
        if not local.exists():
            raise InvalidArgument(f"artifact not found: {uri!r}", field=f"artifacts.{name}")
        # artifacts/<file name>, or artifacts/<artifact name>/<file name> on a clash
        sub = Path(ARTIFACTS_DIR) if local.name not in used else Path(ARTIFACTS_DIR) / name
        used.add(local.name)
        copied = _flavor.copy_into(local, model_dir / sub)
        out[name] = {"path": copied.relative_to(model_dir).as_posix(), "uri": str(uri)}
    return out


def log_model(
    python_model: PythonModel | Callable[[Any], Any],
    artifact_path: str | None = None,
    *,
    name: str | None = None,
    registered_model_name: str | None = None,
    **kwargs: Any,
) -> ModelInfo:
    """Save to a temporary directory and log it as the active run's ``name`` artifacts.

    Takes ``save_model``'s keyword arguments; artifact upload is the lead's hook
    (``runlake.models._hooks.upload_model_dir``).
    """
    return _flavor.log_with(
        save_model,
        artifact_path,
        name,
        registered_model_name,
        python_model=python_model,
        **kwargs,
    )


class _PythonModelImpl:
    """Calls the user's predict with or without context, with params only if it takes them."""

    def __init__(self, python_model: Any, context: PythonModelContext) -> None:
        self.python_model = python_model
        self.context = context
        parameters = inspect.signature(python_model.predict).parameters
        positional = [p for p in parameters if p not in ("self", "params")]
        # MLflow's rule: predict(context, model_input, ...) when a parameter is named
        # "context" or there are two inputs besides params; else predict(model_input, ...)
        self._with_context = "context" in parameters or len(positional) == 2
        self._with_params = "params" in parameters

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        kwargs = {"params": params} if self._with_params else {}
        if self._with_context:
            return self.python_model.predict(self.context, data, **kwargs)
        return self.python_model.predict(data, **kwargs)


def _load_pyfunc(
    model_dir: Path,
    meta: Model,
    conf: dict[str, Any],
    model_config: dict[str, Any] | None = None,
) -> _PythonModelImpl:
    """Unpickle the python model, hand it its artifacts, wrap it for PyFuncModel."""
    pickled = conf.get("python_model")
    if not pickled:
        what = "models-from-code" if conf.get("model_code_path") else "no python_model entry"
        raise ModelFormatError(
            f"cannot load this custom model ({what}); runlake loads pickled PythonModels",
            field="flavors.python_function.python_model",
        )
    python_model = _pickle.load(model_dir / pickled, conf.get("python_model_compression"))
    artifacts = {
        name: str(model_dir / info["path"]) for name, info in (conf.get("artifacts") or {}).items()
    }
    context = PythonModelContext(artifacts, model_config)
    python_model.load_context(context)
    return _PythonModelImpl(python_model, context)
