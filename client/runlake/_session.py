"""The one object holding the fluent API's state (tracking URI, experiment, run stack).

It lives in its own module so :class:`runlake.client.RunlakeClient` can honour
``set_tracking_uri`` without importing the fluent module.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from runlake._uri import ENV

if TYPE_CHECKING:
    from runlake.client import RunlakeClient
    from runlake.entities import Run

__all__ = ["Session", "session"]


@dataclass
class Session:
    """Process-wide fluent state; a forked child keeps the run stack but not its ownership."""

    tracking_uri: str | None = None
    experiment_id: str | None = None
    #: Active runs, innermost last, each with the pid that started it (only that process
    #: ends it at exit: a forked child must not finish its parent's run).
    runs: list[tuple[Run, int]] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)
    exit_hook_installed: bool = False
    _client: RunlakeClient | None = None
    _client_key: tuple[str | None, str | None] = (None, None)

    def client(self) -> RunlakeClient:
        """The cached client for the current URI (rebuilt when set_tracking_uri or env change).

        Called on every ``log_metric``: a URI set with ``set_tracking_uri`` wins over the
        environment, so the environment is read only when none is set (reading it cost
        ~40% of a ``log_metric`` call, profiled with py-spy).
        """
        uri = self.tracking_uri
        key = (uri, None) if uri is not None else (None, os.environ.get(ENV))
        c = self._client
        if c is None or key != self._client_key:
            from runlake.client import RunlakeClient

            c = RunlakeClient(None)
            self._client, self._client_key = c, key
        return c

    def active(self) -> Run | None:
        return self.runs[-1][0] if self.runs else None


session = Session()


def _after_fork_in_child() -> None:
    session.lock = threading.RLock()
    session._client = None


os.register_at_fork(after_in_child=_after_fork_in_child)
