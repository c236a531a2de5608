"""The query service: run search, point reads, metric history, registry reads and SQL."""

from runlake_services.query.filter import (
    And,
    Comparison,
    Identifier,
    Node,
    Or,
    OrderKey,
    format_filter,
    parse_experiment_filter,
    parse_filter,
    parse_order_by,
)
from runlake_services.query.history import MetricHistory
from runlake_services.query.registry import RegistryReader
from runlake_services.query.servicer import QueryServicer, add_to_server
from runlake_services.query.sql import SqlEngine
from runlake_services.query.state import RunsIndex

__all__ = [
    "And",
    "Comparison",
    "Identifier",
    "MetricHistory",
    "Node",
    "Or",
    "OrderKey",
    "QueryServicer",
    "RegistryReader",
    "RunsIndex",
    "SqlEngine",
    "add_to_server",
    "format_filter",
    "parse_experiment_filter",
    "parse_filter",
    "parse_order_by",
]
