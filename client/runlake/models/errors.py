"""Errors of the model format, as subclasses of runlake's one hierarchy (``runlake.errors``).

They live here rather than in ``runlake.errors`` because they never cross the wire: a model
is saved, loaded and scored in the client's process. Each still maps to a gRPC code through
its base class, so a server that scores models later answers them correctly.
"""

from __future__ import annotations

import grpc

from runlake.errors import InvalidArgument, RunlakeError

__all__ = [
    "MissingFlavorDependency",
    "ModelFormatError",
    "ModelSchemaError",
    "UnsupportedModelUri",
]


class ModelSchemaError(InvalidArgument):
    """Input given to ``predict`` does not match the model's signature.

    ``field`` (and ``column``) name the offending input column, tensor or param, so a caller
    can fix the data without reading the signature by hand.
    """

    def __init__(self, message: str, *, column: str | None = None) -> None:
        self.column = column
        super().__init__(message, field=column)


class ModelFormatError(InvalidArgument):
    """A model directory is malformed or uses a format runlake cannot load (e.g. skops)."""


class UnsupportedModelUri(RunlakeError, NotImplementedError):
    """A model URI whose scheme runlake cannot resolve (yet); also a ``NotImplementedError``."""

    code = grpc.StatusCode.UNIMPLEMENTED


class MissingFlavorDependency(RunlakeError, ImportError):
    """A flavor's framework (e.g. torch) is not installed; also an ``ImportError``."""

    code = grpc.StatusCode.FAILED_PRECONDITION
