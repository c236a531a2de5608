"""Artifacts on S3 or MinIO through the minio client: the scale-out store.

Uploads stream into a multipart upload (parts of 16 MiB, so memory stays bounded for a
file of any size); S3 shows an object only when its upload completes, and the minio
client aborts the multipart upload if the stream fails, so an interrupted upload leaves
nothing. A completed upload whose size or digest the caller refuses is deleted at once.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from datetime import timedelta
from urllib.parse import urlparse

from runlake.artifact_paths import check_artifact_path
from runlake.errors import NotFound

from runlake_services.artifacts.store import CHUNK_BYTES, Entry, Stored, Verify

__all__ = ["S3ArtifactStore", "s3_client_from_env"]

_PART_BYTES = 16 * 1024 * 1024


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


class _Stream:
    """A read()-able view of an iterator of chunks that hashes what passes through."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._it = iter(chunks)
        self._buf = bytearray()
        self.size = 0
        self.digest = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self._buf) < n:
            chunk = next(self._it, None)
            if chunk is None:
                break
            self.size += len(chunk)
            self.digest.update(chunk)
            self._buf += chunk
        if n < 0 or n >= len(self._buf):
            out = bytes(self._buf)
            self._buf.clear()
        else:
            out = bytes(self._buf[:n])
            del self._buf[:n]
        return out


class S3ArtifactStore:
    def __init__(self, client: object, bucket: str, prefix: str) -> None:
        from minio import Minio

        assert isinstance(client, Minio)
        self._client = client
        self._bucket = bucket
        self._prefix = prefix.strip("/")

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

    def put(self, key: str, chunks: Iterable[bytes], verify: Verify | None = None) -> Stored:
        name = self._object(key)
        stream = _Stream(chunks)
        self._client.put_object(self._bucket, name, stream, length=-1, part_size=_PART_BYTES)  # type: ignore[arg-type]
        sha = stream.digest.hexdigest()
        if verify is not None:
            try:
                verify(stream.size, sha)
            except BaseException:
                self._client.remove_object(self._bucket, name)
                raise
        return Stored(key, stream.size, sha)

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
            out.append(Entry(name[cut:], bool(obj.is_dir), int(obj.size or 0)))
        return sorted(out, key=lambda e: e.key)

    def presign_put(self, key: str, expires_s: int) -> str:
        return str(
            self._client.presigned_put_object(
                self._bucket, self._object(key), expires=timedelta(seconds=expires_s)
            )
        )

    def presign_get(self, key: str, expires_s: int) -> str:
        return str(
            self._client.presigned_get_object(
                self._bucket, self._object(key), expires=timedelta(seconds=expires_s)
            )
        )
