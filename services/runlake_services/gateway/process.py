"""A gateway-only process: the Gateway and Artifacts gRPC services over any event log.

The scale-out deployment runs several of these side by side over one Kafka log
(``kafka://host:9092/runlake.events``); the compactor and the query service are separate
processes. With ``query_upstream`` a gateway also serves the Query service by forwarding
to a query process, and with ``coordinator_upstream`` a non-coordinator gateway forwards
uniqueness-sensitive writes to the coordinator, so a client needs one address for
everything (gateway/upstream.py). ``runlake gateway`` (client/runlake/cli/scale_cmds.py)
starts one and prints ``runlake gateway ready grpc=grpc://HOST:PORT …`` — the same
ready-line shape as ``runlake server``, so one parser (embedded/process.py) serves all.
"""

from __future__ import annotations

import time
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from runlake.errors import InvalidArgument
from runlake.v1 import events_pb2, gateway_pb2_grpc

from runlake_services.artifacts.servicer import ArtifactsServicer, RunRoots, add_artifacts_servicer
from runlake_services.artifacts.store import open_artifact_store
from runlake_services.embedded.http import HealthServer
from runlake_services.eventlog import EventLog, open_event_log
from runlake_services.eventlog.kafka import KafkaEventLog
from runlake_services.gateway.servicer import Backlog, GatewayServicer, Ingestor
from runlake_services.gateway.upstream import Coordinator, open_channel, query_proxy
from runlake_services.lifecycle import serve_until_signalled

__all__ = ["GatewayConfig", "GatewayServer", "run_gateway"]

_MAX_MESSAGE = 64 * 1024 * 1024


@dataclass(frozen=True)
class GatewayConfig:
    log_uri: str
    artifacts_destination: str
    host: str = "127.0.0.1"
    port: int = 0
    grpc_workers: int = 16
    http_port: int | None = None
    #: grpc://host:port of a query service whose Query rpcs this gateway serves too.
    query_upstream: str | None = None
    #: grpc://host:port of the coordinator gateway (on ``coordinator=false`` gateways).
    coordinator_upstream: str | None = None
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
    http: HealthServer | None = None
    channels: list[grpc.Channel] = field(default_factory=list)

    @classmethod
    def start(cls, config: GatewayConfig) -> GatewayServer:
        store = open_artifact_store(config.artifacts_destination)
        log = open_event_log(config.log_uri)
        channels: list[grpc.Channel] = []
        try:
            kafka = log if isinstance(log, KafkaEventLog) else None
            catch_up = kafka.catch_up if kafka is not None else None
            ingestor = _LogIngestor(
                log,
                artifact_root=store.root_uri,
                backlog=Backlog(config.max_unfolded_bytes),
                catch_up=catch_up,
            )
            is_coordinator = kafka is None or kafka.settings.coordinator
            if is_coordinator:
                # Only the coordinator creates experiments (docs/decisions/0012); the others
                # learn experiment "0" from the log.
                ingestor.ensure_default_experiment()
            coordinator: Coordinator | None = None
            if config.coordinator_upstream:
                if is_coordinator or kafka is None:
                    raise InvalidArgument(
                        "a coordinator upstream is for --no-coordinator gateways on a Kafka log",
                        field="coordinator_upstream",
                    )
                channels.append(
                    open_channel(config.coordinator_upstream, field="coordinator_upstream")
                )
                coordinator = Coordinator(
                    channels[-1], here=kafka.end_position, wait_for=kafka.wait_for
                )
            wait_for = kafka.wait_for if kafka is not None and is_coordinator else None
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
            servicer = GatewayServicer(ingestor, coordinator=coordinator, wait_for=wait_for)
            gateway_pb2_grpc.add_GatewayServicer_to_server(servicer, server)
            if config.query_upstream:
                channels.append(open_channel(config.query_upstream, field="query_upstream"))
                # GetPosition's log end: everything in the log, whoever wrote it (`sync`)
                end = kafka.log_end if kafka is not None else log.end_position
                server.add_generic_rpc_handlers((query_proxy(channels[-1], lambda: str(end())),))
            add_artifacts_servicer(
                ArtifactsServicer(RunRoots(log.catalog, store, catch_up), ingestor), server
            )
            port = server.add_insecure_port(f"{config.host}:{config.port}")
            if port == 0:
                raise OSError(f"cannot listen on {config.host}:{config.port}")
            server.start()
            http: HealthServer | None = None
            if config.http_port is not None:
                started = time.time()

                def status() -> dict[str, Any]:
                    return {
                        "status": "ok",
                        "coordinator": is_coordinator,
                        "log_end": str(log.end_position()),
                        "uptime_s": round(time.time() - started, 3),
                    }

                http = HealthServer(config.host, config.http_port, status)
                http.start()
        except BaseException:
            for ch in channels:
                ch.close()
            log.close()
            raise
        return cls(config, log, server, port, http, channels)

    def stop(self, grace_s: float = 5.0) -> None:
        self.grpc_server.stop(grace_s).wait()
        if self.http is not None:
            self.http.stop()
        for ch in self.channels:
            ch.close()
        self.log.close()


def run_gateway(config: GatewayConfig) -> None:
    """Start, print the ready line, serve until SIGINT/SIGTERM, stop cleanly."""
    serve_until_signalled(
        "gateway",
        lambda: GatewayServer.start(config),
        host=config.host,
        http_port=lambda s: s.http.port if s.http else None,
        detail=f"log={_redacted(config.log_uri)}",
    )


def _redacted(uri: str) -> str:
    """The log URI without its query (a catalog path is local detail)."""
    return uri.split("?", 1)[0]
