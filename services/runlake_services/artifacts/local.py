"""Artifacts in a local directory: the embedded server's store.

Writes land in ``<root>/.staging/`` and are renamed into place only when complete and
verified (a rename within one filesystem is atomic), so a reader never sees half a
file. Keys are checked canonical before they get here; resolving the final path and
requiring it to stay under the root is a second guard against symlinks placed inside.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from urllib.parse import unquote, urlparse

from runlake.artifact_paths import check_artifact_path
from runlake.errors import Conflict, InvalidArgument, NotFound

from runlake_services.artifacts.store import CHUNK_BYTES, Entry, PresignedUpload, Stored, Verify

__all__ = ["LocalArtifactStore"]

_STAGING = ".staging"


class LocalArtifactStore:
    def __init__(self, root: Path) -> None:
        self._root = root.resolve()
        self._root.mkdir(parents=True, exist_ok=True)
        (self._root / _STAGING).mkdir(exist_ok=True)

    @classmethod
    def from_uri(cls, uri: str) -> LocalArtifactStore:
        parsed = urlparse(uri)
        return cls(Path(unquote(parsed.path) if parsed.scheme == "file" else uri))

    @property
    def root_uri(self) -> str:
        return self._root.as_uri()

    def _path(self, key: str, *, allow_root: bool = False) -> Path:
        check_artifact_path(key, allow_root=allow_root)
        if key.split("/")[0] == _STAGING:
            raise InvalidArgument(f"{_STAGING!r} is reserved", field="path")
        path = self._root.joinpath(*key.split("/")) if key else self._root
        if not path.resolve().is_relative_to(self._root):
            raise InvalidArgument(f"{key!r} resolves outside the artifact root", field="path")
        return path

    def put(
        self, key: str, chunks: Iterable[bytes | memoryview], verify: Verify | None = None
    ) -> Stored:
        final = self._path(key)
        tmp = self._root / _STAGING / uuid.uuid4().hex
        digest = hashlib.sha256()
        size = 0
        try:
            with tmp.open("wb") as f:
                for chunk in chunks:
                    f.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                f.flush()
                os.fsync(f.fileno())
            sha = digest.hexdigest()
            if verify is not None:
                verify(size, sha)
            final.parent.mkdir(parents=True, exist_ok=True)
            if final.is_dir():
                raise InvalidArgument(f"{key!r} is a directory", field="path")
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        return Stored(key, size, sha)

    def get(self, key: str) -> tuple[int, Iterator[bytes]]:
        path = self._path(key)
        if not path.is_file():
            raise NotFound(f"no artifact {key!r}", field="path")
        f = path.open("rb")
        size = os.fstat(f.fileno()).st_size

        def read() -> Iterator[bytes]:
            with f:
                while chunk := f.read(CHUNK_BYTES):
                    yield chunk

        return size, read()

    def size(self, key: str) -> int | None:
        path = self._path(key)
        return path.stat().st_size if path.is_file() else None

    def list(self, prefix: str) -> list[Entry]:
        path = self._path(prefix, allow_root=True)
        if not path.is_dir():
            return []
        out = []
        for child in sorted(path.iterdir(), key=lambda p: p.name):
            if child.name == _STAGING and path == self._root:
                continue
            key = f"{prefix}/{child.name}" if prefix else child.name
            if child.is_dir():
                out.append(Entry(key, True, 0))
            elif child.is_file():
                out.append(Entry(key, False, child.stat().st_size))
        return out

    def _no_direct_access(self) -> Conflict:
        return Conflict(
            "the local artifact store has no direct access; upload through the gateway",
            field="path",
        )

    def presign_upload(self, key: str, size: int, expires_s: int) -> PresignedUpload:
        raise self._no_direct_access()

    def complete_upload(self, key: str, upload_id: str, etags: Sequence[str]) -> None:
        raise self._no_direct_access()

    def abort_upload(self, key: str, upload_id: str) -> None:
        raise self._no_direct_access()

    def presign_get(self, key: str, expires_s: int) -> str:
        raise self._no_direct_access()
