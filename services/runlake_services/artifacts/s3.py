"""Artifacts on S3 or MinIO through the minio client: the scale-out store.

Uploads stream into a multipart upload whose parts go up a few at a time while the
stream goes on (:mod:`.s3_multipart`; memory bounded per upload and per process). S3
shows an object only when its upload completes, and the upload is completed only after
the caller accepted its size and digest: an interrupted, refused or failed upload is
aborted and leaves nothing.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Sequence
from datetime import timedelta
from urllib.parse import urlparse

from runlake.artifact_paths import check_artifact_path
from runlake.errors import InvalidArgument, NotFound

from runlake_services.artifacts.s3_multipart import (
    MultipartWriter,
    PartBudget,
    S3Parts,
    direct_part_size,
)
from runlake_services.artifacts.store import CHUNK_BYTES, Entry, PresignedUpload, Stored, Verify

__all__ = ["S3ArtifactStore", "s3_client_from_env"]

#: Part size and parts in flight per upload: 8 MiB x (3 + 1 filling) = 32 MiB an upload,
#: objects up to 78 GiB. On the 2-core machine (busy), 16 MiB parts or 6 in flight were
#: no faster against MinIO.
_PART_BYTES = 8 * 1024 * 1024
_PARALLEL = 3
#: Part buffers all uploads of the process share: 128 MiB.
_BUDGET = PartBudget(16)


def s3_client_from_env() -> object:
    """A minio client from RUNLAKE_S3_* variables (secrets only ever from the environment)."""
    from minio import Minio

    endpoint = os.environ.get("RUNLAKE_S3_ENDPOINT_URL", "https://s3.amazonaws.com")
    parsed = urlparse(endpoint)
    return Minio(
        parsed.netloc or parsed.path,
        access_key=os.environ.get("RUNLAKE_S3_ACCESS_KEY"),
        secret_key=os.environ.get("RUNLAKE_S3_SECRET_KEY"),
        secure=parsed.scheme == "https",
        region=os.environ.get("RUNLAKE_S3_REGION") or None,
    )


class S3ArtifactStore:
    def __init__(
        self, client: object, bucket: str, prefix: str, *, part_bytes: int = _PART_BYTES
    ) -> None:
        from minio import Minio

        assert isinstance(client, Minio)
        self._client = client
        self._bucket = bucket
        self._prefix = prefix.strip("/")
        self._part_bytes = part_bytes

    @classmethod
    def from_uri(cls, uri: str) -> S3ArtifactStore:
        parsed = urlparse(uri)
        return cls(s3_client_from_env(), parsed.netloc, parsed.path)

    @property
    def root_uri(self) -> str:
        return f"s3://{self._bucket}/{self._prefix}" if self._prefix else f"s3://{self._bucket}"

    def _object(self, key: str, *, allow_root: bool = False) -> str:
        check_artifact_path(key, allow_root=allow_root)
        return "/".join(p for p in (self._prefix, key) if p)

    def put(
        self, key: str, chunks: Iterable[bytes | memoryview], verify: Verify | None = None
    ) -> Stored:
        writer = MultipartWriter(
            self._client,
            self._bucket,
            self._object(key),
            part_bytes=self._part_bytes,
            parallel=_PARALLEL,
            budget=_BUDGET,
        )
        digest = hashlib.sha256()
        size = 0
        try:
            for chunk in chunks:
                digest.update(chunk)
                size += len(chunk)
                writer.write(chunk)
            sha = digest.hexdigest()
            if verify is not None:
                verify(size, sha)
            writer.complete()
        except BaseException:
            writer.abort()
            raise
        return Stored(key, size, sha)

    def get(self, key: str) -> tuple[int, Iterator[bytes]]:
        from minio.error import S3Error

        name = self._object(key)
        try:
            resp = self._client.get_object(self._bucket, name)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject"):
                raise NotFound(f"no artifact {key!r}", field="path") from None
            raise
        size = int(resp.headers.get("Content-Length", 0))

        def read() -> Iterator[bytes]:
            try:
                yield from resp.stream(CHUNK_BYTES)
            finally:
                resp.close()
                resp.release_conn()

        return size, read()

    def size(self, key: str) -> int | None:
        from minio.error import S3Error

        try:
            return int(self._client.stat_object(self._bucket, self._object(key)).size or 0)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject"):
                return None
            raise

    def list(self, prefix: str) -> list[Entry]:
        base = self._object(prefix, allow_root=True)
        start = f"{base}/" if base else ""
        cut = len(self._prefix) + 1 if self._prefix else 0
        out = []
        for obj in self._client.list_objects(self._bucket, prefix=start, recursive=False):
            name = (obj.object_name or "").rstrip("/")
            if name == base:  # a "folder" marker object for the listed directory itself
                continue
            out.append(Entry(name[cut:], bool(obj.is_dir), int(obj.size or 0)))
        return sorted(out, key=lambda e: e.key)

    def presign_upload(self, key: str, size: int, expires_s: int) -> PresignedUpload:
        name = self._object(key)
        expires = timedelta(seconds=expires_s)
        part = direct_part_size(size) if size > 0 else 0
        if size <= part or size <= 0:
            url = self._client.presigned_put_object(self._bucket, name, expires=expires)
            return PresignedUpload(url=str(url))
        parts = S3Parts(self._client, self._bucket, name)
        upload_id = parts.create()
        count = -(-size // part)
        urls = tuple(parts.presign_part(upload_id, i, expires) for i in range(1, count + 1))
        return PresignedUpload(upload_id=upload_id, part_size=part, part_urls=urls)

    def complete_upload(self, key: str, upload_id: str, etags: Sequence[str]) -> None:
        from minio.error import S3Error

        try:
            S3Parts(self._client, self._bucket, self._object(key)).complete(upload_id, etags)
        except S3Error as exc:
            if exc.code == "NoSuchUpload":
                raise NotFound(
                    f"no open upload {upload_id!r} for {key!r}", field="upload_id"
                ) from None
            if exc.code in ("InvalidPart", "InvalidPartOrder", "EntityTooSmall"):
                raise InvalidArgument(
                    f"the parts do not match what was uploaded: {exc.message}", field="etags"
                ) from None
            raise

    def abort_upload(self, key: str, upload_id: str) -> None:
        from minio.error import S3Error

        try:
            S3Parts(self._client, self._bucket, self._object(key)).abort(upload_id)
        except S3Error as exc:
            if exc.code != "NoSuchUpload":
                raise

    def presign_get(self, key: str, expires_s: int) -> str:
        return str(
            self._client.presigned_get_object(
                self._bucket, self._object(key), expires=timedelta(seconds=expires_s)
            )
        )
