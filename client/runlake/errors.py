"""The one closed error hierarchy of runlake, and its single mapping to gRPC codes.

Error *codes* cross the wire, never class names: the server maps an exception to
a gRPC status with :func:`to_grpc_code`, the client maps the status back with
:func:`from_grpc`. Messages name the offending field first ("field: problem"),
so a user can find the bad input without reading the server's logs.
"""

from __future__ import annotations

import grpc

__all__ = [
    "AlreadyExists",
    "Conflict",
    "DeadlineExceeded",
    "InvalidArgument",
    "NotFound",
    "ResourceExhausted",
    "RunlakeError",
    "Unavailable",
    "from_grpc",
    "to_grpc_code",
]


class RunlakeError(Exception):
    """Base of every error runlake raises on purpose."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class InvalidArgument(RunlakeError):
    """The request itself is malformed or breaks a limit; nothing was written."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(RunlakeError):
    """A named experiment, run or key does not exist."""

    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(RunlakeError):
    """A create would duplicate a unique name."""

    code = grpc.StatusCode.ALREADY_EXISTS


class Conflict(RunlakeError):
    """The request contradicts the current state (a finished run, a param's other value)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhausted(RunlakeError):
    """The server is overloaded; retry after the hinted delay."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(RunlakeError):
    """The server or its event log cannot be reached now; safe to retry."""

    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(RunlakeError):
    """A bounded wait ran out (read-your-writes, SQL time limit)."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


_BY_CODE: dict[grpc.StatusCode, type[RunlakeError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        Conflict,
        ResourceExhausted,
        Unavailable,
        DeadlineExceeded,
    )
}


def to_grpc_code(exc: BaseException) -> grpc.StatusCode:
    """The status code a server answers for ``exc`` (INTERNAL for anything unplanned)."""
    if isinstance(exc, RunlakeError):
        return exc.code
    return grpc.StatusCode.INTERNAL


def from_grpc(err: grpc.RpcError) -> RunlakeError:
    """Turn a failed call's status back into the matching runlake error."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    detail = err.details() if hasattr(err, "details") else str(err)
    cls = _BY_CODE.get(code, RunlakeError)
    out = cls(detail or code.name)
    out.code = code
    return out
