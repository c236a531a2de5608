"""Artifact transfers for RunlakeClient: proxied gRPC streams or presigned direct URLs.

Uploads read files in 1 MiB chunks and hash as they go, so a file of several GB is
never held in memory; the trailer carries size and sha256 and the gateway refuses the
upload (leaving nothing) when they disagree with what arrived. Downloads land in a
temporary file beside the destination and are renamed at the end, so an interrupted
download never leaves a half file under the final name.

Mode: ``proxied`` (default; the gateway holds the store credentials) or ``direct``
(RUNLAKE_ARTIFACT_MODE=direct: the client PUTs/GETs presigned URLs the gateway issues;
needs an S3 store).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import grpc

from runlake._preallocate import NoRoom, reserve
from runlake._wire import DOWNLOAD_DATA, UPLOAD_DATA, bytes_field, sole_bytes_field
from runlake.artifact_paths import check_artifact_path, join_artifact_path
from runlake.errors import InvalidArgument, NotFound, RunlakeError
from runlake.v1 import artifacts_pb2, artifacts_pb2_grpc

__all__ = ["ArtifactTransfer", "FileInfo", "artifact_mode"]

CHUNK = 1024 * 1024
_HTTP_TIMEOUT_S = 300
#: A direct upload larger than this asks for its URLs to last an hour (the most) instead of
#: the default 15 minutes: at 20 MB/s a GiB takes a minute, a multipart upload many more.
_LONG_UPLOAD_BYTES = 1024**3
_LONG_EXPIRY_S = 3600
# A transfer of several GB takes a while; the stream itself is the progress.
_RPC_TIMEOUT_S = 24 * 3600


@dataclass(frozen=True)
class FileInfo:
    """One entry of a run's artifacts, as MLflow's ``FileInfo``: path relative to the root."""

    path: str
    is_dir: bool
    file_size: int | None


def artifact_mode() -> str:
    mode = os.environ.get("RUNLAKE_ARTIFACT_MODE", "proxied").strip().lower() or "proxied"
    if mode not in ("proxied", "direct"):
        raise InvalidArgument(f"{mode!r}: use 'proxied' or 'direct'", field="RUNLAKE_ARTIFACT_MODE")
    return mode


def _read(f: BinaryIO, n: int, digest: Any) -> Iterator[bytes]:
    """The next ``n`` bytes of ``f`` in chunks, hashed on the way; the file must not shrink."""
    while n > 0:
        chunk = f.read(min(CHUNK, n))
        if not chunk:
            raise RunlakeError("the file shrank while it was being uploaded", field="local_path")
        digest.update(chunk)
        n -= len(chunk)
        yield chunk


def _put(url: str, body: Iterator[bytes], size: int, path: str) -> str:
    """PUT ``size`` bytes to a presigned URL; the ETag the store answered."""
    req = urllib.request.Request(
        url, data=body, method="PUT", headers={"Content-Length": str(size)}
    )
    try:
        with urllib.request.urlopen(req, timeout=_HTTP_TIMEOUT_S) as resp:
            resp.read()
            return str(resp.headers.get("ETag", "")).strip('"')
    except OSError as exc:
        raise RunlakeError(f"direct upload of {path!r} failed: {exc}", field="path") from None


def _chunks(path: Path, digest: Any, sizes: list[int]) -> Iterator[bytes]:
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            sizes[0] += len(chunk)
            yield chunk


class ArtifactTransfer:
    """The artifact calls of one client; ``call`` maps gRPC errors to runlake errors.

    Upload and Download carry encoded messages (bytes) rather than message objects, so the
    data chunks skip protobuf's copies (``runlake._wire``); the messages are the same.
    """

    def __init__(
        self,
        channel: grpc.Channel,
        metadata: Any,
        error: Callable[[grpc.RpcError], RunlakeError],
    ) -> None:
        self._stub = artifacts_pb2_grpc.ArtifactsStub(channel)
        self._upload = channel.stream_unary(
            "/runlake.v1.Artifacts/Upload",
            request_serializer=None,
            response_deserializer=artifacts_pb2.UploadResponse.FromString,
        )
        self._download = channel.unary_stream(
            "/runlake.v1.Artifacts/Download",
            request_serializer=artifacts_pb2.DownloadRequest.SerializeToString,
            response_deserializer=None,
        )
        self._metadata = metadata
        self._error = error

    def _call(self, fn: Callable[..., Any], request: Any) -> Any:
        try:
            return fn(request, timeout=_RPC_TIMEOUT_S, metadata=self._metadata)
        except grpc.RpcError as exc:
            raise self._error(exc) from None

    # -- upload --

    def upload_file(self, run_id: str, local: Path, path: str) -> artifacts_pb2.UploadResponse:
        check_artifact_path(path, "artifact_path")
        if not local.is_file():
            raise InvalidArgument(f"{str(local)!r} is not a file", field="local_path")
        if artifact_mode() == "direct":
            return self._upload_direct(run_id, local, path)
        digest = hashlib.sha256()
        sizes = [0]

        def messages() -> Iterator[bytes]:
            header = artifacts_pb2.UploadHeader(run_id=run_id, path=path)
            yield artifacts_pb2.UploadChunk(header=header).SerializeToString()
            for chunk in _chunks(local, digest, sizes):
                yield bytes_field(UPLOAD_DATA, chunk)
            trailer = artifacts_pb2.UploadTrailer(size=sizes[0], sha256=digest.hexdigest())
            yield artifacts_pb2.UploadChunk(trailer=trailer).SerializeToString()

        response: artifacts_pb2.UploadResponse = self._call(self._upload, messages())
        return response

    def _upload_direct(self, run_id: str, local: Path, path: str) -> artifacts_pb2.UploadResponse:
        size = local.stat().st_size
        ask = artifacts_pb2.CreateUrlRequest(
            run_id=run_id,
            path=path,
            size=size,
            expires_in_s=_LONG_EXPIRY_S if size > _LONG_UPLOAD_BYTES else 0,
        )
        up: artifacts_pb2.CreateUrlResponse = self._call(self._stub.CreateUploadUrl, ask)
        digest = hashlib.sha256()
        commit = artifacts_pb2.CommitUploadRequest(run_id=run_id, path=path)
        with local.open("rb") as f:
            if not up.upload_id:
                _put(up.url, _read(f, size, digest), size, path)
            else:  # one PUT per part, in order, each streamed from the file
                try:
                    for i, url in enumerate(up.part_urls):
                        n = min(up.part_size, size - i * up.part_size)
                        commit.etags.append(_put(url, _read(f, n, digest), n, path))
                except BaseException:
                    abandon = artifacts_pb2.AbortUploadRequest(
                        run_id=run_id, path=path, upload_id=up.upload_id
                    )
                    with contextlib.suppress(RunlakeError):
                        self._call(self._stub.AbortUpload, abandon)
                    raise
                commit.upload_id = up.upload_id
        commit.sha256 = digest.hexdigest()
        response: artifacts_pb2.UploadResponse = self._call(self._stub.CommitUpload, commit)
        return response

    def upload_dir(self, run_id: str, local_dir: Path, artifact_path: str | None) -> int:
        if not local_dir.is_dir():
            raise InvalidArgument(f"{str(local_dir)!r} is not a directory", field="local_dir")
        files = sorted(p for p in local_dir.rglob("*") if p.is_file())
        for f in files:
            rel = f.relative_to(local_dir).as_posix()
            self.upload_file(run_id, f, join_artifact_path(artifact_path, rel))
        return len(files)

    def upload_bytes(self, run_id: str, data: bytes, artifact_file: str) -> None:
        check_artifact_path(artifact_file, "artifact_file")
        with tempfile.TemporaryDirectory(prefix="runlake-") as tmp:
            local = Path(tmp) / "artifact"
            local.write_bytes(data)
            self.upload_file(run_id, local, artifact_file)

    # -- read --

    def list(self, run_id: str, path: str | None) -> list[FileInfo]:
        req = artifacts_pb2.ListArtifactsRequest(
            run_id=run_id, path=check_artifact_path((path or "").strip("/"), allow_root=True)
        )
        resp: artifacts_pb2.ListArtifactsResponse = self._call(self._stub.ListArtifacts, req)
        prefix = f"{req.path}/" if req.path else ""
        for f in resp.files:  # a key written to the store behind runlake's back
            if not f.path.startswith(prefix) or "/" in f.path[len(prefix) :]:
                raise RunlakeError(f"the store lists {f.path!r} under {req.path!r}", field="path")
            check_artifact_path(f.path, "path")
        return [FileInfo(f.path, f.is_dir, None if f.is_dir else f.size) for f in resp.files]

    def download(self, run_id: str, path: str, dst: Path) -> Path:
        """Download a file or (recursively) a directory to ``dst``/basename; the local path."""
        path = check_artifact_path(path.strip("/"), allow_root=True)
        entries = self.list(run_id, path) if path == "" else None
        if entries is None:
            parent = path.rpartition("/")[0]
            match = [e for e in self.list(run_id, parent) if e.path == path]
            if match and not match[0].is_dir:
                out = dst / path.rpartition("/")[2]
                self._download_file(run_id, path, out)
                return out
            entries = self.list(run_id, path)
            if not match and not entries:
                raise NotFound(f"the run has no artifact {path!r}", field="path")
        base = dst / path.rpartition("/")[2] if path else dst
        base.mkdir(parents=True, exist_ok=True)
        for e in entries:
            if e.is_dir:
                self.download(run_id, e.path, base)
            else:
                self._download_file(run_id, e.path, base / e.path.rpartition("/")[2])
        return base

    def _download_file(self, run_id: str, path: str, out: Path) -> None:
        """Download one file to ``out``, through a ``.part`` file renamed when complete."""
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as f:
                if artifact_mode() == "direct":
                    url = self._call(
                        self._stub.CreateDownloadUrl,
                        artifacts_pb2.CreateUrlRequest(run_id=run_id, path=path),
                    ).url
                    with urllib.request.urlopen(url, timeout=_HTTP_TIMEOUT_S) as resp:
                        size = int(resp.headers.get("Content-Length") or -1)
                        _reserve(f, size, out)
                        while chunk := resp.read(CHUNK):
                            f.write(chunk)
                else:
                    size = self._download_stream(run_id, path, f, out)
                if size >= 0 and f.tell() != size:
                    raise RunlakeError(
                        f"the download of {path!r} ended after {f.tell()} of {size} bytes",
                        field="path",
                    )
            os.replace(tmp, out)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def _download_stream(self, run_id: str, path: str, f: BinaryIO, out: Path) -> int:
        """Stream the file into ``f``; its size, as the first chunk announced it."""
        size = -1
        req = artifacts_pb2.DownloadRequest(run_id=run_id, path=path)
        try:
            for message in self._call(self._download, req):
                data: bytes | memoryview | None = sole_bytes_field(message, DOWNLOAD_DATA)
                if data is None:  # the first chunk also carries the size: protobuf parses it
                    chunk = artifacts_pb2.DownloadChunk.FromString(message)
                    if size < 0:
                        size = chunk.size
                        _reserve(f, size, out)
                    data = chunk.data
                f.write(data)
        except grpc.RpcError as exc:
            raise self._error(exc) from None
        return size


def _reserve(f: BinaryIO, size: int, out: Path) -> None:
    """Reserve the download's size up front (``runlake._preallocate``); no room fails now."""
    try:
        reserve(f.fileno(), size)
    except NoRoom as exc:
        raise RunlakeError(
            f"no room for {size} bytes in {str(out.parent)!r}: {exc.strerror}", field="dst_path"
        ) from None


