"""A query-only process: the Query service over Delta tables that another process folds.

The scale-out deployment runs as many of these as reads need, stateless, over the tables
the Spark compactor writes to S3 (``runlake query --store s3://runlake/tables``). Each
keeps its own in-memory index (search at in-memory speed), fed by a
:class:`~runlake_services.query.follower.TableFollower`; history, SQL and registry reads
go to the Delta tables directly. Reads carrying a Kafka position token wait until the
compactor's published progress covers it (read-your-writes across processes).

``runlake query`` (client/runlake/cli/scale_cmds.py) prints
``runlake query ready grpc=grpc://HOST:PORT http=http://HOST:PORT …``, the ready-line
shape every runlake process shares (embedded/process.py parses it).
"""

from __future__ import annotations

import time
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from pydantic import BaseModel, ConfigDict, Field
from runlake.v1 import query_pb2_grpc

from runlake_services.embedded.http import HealthServer
from runlake_services.lifecycle import serve_until_signalled
from runlake_services.progress import TokenProgress
from runlake_services.query.follower import TableFollower
from runlake_services.query.history import MetricHistory
from runlake_services.query.registry import RegistryReader
from runlake_services.query.servicer import QueryServicer
from runlake_services.query.sql import SqlEngine
from runlake_services.query.state import RunsIndex
from runlake_services.tables.reader import DeltaTableReader
from runlake_services.tables.storage import open_table_store

__all__ = ["DEFAULT_QUERY_PORT", "QueryConfig", "QueryServer", "run_query"]

DEFAULT_QUERY_PORT = 5057
_MAX_MESSAGE = 64 * 1024 * 1024


class QueryConfig(BaseModel):
    """Everything ``runlake query`` needs (S3 keys come from RUNLAKE_S3_* variables)."""

    model_config = ConfigDict(frozen=True)

    store: str  # s3://bucket/prefix (or s3a://), file:///dir
    host: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_QUERY_PORT, ge=0, le=65535)
    http_port: int | None = Field(default=None, ge=0, le=65535)
    grpc_workers: int = Field(default=16, ge=1)
    #: How often the follower looks for a new compactor progress.
    refresh_s: float = Field(default=0.2, gt=0)
    #: How long a read waits for its position by default (a read may ask for longer).
    default_wait_s: float = Field(default=5.0, gt=0)


@dataclass
class QueryServer:
    """A started query service; :meth:`stop` ends gRPC, then the follower."""

    config: QueryConfig
    follower: TableFollower
    progress: TokenProgress
    grpc_server: grpc.Server
    port: int
    http: HealthServer | None
    started_at: float

    @classmethod
    def start(cls, config: QueryConfig) -> QueryServer:
        store = open_table_store(config.store)
        reader = DeltaTableReader(store.root, store.storage_options)
        index = RunsIndex()
        progress = TokenProgress()
        follower = TableFollower(store, index, progress, interval_s=config.refresh_s)
        follower.load()
        follower.start()
        try:
            server = grpc.server(
                futures.ThreadPoolExecutor(
                    max_workers=config.grpc_workers, thread_name_prefix="runlake-query"
                ),
                options=[
                    ("grpc.max_receive_message_length", _MAX_MESSAGE),
                    ("grpc.max_send_message_length", _MAX_MESSAGE),
                    ("grpc.so_reuseport", 0),
                ],
            )
            servicer = QueryServicer(
                index,
                MetricHistory(reader),
                SqlEngine(reader),
                progress,
                registry=RegistryReader(reader, storage_options=store.storage_options),
                default_wait_s=config.default_wait_s,
            )
            query_pb2_grpc.add_QueryServicer_to_server(servicer, server)
            port = server.add_insecure_port(f"{config.host}:{config.port}")
            if port == 0:
                raise OSError(f"cannot listen on {config.host}:{config.port}")
            server.start()
        except BaseException:
            follower.stop()
            raise
        started = time.time()
        http: HealthServer | None = None
        if config.http_port is not None:

            def status() -> dict[str, Any]:
                return {
                    "status": "ok",
                    "folded": progress.folded,
                    "folded_at_ms": follower.stats.folded_at_ms,
                    "polls": follower.stats.polls,
                    "reloads": follower.stats.reloads,
                    "last_error": follower.stats.last_error,
                    "uptime_s": round(time.time() - started, 3),
                }

            http = HealthServer(config.host, config.http_port, status)
            http.start()
        return cls(config, follower, progress, server, port, http, started)

    def stop(self, grace_s: float = 5.0) -> None:
        self.grpc_server.stop(grace_s).wait()
        if self.http is not None:
            self.http.stop()
        self.follower.stop()


def run_query(config: QueryConfig) -> None:
    """Start, print the ready line, serve until SIGINT/SIGTERM, stop cleanly."""
    serve_until_signalled(
        "query",
        lambda: QueryServer.start(config),
        host=config.host,
        http_port=lambda s: s.http.port if s.http else None,
        detail=f"store={config.store}",
    )
