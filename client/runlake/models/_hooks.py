"""The model format's only contact with the tracking server: three seams, kept tiny.

Every flavor's ``log_model`` and ``load_model`` reach artifacts through these functions
(looked up on this module at call time), so wiring runs and the registry means replacing
their bodies here and nothing in the flavors:

- ``download_model(uri)``: a local directory for a model URI. Local paths and ``file://``
  are resolved here; ``runs:/<run_id>/<path>`` and ``models:/<name>/<version|stage|@alias>``
  (and any other scheme) raise UnsupportedModelUri until artifact downloads exist;
- ``upload_model_dir(local_dir, artifact_path)``: store a saved model directory as the
  active run's artifacts (and register it) and describe it; unsupported until then;
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
    """A local directory holding the model at ``uri`` (no copy for local paths)."""
    text = os.fspath(uri)
    parsed = urlparse(text)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise UnsupportedModelUri(f"file URI with a remote host: {text!r}", field="model_uri")
        return Path(unquote(parsed.path))
    if not parsed.scheme or (len(parsed.scheme) == 1 and os.name == "nt"):  # C:\ on Windows
        return Path(text)
    raise UnsupportedModelUri(
        f"cannot resolve {text!r} yet: runlake loads models from local paths and file:// "
        "URIs; runs:/ and models:/ need artifact downloads, which are not wired",
        field="model_uri",
    )


def upload_model_dir(
    local_dir: Path, artifact_path: str, *, registered_model_name: str | None = None
) -> ModelInfo:
    """Store ``local_dir`` as the run's artifacts under ``artifact_path``; not wired yet."""
    model = Model.load(local_dir)
    raise UnsupportedModelUri(
        f"log_model cannot upload model {model.model_uuid} to {artifact_path!r} yet: "
        "artifact storage is not wired; use save_model(path) for now",
        field="artifact_path",
    )


def active_run_id() -> str | None:
    """The id of the innermost active run, or None."""
    from runlake.fluent import active_run

    run = active_run()
    return None if run is None else run.info.run_id
