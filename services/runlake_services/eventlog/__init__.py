"""The event log boundary: where accepted batches become durable, in order.

One interface (:class:`EventLog` for appending and reading records, with the
gateway's validation :class:`Catalog` beside it) and one implementation per URI
scheme, chosen by :func:`open_event_log`. Embedded: ``sqlite:///path/log.db``.
"""

from runlake_services.eventlog.base import (
    Appended,
    Catalog,
    EventLog,
    ExperimentState,
    LogRecord,
    ModelState,
    RunState,
    StateChanges,
    VersionState,
    open_event_log,
)

__all__ = [
    "Appended",
    "Catalog",
    "EventLog",
    "ExperimentState",
    "LogRecord",
    "ModelState",
    "RunState",
    "StateChanges",
    "VersionState",
    "open_event_log",
]
