"""A gateway-only process: the Gateway and Artifacts gRPC services over any event log.

The scale-out deployment runs several of these side by side over one Kafka log
(``kafka://host:9092/runlake.events``); the compactor and the query service are separate
processes. ``runlake gateway`` (client/runlake/cli/scale_cmds.py) starts one and prints
``runlake gateway ready grpc=grpc://HOST:PORT …`` — the same ready-line shape as
``runlake server``, so one parser (embedded/process.py) serves both.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from concurrent import futures
from dataclasses import dataclass
from types import FrameType

import grpc
from runlake.v1 import artifacts_pb2_grpc, events_pb2, gateway_pb2_grpc

from runlake_services.artifacts.servicer import ArtifactsServicer, RunRoots
from runlake_services.artifacts.store import open_artifact_store
from runlake_services.eventlog import EventLog, open_event_log
from runlake_services.eventlog.kafka import KafkaEventLog
from runlake_services.gateway.servicer import Backlog, GatewayServicer, Ingestor

__all__ = ["GatewayConfig", "GatewayServer", "run_gateway"]

_MAX_MESSAGE = 64 * 1024 * 1024


@dataclass(frozen=True)
class GatewayConfig:
    log_uri: str
    artifacts_destination: str
    host: str = "127.0.0.1"
    port: int = 0
    grpc_workers: int = 16
    #: Not used for backpressure here: Kafka's own queue bound is (the compactor that
    #: folds is another process); kept finite so the Ingestor's check never trips wrongly.
    max_unfolded_bytes: int = 1 << 62


class _LogIngestor(Ingestor):
    """The Ingestor, for logs whose positions are tokens rather than row ids."""

    def _logged_version(self, batch_id: str) -> int:
        log = self._log
        if not isinstance(log, KafkaEventLog):
            return super()._logged_version(batch_id)
        payload = log.payload_of(batch_id)
        batch = events_pb2.LoggedBatch.FromString(payload or b"")
        return int(batch.events[0].model_version_created.version)


@dataclass
class GatewayServer:
    """A started gateway; :meth:`stop` ends the gRPC server, then closes the log."""

    config: GatewayConfig
    log: EventLog
    grpc_server: grpc.Server
    port: int

    @classmethod
    def start(cls, config: GatewayConfig) -> GatewayServer:
        store = open_artifact_store(config.artifacts_destination)
        log = open_event_log(config.log_uri)
        try:
            ingestor = _LogIngestor(
                log, artifact_root=store.root_uri, backlog=Backlog(config.max_unfolded_bytes)
            )
            if not isinstance(log, KafkaEventLog) or log.settings.coordinator:
                # Only the coordinator creates experiments (docs/decisions/0012); the others
                # learn experiment "0" from the log.
                ingestor.ensure_default_experiment()
            server = grpc.server(
                futures.ThreadPoolExecutor(
                    max_workers=config.grpc_workers, thread_name_prefix="runlake-gateway"
                ),
                options=[
                    ("grpc.max_receive_message_length", _MAX_MESSAGE),
                    ("grpc.max_send_message_length", _MAX_MESSAGE),
                    ("grpc.so_reuseport", 0),
                ],
            )
            gateway_pb2_grpc.add_GatewayServicer_to_server(GatewayServicer(ingestor), server)
            artifacts_pb2_grpc.add_ArtifactsServicer_to_server(
                ArtifactsServicer(RunRoots(log.catalog, store), ingestor), server
            )
            port = server.add_insecure_port(f"{config.host}:{config.port}")
            if port == 0:
                raise OSError(f"cannot listen on {config.host}:{config.port}")
            server.start()
        except BaseException:
            log.close()
            raise
        return cls(config, log, server, port)

    def stop(self, grace_s: float = 5.0) -> None:
        self.grpc_server.stop(grace_s).wait()
        self.log.close()


def run_gateway(config: GatewayConfig) -> None:
    """Start, print the ready line, serve until SIGINT/SIGTERM, stop cleanly."""
    t0 = time.perf_counter()
    server = GatewayServer.start(config)
    done = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
    print(
        f"runlake gateway ready grpc=grpc://{config.host}:{server.port} "
        f"log={_redacted(config.log_uri)} in {time.perf_counter() - t0:.2f}s",
        flush=True,
    )
    done.wait()
    print("runlake gateway: shutting down", file=sys.stderr, flush=True)
    server.stop()
    print("runlake gateway: stopped", file=sys.stderr, flush=True)


def _redacted(uri: str) -> str:
    """The log URI without its query (a catalog path is local detail)."""
    return uri.split("?", 1)[0]
