"""How far the log has been written and folded: the basis of read-your-writes.

Writes answer with a position token; a read carrying one waits here until the
compactor has folded at least that far. Embedded positions are the SQLite log's
sequence numbers written as decimal strings; "" means "no position" (don't wait).
"""

from __future__ import annotations

import threading
import time

from runlake.errors import DeadlineExceeded, InvalidArgument

__all__ = ["Progress", "parse_position"]


def parse_position(token: str, *, field: str = "min_position") -> int:
    """The integer position in ``token``; 0 for an empty token."""
    if not token:
        return 0
    try:
        value = int(token)
    except ValueError:
        raise InvalidArgument(f"{token!r} is not a position token", field=field) from None
    if value < 0:
        raise InvalidArgument(f"{token!r} is negative", field=field)
    return value


class Progress:
    """Folded and appended positions, with a bounded wait for a position to be folded."""

    def __init__(self, folded: int = 0, log_end: int = 0) -> None:
        self._cond = threading.Condition()
        self._folded = folded
        self._log_end = log_end

    @property
    def folded(self) -> int:
        return self._folded

    @property
    def log_end(self) -> int:
        return self._log_end

    def appended(self, position: int) -> None:
        with self._cond:
            if position > self._log_end:
                self._log_end = position

    def folded_to(self, position: int) -> None:
        with self._cond:
            if position > self._folded:
                self._folded = position
                self._cond.notify_all()

    def wait(self, token: str, timeout_s: float) -> None:
        """Return once ``token`` is folded; DeadlineExceeded after ``timeout_s``."""
        target = parse_position(token)
        if target <= self._folded:
            return
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._folded < target:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DeadlineExceeded(
                        f"position {target} not folded within {timeout_s:.1f}s "
                        f"(folded: {self._folded})",
                        field="min_position",
                    )
                self._cond.wait(left)
