"""Typed, frozen configuration of the embedded server (argument > environment > default)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DEFAULT_GRPC_PORT", "DEFAULT_HTTP_PORT", "ServerConfig"]

DEFAULT_GRPC_PORT = 5055
DEFAULT_HTTP_PORT = 5056


class ServerConfig(BaseModel):
    """Everything `runlake server` needs; the CLI builds it from flags and RUNLAKE_* variables."""

    model_config = ConfigDict(frozen=True)

    data_dir: Path = Field(default=Path(".runlake/data"))
    host: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_GRPC_PORT, ge=0, le=65535)
    http_port: int | None = Field(default=DEFAULT_HTTP_PORT, ge=0, le=65535)
    #: How often the compactor folds new log records into the tables, at the fastest.
    compact_interval_s: float = Field(default=0.05, gt=0)
    #: Small-file compaction + checkpoint of the Delta tables after this many commits.
    optimize_every_commits: int = Field(default=200, ge=1)
    #: Bytes of accepted-but-not-yet-folded log the gateway tolerates before answering
    #: RESOURCE_EXHAUSTED (backpressure instead of unbounded growth).
    max_unfolded_bytes: int = Field(default=512 * 1024 * 1024, ge=1)
    #: Log bytes folded per compaction round at most. Bounds the server's memory (a
    #: round's rows, Parquet buffers and merge state are several times this) while
    #: keeping rounds few enough for Delta's commit rate.
    compact_round_bytes: int = Field(default=2 * 1024 * 1024, ge=1)
    #: Where artifact bytes go: ``file:///dir`` or ``s3://bucket/prefix`` (S3 settings from
    #: RUNLAKE_S3_* variables). None: ``<data dir>/artifacts``.
    artifacts_destination: str | None = None
    grpc_workers: int = Field(default=16, ge=1)
