"""The artifact store boundary: one interface, a local directory and S3/MinIO behind it.

Keys are canonical relative paths (see :mod:`runlake.artifact_paths`) under the store's
root URI. Every write goes through :meth:`ArtifactStore.put`, which streams (a file of
several GB is never held in memory), hashes as it goes, and lets the caller veto the
result before it becomes visible — so an interrupted or corrupted upload leaves nothing
under the key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlparse

__all__ = [
    "ArtifactStore",
    "Entry",
    "PresignedUpload",
    "Stored",
    "Verify",
    "open_artifact_store",
]

#: Called with (size, sha256 hex) before a written file becomes visible; raises to refuse it.
Verify = Callable[[int, str], None]

CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Stored:
    key: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Entry:
    """A direct child of a listed directory; ``key`` is relative to the store root."""

    key: str
    is_dir: bool
    size: int


@dataclass(frozen=True)
class PresignedUpload:
    """Where a direct upload goes: one ``url``, or one URL per part of a multipart upload."""

    url: str = ""
    upload_id: str = ""
    part_size: int = 0
    part_urls: tuple[str, ...] = ()


class ArtifactStore(Protocol):
    """Where artifact bytes live. Implementations: local directory, S3 (MinIO)."""

    @property
    def root_uri(self) -> str:
        """The URI keys are relative to (``file:///…`` or ``s3://bucket/prefix``)."""
        ...

    def put(
        self, key: str, chunks: Iterable[bytes | memoryview], verify: Verify | None = None
    ) -> Stored:
        """Store the bytes of ``chunks`` under ``key``, visible only once complete and verified."""
        ...

    def get(self, key: str) -> tuple[int, Iterator[bytes]]:
        """(size, chunks) of the file at ``key``; NotFound when there is none."""
        ...

    def size(self, key: str) -> int | None:
        """The size of the file at ``key``, or None when there is none."""
        ...

    def list(self, prefix: str) -> list[Entry]:
        """Direct children of the directory ``prefix`` ('' is the root), by key."""
        ...

    def presign_upload(self, key: str, size: int, expires_s: int) -> PresignedUpload:
        """URLs that let their holder upload ``key`` (``size`` bytes, 0 if unknown) for
        ``expires_s``: one PUT, or a multipart upload's parts; FailedPrecondition if none."""
        ...

    def complete_upload(self, key: str, upload_id: str, etags: Sequence[str]) -> None:
        """Complete a presigned multipart upload from its parts' ETags, making it visible."""
        ...

    def abort_upload(self, key: str, upload_id: str) -> None:
        """Discard a presigned multipart upload (nothing happens if it is already gone)."""
        ...

    def presign_get(self, key: str, expires_s: int) -> str:
        """A URL that lets its holder GET ``key`` for ``expires_s``; FailedPrecondition if none."""
        ...


def open_artifact_store(uri: str) -> ArtifactStore:
    """The store for ``uri``: ``file:///dir`` (or a plain path) or ``s3://bucket/prefix``.

    S3 settings come from the environment (never from code or the URI):
    RUNLAKE_S3_ENDPOINT_URL (e.g. http://127.0.0.1:9000 for MinIO; empty means AWS),
    RUNLAKE_S3_ACCESS_KEY, RUNLAKE_S3_SECRET_KEY, RUNLAKE_S3_REGION.
    """
    scheme = urlparse(uri).scheme
    if scheme in ("", "file"):
        from runlake_services.artifacts.local import LocalArtifactStore

        return LocalArtifactStore.from_uri(uri)
    if scheme in ("s3", "s3a"):
        from runlake_services.artifacts.s3 import S3ArtifactStore

        return S3ArtifactStore.from_uri(uri)
    raise ValueError(f"no artifact store for {uri!r}: use file:// or s3://")


def key_within(root_uri: str, uri: str) -> str | None:
    """``uri`` relative to ``root_uri`` ('' for the root itself), or None when outside it."""
    root = root_uri.rstrip("/")
    if uri.rstrip("/") == root:
        return ""
    if uri.startswith(root + "/"):
        return uri[len(root) + 1 :].strip("/")
    return None
