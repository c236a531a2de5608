"""Artifact URIs the MLflow way: ``runs:/<run_id>/<path>`` and ``models:/…`` downloads.

``runlake.artifacts.download_artifacts`` mirrors ``mlflow.artifacts.download_artifacts``
for the URIs a model registry user passes around; the per-run calls live on
:class:`runlake.RunlakeClient` and in the fluent API.
"""

from __future__ import annotations

from runlake._artifacts import FileInfo
from runlake.artifact_paths import check_artifact_path
from runlake.errors import InvalidArgument

__all__ = ["FileInfo", "download_artifacts", "parse_runs_uri"]


def parse_runs_uri(uri: str) -> tuple[str, str]:
    """(run_id, path) of ``runs:/<run_id>/<path>`` (path may be empty)."""
    if not uri.startswith("runs:/"):
        raise InvalidArgument(f"{uri!r} is not a runs:/ URI", field="artifact_uri")
    rest = uri[len("runs:/") :].strip("/")
    run_id, _, path = rest.partition("/")
    if not run_id:
        raise InvalidArgument(f"{uri!r} names no run", field="artifact_uri")
    return run_id, check_artifact_path(path.strip("/"), "artifact_uri", allow_root=True)


def download_artifacts(
    artifact_uri: str | None = None,
    *,
    run_id: str | None = None,
    artifact_path: str | None = None,
    dst_path: str | None = None,
    tracking_uri: str | None = None,
) -> str:
    """Download artifacts to ``dst_path`` (a new temporary directory when None); the local path.

    Give either ``artifact_uri`` (``runs:/<run_id>/<path>`` or ``models:/<name>/<version>``,
    ``models:/<name>@<alias>``, ``models:/<name>/<stage>``) or ``run_id`` with an optional
    ``artifact_path``.
    """
    from runlake.client import RunlakeClient

    client = RunlakeClient(tracking_uri)
    if artifact_uri is not None:
        if run_id is not None or artifact_path is not None:
            raise InvalidArgument(
                "give artifact_uri or run_id/artifact_path, not both", field="artifact_uri"
            )
        if artifact_uri.startswith("models:/"):
            run_id, artifact_path = client.resolve_model_uri(artifact_uri)
        else:
            run_id, artifact_path = parse_runs_uri(artifact_uri)
    if run_id is None:
        raise InvalidArgument("give artifact_uri or run_id", field="run_id")
    return client.download_artifacts(run_id, artifact_path or "", dst_path)
