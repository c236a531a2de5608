"""The one error type of the scoring server, and its JSON body.

Every answer that is not a prediction carries MLflow's error shape,
``{"error_code": ..., "message": ...}``, so clients written for ``mlflow models serve``
read runlake's errors unchanged. A ``field`` is added when the error names an input
column, tensor or param. No traceback ever leaves the server: tracebacks go to its log.
"""

from __future__ import annotations

from typing import Any

import orjson

from runlake.errors import RunlakeError

__all__ = [
    "BAD_REQUEST",
    "ENDPOINT_NOT_FOUND",
    "INTERNAL_ERROR",
    "ScoringError",
    "ServerStartError",
]

#: MLflow's error codes (its databricks_pb2 names) used by the scoring protocol.
BAD_REQUEST = "BAD_REQUEST"
INTERNAL_ERROR = "INTERNAL_ERROR"
ENDPOINT_NOT_FOUND = "ENDPOINT_NOT_FOUND"


class ScoringError(Exception):
    """A request that gets an error answer: its HTTP status, MLflow error code and message."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        error_code: str = BAD_REQUEST,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_code = error_code
        self.field = field

    def body(self) -> bytes:
        """The JSON answer: ``{"error_code", "message"}``, plus ``field`` when one is named."""
        out: dict[str, Any] = {"error_code": self.error_code, "message": self.message}
        if self.field is not None:
            out["field"] = self.field
        return orjson.dumps(out)

    def __repr__(self) -> str:
        return f"ScoringError({self.status}, {self.error_code}, {self.message!r})"


class ServerStartError(RunlakeError):
    """The server cannot start: its address cannot be bound, or its workers failed to."""
