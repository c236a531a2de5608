"""Tracking URI resolution and one gRPC channel per URI per process."""

from __future__ import annotations

import os
import threading
from urllib.parse import urlparse

import grpc

from runlake.errors import InvalidArgument

__all__ = ["DEFAULT_TRACKING_URI", "channel", "resolve"]

DEFAULT_TRACKING_URI = "grpc://127.0.0.1:5055"
ENV = "RUNLAKE_TRACKING_URI"
_MAX_MESSAGE = 64 * 1024 * 1024

_channels: dict[tuple[int, str], grpc.Channel] = {}
_lock = threading.Lock()


def resolve(explicit: str | None, session: str | None = None) -> str:
    """Argument > set_tracking_uri > RUNLAKE_TRACKING_URI > default; validated."""
    uri = explicit or session or os.environ.get(ENV) or DEFAULT_TRACKING_URI
    parsed = urlparse(uri)
    if parsed.scheme != "grpc" or not parsed.hostname or parsed.port is None:
        raise InvalidArgument(f"{uri!r} is not of the form grpc://host:port", field="tracking_uri")
    return uri


def channel(uri: str) -> grpc.Channel:
    """The process's channel to ``uri`` (a fresh one after fork)."""
    key = (os.getpid(), uri)
    with _lock:
        ch = _channels.get(key)
        if ch is None:
            parsed = urlparse(uri)
            ch = grpc.insecure_channel(
                f"{parsed.hostname}:{parsed.port}",
                options=[
                    ("grpc.max_receive_message_length", _MAX_MESSAGE),
                    ("grpc.max_send_message_length", _MAX_MESSAGE),
                    ("grpc.keepalive_time_ms", 30_000),
                    ("grpc.enable_retries", 0),
                ],
            )
            _channels[key] = ch
        return ch
