"""Wires gateway, compactor and query service into the one-process embedded server.

Data directory layout: ``log.db`` (the SQLite event log and gateway catalog),
``tables/<name>`` (the Delta tables), ``artifacts/`` (the default artifact root).
"""

from __future__ import annotations

import time
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from runlake.v1 import gateway_pb2_grpc, query_pb2_grpc

from runlake_services.artifacts.servicer import ArtifactsServicer, RunRoots, add_artifacts_servicer
from runlake_services.artifacts.store import open_artifact_store
from runlake_services.compactor import EmbeddedCompactor
from runlake_services.embedded.config import ServerConfig
from runlake_services.embedded.http import HealthServer
from runlake_services.embedded.memory import release_free_memory, tune_allocators
from runlake_services.eventlog import EventLog, open_event_log
from runlake_services.gateway import Backlog, GatewayServicer, Ingestor
from runlake_services.lifecycle import serve_until_signalled
from runlake_services.progress import Progress
from runlake_services.query import (
    MetricHistory,
    QueryServicer,
    RegistryReader,
    RunsIndex,
    SqlEngine,
)
from runlake_services.tables.delta_sink import DeltaTableSink
from runlake_services.tables.reader import DeltaTableReader

__all__ = ["EmbeddedServer", "run_server"]

_MAX_MESSAGE = 64 * 1024 * 1024


@dataclass
class EmbeddedServer:
    """A started server; :meth:`stop` shuts it down in order (writes first, then the fold)."""

    config: ServerConfig
    log: EventLog
    compactor: EmbeddedCompactor
    grpc_server: grpc.Server
    port: int
    http: HealthServer | None
    progress: Progress
    backlog: Backlog
    started_at: float

    @classmethod
    def start(cls, config: ServerConfig) -> EmbeddedServer:
        data = config.data_dir.resolve()
        data.mkdir(parents=True, exist_ok=True)
        store = open_artifact_store(config.artifacts_destination or (data / "artifacts").as_uri())
        log = open_event_log(f"sqlite:///{data / 'log.db'}")
        sink = DeltaTableSink(str(data / "tables"))
        sink.ensure_tables()
        reader = DeltaTableReader(str(data / "tables"))

        progress = Progress(log_end=log.end_position())
        backlog = Backlog(config.max_unfolded_bytes)
        state = RunsIndex()
        state.load(reader)
        compactor = EmbeddedCompactor(
            log,
            sink,
            progress,
            on_fold=state.apply,
            on_bytes_folded=backlog.folded,
            after_round=release_free_memory,
            interval_s=config.compact_interval_s,
            optimize_every_commits=config.optimize_every_commits,
            round_bytes=config.compact_round_bytes,
        )

        def appended(position: int) -> None:
            progress.appended(position)
            compactor.wake()

        ingestor = Ingestor(
            log,
            artifact_root=store.root_uri,
            backlog=backlog,
            on_append=appended,
        )
        ingestor.ensure_default_experiment()
        compactor.start()

        server = grpc.server(
            futures.ThreadPoolExecutor(
                max_workers=config.grpc_workers, thread_name_prefix="runlake-grpc"
            ),
            options=[
                ("grpc.max_receive_message_length", _MAX_MESSAGE),
                ("grpc.max_send_message_length", _MAX_MESSAGE),
                ("grpc.so_reuseport", 0),
                # No BDP probing: it widens each connection's HTTP/2 receive window to what
                # the link could carry, and a flood on loopback then parked ~100 MiB of
                # not-yet-read requests in gRPC's buffers (measured, bench/RESULTS.md).
                # Without it a stream's window is the lookahead below, or the message being
                # received. gRPC's default lookahead (64 KiB) cut proxied artifact uploads
                # (a stream of 1 MiB messages) from ~0.9x to ~0.6x the raw S3 client's MB/s;
                # 4 MiB brings them back and bounds what 16 streams can park to 64 MiB.
                ("grpc.http2.bdp_probe", 0),
                ("grpc.http2.lookahead_bytes", 4 * 1024 * 1024),
            ],
        )
        gateway_pb2_grpc.add_GatewayServicer_to_server(GatewayServicer(ingestor), server)
        query_pb2_grpc.add_QueryServicer_to_server(
            QueryServicer(
                state,
                MetricHistory(reader),
                SqlEngine(reader),
                progress,
                registry=RegistryReader(reader),
            ),
            server,
        )
        add_artifacts_servicer(ArtifactsServicer(RunRoots(log.catalog, store), ingestor), server)
        port = server.add_insecure_port(f"{config.host}:{config.port}")
        if port == 0:
            raise OSError(f"cannot listen on {config.host}:{config.port}")
        server.start()

        started = time.time()
        http: HealthServer | None = None
        if config.http_port is not None:

            def status() -> dict[str, Any]:
                return {
                    "status": "ok",
                    "log_end": progress.log_end,
                    "folded": progress.folded,
                    "backlog_bytes": backlog.pending,
                    "uptime_s": round(time.time() - started, 3),
                }

            http = HealthServer(config.host, config.http_port, status)
            http.start()
        return cls(config, log, compactor, server, port, http, progress, backlog, started)

    def stop(self, grace_s: float = 5.0) -> None:
        self.grpc_server.stop(grace_s).wait()
        if self.http is not None:
            self.http.stop()
        self.compactor.stop(drain=True)
        self.log.close()


def run_server(config: ServerConfig) -> None:
    """Start, print the ready line, serve until SIGINT/SIGTERM, stop cleanly."""
    tune_allocators()
    serve_until_signalled(
        "server",
        lambda: EmbeddedServer.start(config),
        host=config.host,
        http_port=lambda s: s.http.port if s.http else None,
        detail=f"data={config.data_dir}",
        stopping="shutting down (folding what is left)",
    )
