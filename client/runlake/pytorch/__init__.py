"""The pytorch flavor, available only where torch is installed (it is never a dependency).

torch is imported lazily, on the first save or load, so ``import runlake.pytorch`` always
works and a missing torch is a MissingFlavorDependency (also an ImportError) saying what to
install. The layout is MLflow's: the whole module saved with ``torch.save`` into
``data/model.pth`` (cloudpickle as the pickle module), a ``pytorch`` flavor (``model_data``,
``pytorch_version``) and a python_function flavor with ``loader_module: mlflow.pytorch``.
See docs/decisions/0008-model-format.md.
"""

from __future__ import annotations

import contextlib
import importlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from runlake.models import _hooks
from runlake.models.environment import installed_version, resolve_requirements
from runlake.models.errors import MissingFlavorDependency
from runlake.models.model import PYFUNC_FLAVOR, Model, ModelInfo
from runlake.models.signature import ModelSignature
from runlake.pyfunc import _flavor
from runlake.pyfunc.loader import add_code_to_path

__all__ = ["FLAVOR_NAME", "load_model", "log_model", "save_model"]

FLAVOR_NAME = "pytorch"
LOADER_MODULE = "mlflow.pytorch"
DATA_DIR = "data"
MODEL_FILE = "model.pth"
#: MLflow reads this file to pick the unpickler; its module is a cloudpickle alias.
PICKLE_MODULE_NAME = "mlflow.pytorch.pickle_module"
PICKLE_MODULE_INFO = "pickle_module_info.txt"

Requirements = Sequence[str] | str | Path | None


def _torch() -> Any:
    """torch, imported on first use; MissingFlavorDependency when it is not installed."""
    try:
        return importlib.import_module("torch")
    except ImportError:
        raise MissingFlavorDependency(
            "the pytorch flavor needs torch, which is not installed (runlake does not depend "
            "on it): pip install torch",
            field="torch",
        ) from None


def save_model(
    pytorch_model: Any,
    path: str | Path,
    signature: ModelSignature | None = None,
    input_example: Any = None,
    pip_requirements: Requirements = None,
    extra_pip_requirements: Requirements = None,
    code_paths: Sequence[str | Path] | None = None,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Save a ``torch.nn.Module`` (whole, not just its state dict) into ``path``."""
    torch = _torch()
    cloudpickle = importlib.import_module("cloudpickle")
    model_dir = _flavor.prepare_dir(path)
    code = _flavor.copy_code_paths(code_paths, model_dir)
    data = model_dir / DATA_DIR
    data.mkdir()
    torch.save(pytorch_model, str(data / MODEL_FILE), pickle_module=cloudpickle)
    (data / PICKLE_MODULE_INFO).write_text(PICKLE_MODULE_NAME)
    model = Model(metadata=metadata)
    model.add_flavor(
        PYFUNC_FLAVOR,
        loader_module=LOADER_MODULE,
        data=DATA_DIR,
        pickle_module_name=PICKLE_MODULE_NAME,
        code=code,
    )
    model.add_flavor(
        FLAVOR_NAME,
        model_data=DATA_DIR,
        pytorch_version=str(getattr(torch, "__version__", installed_version("torch"))),
        code=code,
    )
    _flavor.complete(
        model,
        model_dir,
        requirements=resolve_requirements(
            ["torch", "cloudpickle", "numpy", "pandas"], pip_requirements, extra_pip_requirements
        ),
        signature=signature,
        input_example=input_example,
    )


def log_model(
    pytorch_model: Any,
    artifact_path: str | None = None,
    *,
    name: str | None = None,
    registered_model_name: str | None = None,
    **kwargs: Any,
) -> ModelInfo:
    """Save to a temporary directory and log it as the active run's ``name`` artifacts."""
    return _flavor.log_with(
        save_model,
        artifact_path,
        name,
        registered_model_name,
        pytorch_model=pytorch_model,
        **kwargs,
    )


def load_model(model_uri: str | os.PathLike[str]) -> Any:
    """The ``torch.nn.Module`` saved at ``model_uri`` (runlake's or MLflow's)."""
    model_dir = _hooks.download_model(model_uri)
    meta = Model.load(model_dir)
    conf = meta.flavor(FLAVOR_NAME)
    add_code_to_path(model_dir, conf.get("code"))
    return _load_module(model_dir / str(conf.get("model_data", DATA_DIR)))


def _load_module(data: Path) -> Any:
    torch = _torch()
    path = data / MODEL_FILE if data.is_dir() else data
    # the file is a full pickle of the module (what MLflow writes), hence weights_only=False
    return torch.load(str(path), weights_only=False)


class _TorchImpl:
    """Scores with ``torch.no_grad()`` in eval mode; numpy in, numpy (or DataFrame) out."""

    def __init__(self, module: Any) -> None:
        self.raw_model = module
        if hasattr(module, "eval"):
            module.eval()

    def predict(self, data: Any, params: dict[str, Any] | None = None) -> Any:
        torch = _torch()
        frame = isinstance(data, pd.DataFrame)
        if frame:
            arr: Any = _writable(data.to_numpy(dtype=np.float32))
        elif isinstance(data, dict):
            arr = {k: torch.as_tensor(_writable(np.asarray(v))) for k, v in data.items()}
        else:
            arr = _writable(np.asarray(data))
        no_grad = getattr(torch, "no_grad", contextlib.nullcontext)
        with no_grad():
            out = self.raw_model(arr if isinstance(arr, dict) else torch.as_tensor(arr))
        if hasattr(out, "detach"):
            out = out.detach().cpu().numpy()
        return pd.DataFrame(out) if frame else out


def _writable(arr: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """``arr``, copied if read-only: a tensor shares its array's memory and torch warns
    (undefined behaviour if written) on a read-only one, which pandas' copy-on-write gives."""
    return arr if arr.flags.writeable else arr.copy()


def _load_pyfunc(
    model_dir: Path,
    meta: Model,
    conf: dict[str, Any],
    model_config: dict[str, Any] | None = None,
) -> _TorchImpl:
    """The python_function view of a pytorch model (called by runlake.pyfunc.load_model)."""
    data = conf.get("data") or meta.flavors.get(FLAVOR_NAME, {}).get("model_data") or DATA_DIR
    return _TorchImpl(_load_module(model_dir / str(data)))
