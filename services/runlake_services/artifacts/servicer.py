"""The Artifacts gRPC service: proxied upload/download, listing, presigned direct access.

It sits at the gateway because writes need the gateway's checks: the run must exist
and not be deleted, the path must be canonical and stay under the run's artifact root,
and the root must lie inside the store this gateway serves (an experiment created with
a foreign ``artifact_location`` cannot make the gateway write elsewhere). Every stored
file is recorded as an ArtifactLogged event, so the ``events`` table audits artifacts
like every other write.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import grpc
from google.protobuf import message_factory
from google.protobuf.message import DecodeError
from runlake._wire import DOWNLOAD_DATA, UPLOAD_DATA, bytes_field, sole_bytes_field
from runlake.artifact_paths import check_artifact_path
from runlake.errors import Conflict, InvalidArgument, NotFound, RunlakeError
from runlake.v1 import artifacts_pb2, artifacts_pb2_grpc

from runlake_services.artifacts.s3_multipart import MAX_PARTS
from runlake_services.artifacts.store import ArtifactStore, key_within
from runlake_services.eventlog import Catalog
from runlake_services.gateway.servicer import Ingestor, abort, user_of

__all__ = ["ArtifactsServicer", "RunRoots", "add_artifacts_servicer"]

log = logging.getLogger(__name__)

_DEFAULT_EXPIRY_S = 15 * 60
_MAX_EXPIRY_S = 60 * 60
_MAX_CHUNK = 4 * 1024 * 1024

_SERVICE = artifacts_pb2.DESCRIPTOR.services_by_name["Artifacts"]
_HANDLER_KINDS = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def add_artifacts_servicer(servicer: ArtifactsServicer, server: grpc.Server) -> None:
    """Serve ``servicer`` on ``server``; Upload and Download take and give encoded messages.

    Their data chunks are framed by ``runlake._wire`` instead of protobuf (the bytes on the
    wire are the same), so those two have no request, resp. response, codec here. The table
    is built from the service's descriptor, as the generated ``add_…_to_server`` builds it.
    """
    handlers = {}
    for method in _SERVICE.methods:
        request = message_factory.GetMessageClass(method.input_type)
        response = message_factory.GetMessageClass(method.output_type)
        kind = _HANDLER_KINDS[(method.client_streaming, method.server_streaming)]
        handlers[method.name] = kind(
            getattr(servicer, method.name),
            request_deserializer=None if method.name == "Upload" else request.FromString,
            response_serializer=None if method.name == "Download" else response.SerializeToString,
        )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(_SERVICE.full_name, handlers),)
    )


def _upload_part(message: bytes, i: int) -> tuple[str | None, object]:
    """The oneof part an encoded UploadChunk holds, and its value.

    A chunk that is only its data (what the SDK and protobuf's own encoders write) comes back
    as a view into the message, uncopied; anything else is parsed by protobuf, so a chunk
    with fields this gateway does not know (a newer client's) still reads as its data.
    """
    data = sole_bytes_field(message, UPLOAD_DATA)
    if data is not None:
        return "data", data
    try:
        chunk = artifacts_pb2.UploadChunk.FromString(message)
    except DecodeError:
        raise InvalidArgument("not an UploadChunk message", field=f"chunks[{i}]") from None
    part = chunk.WhichOneof("part")
    return part, getattr(chunk, part) if part else None


@dataclass(frozen=True)
class RunRoots:
    """Maps a run to its artifact root's key in the store, checking the run on the way.

    ``catch_up``: on a gateway whose catalog tails a shared log, waits until the catalog
    has seen everything in the log (bounded; whether it did), so a run another gateway
    created a moment ago is found rather than answered NOT_FOUND.
    """

    catalog: Catalog
    store: ArtifactStore
    catch_up: Callable[[], bool] | None = None

    def root(self, run_id: str, *, for_write: bool) -> str:
        if not run_id:
            raise InvalidArgument("must not be empty", field="run_id")
        run = self.catalog.runs([run_id]).get(run_id)
        if run is None and self.catch_up is not None and self.catch_up():
            run = self.catalog.runs([run_id]).get(run_id)
        if run is None:
            raise NotFound(f"no run with id {run_id!r}", field="run_id")
        if for_write and run.lifecycle_stage != "active":
            raise Conflict(f"run {run_id} is deleted; restore it first", field="run_id")
        exp = self.catalog.experiment(run.experiment_id)
        if exp is None:  # the catalog writes both in one transaction; cannot happen
            raise NotFound(f"no experiment {run.experiment_id!r}", field="run_id")
        uri = f"{exp.artifact_location.rstrip('/')}/{run_id}/artifacts"
        key = key_within(self.store.root_uri, uri)
        if key is None:
            raise Conflict(
                f"the run's artifact root {uri} is outside this gateway's artifact store "
                f"{self.store.root_uri}",
                field="run_id",
            )
        return key

    def key(self, run_id: str, path: str, *, for_write: bool, allow_root: bool = False) -> str:
        check_artifact_path(path, "path", allow_root=allow_root)
        root = self.root(run_id, for_write=for_write)
        return "/".join(p for p in (root, path) if p)


def _expiry(requested: int) -> int:
    if requested < 0 or requested > _MAX_EXPIRY_S:
        raise InvalidArgument(f"must be between 0 and {_MAX_EXPIRY_S} s", field="expires_in_s")
    return requested or _DEFAULT_EXPIRY_S


class ArtifactsServicer(artifacts_pb2_grpc.ArtifactsServicer):
    def __init__(self, roots: RunRoots, ingestor: Ingestor) -> None:
        self._roots = roots
        self._store = roots.store
        self._ingestor = ingestor

    # Upload and Download are served with the framing of ``add_artifacts_servicer``: they
    # take and give encoded messages, not the message objects the generated base declares.
    def Upload(  # type: ignore[override]
        self, request_iterator: Iterator[bytes], context: grpc.ServicerContext
    ) -> artifacts_pb2.UploadResponse:
        path = ""
        try:
            first = next(request_iterator, None)
            part, header = _upload_part(first, 0) if first is not None else (None, None)
            if part != "header" or not isinstance(header, artifacts_pb2.UploadHeader):
                raise InvalidArgument("the first message must be the header", field="header")
            path = header.path
            key = self._roots.key(header.run_id, header.path, for_write=True)
            trailer: list[artifacts_pb2.UploadTrailer] = []

            def data() -> Iterator[bytes | memoryview]:
                for i, msg in enumerate(request_iterator, start=1):
                    part, value = _upload_part(msg, i)
                    if part == "data" and isinstance(value, bytes | memoryview):
                        if trailer:
                            raise InvalidArgument("data after the trailer", field=f"chunks[{i}]")
                        if len(value) > _MAX_CHUNK:
                            raise InvalidArgument(
                                f"{len(value)} bytes; at most {_MAX_CHUNK}", field=f"chunks[{i}]"
                            )
                        yield value
                    elif isinstance(value, artifacts_pb2.UploadTrailer):
                        trailer.append(value)
                    else:
                        raise InvalidArgument(f"unexpected {part} part", field=f"chunks[{i}]")

            def verify(size: int, sha: str) -> None:
                if not trailer:
                    raise InvalidArgument(
                        "the stream ended without a trailer: upload incomplete", field="trailer"
                    )
                t = trailer[0]
                if t.size != size:
                    raise InvalidArgument(
                        f"{size} bytes arrived, the trailer says {t.size}", field="trailer.size"
                    )
                if t.sha256 and t.sha256.lower() != sha:
                    raise InvalidArgument(
                        "the bytes that arrived have another sha256", field="trailer.sha256"
                    )

            stored = self._store.put(key, data(), verify)
            position = self._ingestor.record_artifact(
                header.run_id, header.path, stored.size, stored.sha256, user=user_of(context)
            )
            return artifacts_pb2.UploadResponse(
                path=header.path, size=stored.size, sha256=stored.sha256, position=str(position)
            )
        except RunlakeError as exc:
            abort(context, exc)
        except grpc.RpcError:  # the client cancelled or went away mid-stream: nothing stored
            log.info("upload of %r cancelled by the client", path)
            return artifacts_pb2.UploadResponse()

    def Download(  # type: ignore[override]
        self, request: artifacts_pb2.DownloadRequest, context: grpc.ServicerContext
    ) -> Iterator[bytes]:
        try:
            key = self._roots.key(request.run_id, request.path, for_write=False)
            size, chunks = self._store.get(key)
        except RunlakeError as exc:
            abort(context, exc)
        first = True
        for chunk in chunks:
            if first:  # the first chunk also carries the file's size
                yield artifacts_pb2.DownloadChunk(data=chunk, size=size).SerializeToString()
                first = False
            else:
                yield bytes_field(DOWNLOAD_DATA, chunk)
        if first:  # an empty file still answers once, with its size
            yield artifacts_pb2.DownloadChunk(size=size).SerializeToString()

    def ListArtifacts(
        self, request: artifacts_pb2.ListArtifactsRequest, context: grpc.ServicerContext
    ) -> artifacts_pb2.ListArtifactsResponse:
        try:
            root = self._roots.root(request.run_id, for_write=False)
            path = request.path.rstrip("/")
            key = self._roots.key(request.run_id, path, for_write=False, allow_root=True)
            entries = self._store.list(key)
        except RunlakeError as exc:
            abort(context, exc)
        cut = len(root) + 1 if root else 0
        files = []
        for e in entries:
            try:  # a key written to the store behind the gateway's back
                check_artifact_path(e.key[cut:], "path")
            except InvalidArgument:
                log.warning("not listing %r: not a canonical artifact path", e.key)
                continue
            files.append(artifacts_pb2.FileInfo(path=e.key[cut:], is_dir=e.is_dir, size=e.size))
        return artifacts_pb2.ListArtifactsResponse(
            root_uri="/".join(p for p in (self._store.root_uri, root) if p), files=files
        )

    def CreateUploadUrl(
        self, request: artifacts_pb2.CreateUrlRequest, context: grpc.ServicerContext
    ) -> artifacts_pb2.CreateUrlResponse:
        try:
            expires = _expiry(request.expires_in_s)
            if request.size < 0:
                raise InvalidArgument("must not be negative", field="size")
            key = self._roots.key(request.run_id, request.path, for_write=True)
            up = self._store.presign_upload(key, request.size, expires)
        except RunlakeError as exc:
            abort(context, exc)
        return artifacts_pb2.CreateUrlResponse(
            url=up.url,
            expires_at_ms=int((time.time() + expires) * 1000),
            upload_id=up.upload_id,
            part_size=up.part_size,
            part_urls=up.part_urls,
        )

    def CreateDownloadUrl(
        self, request: artifacts_pb2.CreateUrlRequest, context: grpc.ServicerContext
    ) -> artifacts_pb2.CreateUrlResponse:
        try:
            expires = _expiry(request.expires_in_s)
            key = self._roots.key(request.run_id, request.path, for_write=False)
            url = self._store.presign_get(key, expires)
        except RunlakeError as exc:
            abort(context, exc)
        return artifacts_pb2.CreateUrlResponse(
            url=url, expires_at_ms=int((time.time() + expires) * 1000)
        )

    def CommitUpload(
        self, request: artifacts_pb2.CommitUploadRequest, context: grpc.ServicerContext
    ) -> artifacts_pb2.UploadResponse:
        try:
            key = self._roots.key(request.run_id, request.path, for_write=True)
            sha = request.sha256.lower()
            if sha and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha)):
                raise InvalidArgument("must be 64 hex digits", field="sha256")
            if request.upload_id:
                etags = _etags(request.etags)
                self._store.complete_upload(key, _upload_id(request.upload_id), etags)
            elif request.etags:
                raise InvalidArgument("etags need the upload_id they belong to", field="etags")
            size = self._store.size(key)
            if size is None:
                raise NotFound(
                    f"nothing was uploaded to {request.path!r}: PUT to the URL first",
                    field="path",
                )
            position = self._ingestor.record_artifact(
                request.run_id, request.path, size, sha, user=user_of(context)
            )
        except RunlakeError as exc:
            abort(context, exc)
        return artifacts_pb2.UploadResponse(
            path=request.path, size=size, sha256=sha, position=str(position)
        )

    def AbortUpload(
        self, request: artifacts_pb2.AbortUploadRequest, context: grpc.ServicerContext
    ) -> artifacts_pb2.AbortUploadResponse:
        try:
            key = self._roots.key(request.run_id, request.path, for_write=True)
            self._store.abort_upload(key, _upload_id(request.upload_id))
        except RunlakeError as exc:
            abort(context, exc)
        return artifacts_pb2.AbortUploadResponse()


def _upload_id(value: str) -> str:
    if not value or len(value) > 1024 or not value.isprintable():
        raise InvalidArgument("must be the upload_id CreateUploadUrl answered", field="upload_id")
    return value


def _etags(values: Iterable[str]) -> list[str]:
    etags = [v.strip('"') for v in values]
    if not etags or len(etags) > MAX_PARTS:
        raise InvalidArgument(f"give 1 to {MAX_PARTS} part ETags, in part order", field="etags")
    for i, etag in enumerate(etags):
        if not etag or len(etag) > 128 or not etag.isprintable():
            raise InvalidArgument("must be the ETag the part's PUT answered", field=f"etags[{i}]")
    return etags
