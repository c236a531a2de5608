"""Where a table lives, for the Arrow engine: a pyarrow filesystem and path, and delta-rs's URI.

The Arrow engine (:mod:`runlake.spark.table_job`) reads and writes table files itself, on
the executors with pyarrow and on the driver with delta-rs, so it needs each path three
ways: as Spark names it (``s3a://bucket/key``, a local path), as a pyarrow filesystem and
a path inside it (what the tasks open), and as delta-rs opens it (``s3://bucket/key`` with
storage options). Local paths and ``s3://``/``s3a://`` (with the RUNLAKE_S3_* settings the
compactor and artifact store use; keys only from the environment) are handled; any other
scheme is left to Spark's own readers and writers.

The S3 filesystem object carries its keys when it is pickled into a task, as Spark ships
its Hadoop configuration (``fs.s3a.*``) to executors: they reach the executors with the
task, never a command line or a log.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

if TYPE_CHECKING:
    from pyarrow import fs as pafs

__all__ = ["TableLocation", "locate"]


@dataclass(frozen=True)
class TableLocation:
    """One table path, as Spark, pyarrow and delta-rs each need it."""

    #: the path as the user gave it (what Spark reads and the run's tags record)
    uri: str
    filesystem: pafs.FileSystem = field(repr=False)
    #: the table's directory (or file) inside ``filesystem``, without a trailing slash
    path: str
    #: what ``deltalake.DeltaTable`` opens
    delta_uri: str
    storage_options: dict[str, str] = field(default_factory=dict, repr=False)

    def join(self, *names: str) -> str:
        """A path below this table in its filesystem."""
        return "/".join((self.path, *names))


def locate(uri: str) -> TableLocation | None:
    """The location of ``uri``, or None when its scheme is one only Spark can reach."""
    from pyarrow import fs as pafs

    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        local = parsed.path if parsed.scheme else uri
        path = str(Path(local).expanduser().resolve())
        return TableLocation(uri, pafs.LocalFileSystem(), path, path)
    if parsed.scheme in ("s3", "s3a") and parsed.netloc:
        from runlake_services.tables.storage import open_table_store

        key = parsed.path.strip("/")
        store = open_table_store(f"s3://{parsed.netloc}/{key}")
        return TableLocation(
            uri, _s3_filesystem(), f"{parsed.netloc}/{key}".rstrip("/"), store.root,
            store.storage_options,
        )  # fmt: skip
    return None


def _s3_filesystem() -> pafs.S3FileSystem:
    from pyarrow import fs as pafs

    endpoint = os.environ.get("RUNLAKE_S3_ENDPOINT_URL") or None
    scheme = "https"
    if endpoint is not None:
        parsed = urlparse(endpoint)
        if parsed.scheme:
            scheme, endpoint = parsed.scheme, parsed.netloc + parsed.path.rstrip("/")
    return pafs.S3FileSystem(
        access_key=os.environ.get("RUNLAKE_S3_ACCESS_KEY") or None,
        secret_key=os.environ.get("RUNLAKE_S3_SECRET_KEY") or None,
        region=os.environ.get("RUNLAKE_S3_REGION") or "us-east-1",
        endpoint_override=endpoint,
        scheme=scheme,
    )
