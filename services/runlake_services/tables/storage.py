"""Where a set of Delta tables lives, for delta-rs: a local directory or S3 (MinIO).

The scale-out query service reads the tables the Spark compactor writes to
``s3a://bucket/prefix``; delta-rs names the same place ``s3://bucket/prefix``, so both
spellings are accepted. S3 endpoint and keys come from the environment only
(RUNLAKE_S3_ENDPOINT_URL, RUNLAKE_S3_ACCESS_KEY, RUNLAKE_S3_SECRET_KEY,
RUNLAKE_S3_REGION), the same variables as the artifact store and the compactor, so a
secret never appears in a URI, a flag or a process listing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from runlake.errors import InvalidArgument

__all__ = ["TableStore", "open_table_store"]


@dataclass(frozen=True)
class TableStore:
    """The root URI delta-rs opens and the storage options it needs there."""

    root: str
    storage_options: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def is_local(self) -> bool:
        return "://" not in self.root


def open_table_store(uri: str, env: Mapping[str, str] | None = None) -> TableStore:
    """``file:///dir`` or a plain path, or ``s3://bucket/prefix`` (``s3a://`` too)."""
    environ = os.environ if env is None else env
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        path = parsed.path if parsed.scheme else uri
        if not path:
            raise InvalidArgument(f"{uri!r} names no directory", field="store")
        return TableStore(str(Path(path).resolve()))
    if parsed.scheme in ("s3", "s3a"):
        if not parsed.netloc:
            raise InvalidArgument(f"{uri!r} names no bucket", field="store")
        root = f"s3://{parsed.netloc}/{parsed.path.strip('/')}".rstrip("/")
        return TableStore(root, _s3_options(environ))
    raise InvalidArgument(
        f"unknown scheme in {uri!r}; valid: file://, s3://, s3a://", field="store"
    )


def _s3_options(env: Mapping[str, str]) -> dict[str, str]:
    options = {"AWS_REGION": env.get("RUNLAKE_S3_REGION") or "us-east-1"}
    endpoint = env.get("RUNLAKE_S3_ENDPOINT_URL")
    if endpoint:
        options["AWS_ENDPOINT_URL"] = endpoint
        if endpoint.startswith("http://"):
            options["AWS_ALLOW_HTTP"] = "true"
    if env.get("RUNLAKE_S3_ACCESS_KEY"):
        options["AWS_ACCESS_KEY_ID"] = env["RUNLAKE_S3_ACCESS_KEY"]
    if env.get("RUNLAKE_S3_SECRET_KEY"):
        options["AWS_SECRET_ACCESS_KEY"] = env["RUNLAKE_S3_SECRET_KEY"]
    # Readers never rename; the flag only tells delta-rs that no locking provider is needed.
    options["AWS_S3_ALLOW_UNSAFE_RENAME"] = "true"
    return options