def dict_bytes(data: Any, artifact_file: str) -> bytes:
    """A dict as JSON, or YAML when the file name says .yaml/.yml (MLflow's log_dict rule)."""
    if artifact_file.endswith((".yaml", ".yml")):
        import yaml

        return yaml.safe_dump(data, default_flow_style=False, sort_keys=False).encode()
    return json.dumps(data, indent=2).encode()


_PLOTLY_IMAGES = ("png", "jpeg", "jpg", "webp", "svg", "pdf")


def figure_bytes(figure: Any, artifact_file: str) -> bytes:
    """A matplotlib or plotly figure rendered in the format its file name's extension names.

    matplotlib: any format its ``savefig`` knows (png, svg, pdf, jpg…). plotly, as MLflow
    does: ``.html`` (plotly.js loaded from its CDN), images through kaleido; and ``.json``
    (plotly's own figure JSON, ``plotly.io.from_json`` reads it back), which needs nothing
    else installed.
    """
    import io

    name = artifact_file.rpartition("/")[2]
    ext = name.rpartition(".")[2].lower() if "." in name else ""
    if not ext:
        raise InvalidArgument(
            f"{artifact_file!r} has no extension to choose the format by (.png, .svg, .html…)",
            field="artifact_file",
        )
    module = type(figure).__module__
    if module.startswith("matplotlib"):
        buf = io.BytesIO()
        try:
            figure.savefig(buf, format=ext)
        except ValueError as exc:  # "Format 'xyz' is not supported (supported formats: …)"
            raise InvalidArgument(str(exc), field="artifact_file") from None
        return buf.getvalue()
    if module.startswith("plotly"):
        if ext in ("html", "htm"):
            return str(figure.to_html(include_plotlyjs="cdn", full_html=True)).encode()
        if ext == "json":
            return str(figure.to_json()).encode()
        if ext not in _PLOTLY_IMAGES:
            raise InvalidArgument(
                f"plotly figures are saved as .html, .json or {', .'.join(_PLOTLY_IMAGES)}; "
                f"got {artifact_file!r}",
                field="artifact_file",
            )
        try:
            return bytes(figure.to_image(format=ext))
        except (ValueError, ImportError, RuntimeError) as exc:  # kaleido or its Chrome missing
            why = " ".join(str(exc).split())
            raise InvalidArgument(
                f"plotly could not render {ext}: {why} Images need the kaleido package "
                "(and Chrome); .html and .json need neither",
                field="artifact_file",
            ) from None
    raise InvalidArgument(
        f"a matplotlib or plotly figure, got {type(figure).__name__}", field="figure"
    )
