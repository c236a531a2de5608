"""The ingestion gateway: validates, stamps and appends batches to the event log."""

from runlake_services.gateway.servicer import Backlog, GatewayServicer, Ingestor

__all__ = ["Backlog", "GatewayServicer", "Ingestor"]
