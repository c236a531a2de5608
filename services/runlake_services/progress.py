"""How far the log has been written and folded: the basis of read-your-writes.

Writes answer with a position token; a read carrying one waits here until the
compactor has folded at least that far. Embedded positions are the SQLite log's
sequence numbers written as decimal strings; "" means "no position" (don't wait).
Scale-out positions are Kafka offset vectors (``runlake.positions``), folded by a
compactor in another process: :class:`TokenProgress` holds the vector the query
service last saw it publish.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

from runlake.errors import DeadlineExceeded, InvalidArgument
from runlake.positions import covers, later, parse_vector

__all__ = ["Progress", "ReadBarrier", "TokenProgress", "parse_position"]


class ReadBarrier(Protocol):
    """What the query service needs of a progress gauge: a bounded wait, and the tokens."""

    def wait(self, token: str, timeout_s: float) -> None:
        """Return once ``token`` is folded; DeadlineExceeded after ``timeout_s``."""
        ...

    def tokens(self) -> tuple[str, str]:
        """(log end, folded): the last position appended and the last one folded."""
        ...


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

    def tokens(self) -> tuple[str, str]:
        return str(self._log_end), str(self._folded)


class TokenProgress:
    """The folded position as a Kafka offset vector, published by a compactor elsewhere.

    Vectors are partially ordered, so "folded past ``token``" is
    :func:`runlake.positions.covers`, and a newly seen vector is merged element-wise
    (a stale read of the compactor's progress can never move it backwards).
    """

    def __init__(self, folded: str = "") -> None:
        self._cond = threading.Condition()
        self._folded = folded

    @property
    def folded(self) -> str:
        return self._folded

    def folded_to(self, token: str) -> None:
        with self._cond:
            merged = later(self._folded, token)
            if merged != self._folded:
                self._folded = merged
                self._cond.notify_all()

    def wait(self, token: str, timeout_s: float) -> None:
        if not token:
            return
        if token.isdigit():
            raise InvalidArgument(
                f"{token!r} is an embedded server's position; this service folds a Kafka log",
                field="min_position",
            )
        try:
            parse_vector(token)
        except ValueError as exc:
            raise InvalidArgument(str(exc), field="min_position") from None
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not covers(self._folded, token):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DeadlineExceeded(
                        f"position {token} not folded within {timeout_s:.1f}s "
                        f"(folded: {self._folded or 'nothing yet'})",
                        field="min_position",
                    )
                self._cond.wait(left)

    def tokens(self) -> tuple[str, str]:
        """Only the compactor knows the log's end; the folded vector is the best lower bound."""
        return self._folded, self._folded
