"""The model format's only contact with the tracking server: three seams, kept tiny.

Every flavor's ``log_model`` and ``load_model`` reach the server through these functions
(looked up on this module at call time), so the flavors know nothing of transport:

- ``download_model(uri)``: a local directory for a model URI: local paths and ``file://``
  as they are, ``runs:/`` and ``models:/`` downloaded through the artifact service;
- ``upload_model_dir(local_dir, artifact_path)``: store a saved model directory as the
  run's artifacts, register it when asked, and describe it;
- ``active_run_id()``: the run ``log_model`` stamps into MLmodel.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from runlake.models.errors import UnsupportedModelUri
from runlake.models.model import Model, ModelInfo

__all__ = ["active_run_id", "download_model", "upload_model_dir"]


def download_model(uri: str | os.PathLike[str]) -> Path:
    """A local directory holding the model at ``uri`` (no copy for local paths).

    ``runs:/<run_id>/<path>`` and ``models:/<name>/<version|stage>`` / ``models:/<name>@<alias>``
    are downloaded from the tracking server (RUNLAKE_TRACKING_URI or set_tracking_uri) into
    a new temporary directory.
    """
    text = os.fspath(uri)
    parsed = urlparse(text)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise UnsupportedModelUri(f"file URI with a remote host: {text!r}", field="model_uri")
        return Path(unquote(parsed.path))
    if not parsed.scheme or (len(parsed.scheme) == 1 and os.name == "nt"):  # C:\ on Windows
        return Path(text)
    if parsed.scheme in ("runs", "models"):
        from runlake.artifacts import download_artifacts

        return Path(download_artifacts(text))
    raise UnsupportedModelUri(
        f"cannot load a model from {text!r}: use a local path, file://, runs:/ or models:/",
        field="model_uri",
    )


def upload_model_dir(
    local_dir: Path, artifact_path: str, *, registered_model_name: str | None = None
) -> ModelInfo:
    """Store ``local_dir`` as the run's artifacts under ``artifact_path`` (and register it)."""
    from runlake._session import session

    model = Model.load(local_dir)
    if model.run_id is None:
        raise UnsupportedModelUri("log_model needs a run", field="run_id")
    client = session.client()
    client.log_artifacts(model.run_id, str(local_dir), artifact_path)
    model_uri = f"runs:/{model.run_id}/{artifact_path}"
    info = model.get_model_info(model_uri)
    if registered_model_name is not None:
        from runlake.fluent import register_model

        info.registered_model_version = int(
            register_model(model_uri, registered_model_name).version
        )
    return info


def active_run_id() -> str:
    """The id of the innermost active run, starting one when there is none (as MLflow does)."""
    from runlake.fluent import _run_id

    return _run_id()
