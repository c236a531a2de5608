"""The steps every flavor's ``save_model`` and ``log_model`` share.

Order matters: the model's files, then the environment and the input example, then (when
no signature was given but an example was) the signature inferred by loading the saved
model back through ``load_model`` and scoring the example — the very path that will serve
it — and last the MLmodel file, whose presence marks a complete model directory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from runlake.errors import AlreadyExists, InvalidArgument
from runlake.models import _hooks
from runlake.models.environment import python_version, write_environment
from runlake.models.input_example import save_input_example
from runlake.models.model import PYFUNC_FLAVOR, Model, ModelInfo, finish
from runlake.models.signature import ModelSignature, infer_signature

__all__ = ["complete", "copy_code_paths", "copy_into", "log_with", "prepare_dir"]

CODE_DIR = "code"

PathLike = str | os.PathLike[str]


def prepare_dir(path: PathLike) -> Path:
    """Create the model directory; refuse one that exists with content (never overwrite)."""
    target = Path(path)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise AlreadyExists(f"{target.name!r} already exists and is not empty", field="path")
    target.mkdir(parents=True, exist_ok=True)
    return target


def copy_into(src: Path, dst_dir: Path, name: str | None = None) -> Path:
    """Copy a file or directory into ``dst_dir`` (keeping its base name unless ``name``)."""
    if not src.exists():
        raise InvalidArgument(f"no such file or directory: {src.name!r}", field=str(src))
    dst_dir.mkdir(parents=True, exist_ok=True)
    dst = dst_dir / (name or src.name)
    if src.is_dir():
        shutil.copytree(src, dst)
    else:
        shutil.copy2(src, dst)
    return dst


def copy_code_paths(code_paths: Sequence[PathLike] | None, model_dir: Path) -> str | None:
    """Copy ``code_paths`` into ``code/`` (put on ``sys.path`` at load); its name, or None."""
    if not code_paths:
        return None
    for p in code_paths:
        copy_into(Path(p), model_dir / CODE_DIR)
    return CODE_DIR


def complete(
    model: Model,
    model_dir: Path,
    *,
    requirements: Sequence[str],
    signature: ModelSignature | None,
    input_example: Any,
) -> None:
    """Environment, input example, signature and finally MLmodel."""
    env = write_environment(model_dir, requirements)
    pyfunc_conf = model.flavors[PYFUNC_FLAVOR]
    pyfunc_conf["env"] = env
    pyfunc_conf["python_version"] = python_version()
    if input_example is not None:
        model.saved_input_example_info = save_input_example(input_example, model_dir)
    model.signature = signature
    if signature is None and input_example is not None:
        model.signature = _infer_from_example(model_dir, model, input_example)
    finish(model, model_dir)


def _infer_from_example(model_dir: Path, model: Model, example: Any) -> ModelSignature | None:
    """Input schema from the example; output schema from scoring it with the saved model."""
    from runlake.pyfunc.loader import load_model

    try:
        inputs = infer_signature(example)
    except InvalidArgument as e:
        warnings.warn(f"no signature inferred from the input example: {e}", stacklevel=4)
        return None
    model.signature = inputs  # so predict shapes the example as it will shape real input
    model.save(model_dir)
    try:
        output = load_model(model_dir).predict(example)
    except Exception as e:  # a model may fail on its own example; keep the input schema
        warnings.warn(f"could not score the input example: {e!r}", stacklevel=4)
        return inputs
    try:
        return infer_signature(example, output)
    except InvalidArgument as e:
        warnings.warn(f"no output schema inferred: {e}", stacklevel=4)
        return inputs


def log_with(
    save: Callable[..., None],
    artifact_path: str | None,
    name: str | None,
    registered_model_name: str | None,
    **save_kwargs: Any,
) -> ModelInfo:
    """Save into a temporary directory, stamp run and path, and hand it to the upload hook."""
    path = name or artifact_path or "model"
    with tempfile.TemporaryDirectory(prefix="runlake-model-") as tmp:
        local = Path(tmp) / "model"
        save(path=local, **save_kwargs)
        meta = Model.load(local)
        meta.artifact_path = path
        meta.run_id = _hooks.active_run_id()
        meta.save(local)
        return _hooks.upload_model_dir(local, path, registered_model_name=registered_model_name)
