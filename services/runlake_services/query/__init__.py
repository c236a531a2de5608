"""The query service: run search, point reads, metric history and read-only SQL."""

from runlake_services.query.history import MetricHistory
from runlake_services.query.servicer import QueryServicer
from runlake_services.query.sql import SqlEngine
from runlake_services.query.state import RunsIndex

__all__ = ["MetricHistory", "QueryServicer", "RunsIndex", "SqlEngine"]
