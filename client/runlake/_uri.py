"""Tracking URI resolution and one gRPC channel per URI per process.

A channel is expensive (a TCP connection, an HTTP/2 session, a poller), so every
client and the background sender of one process share one per URI, created on
first use. After ``os.fork()`` the child starts with an empty registry: a channel
inherited from the parent must not be used by the child.
"""

from __future__ import annotations

import os
import threading
from urllib.parse import urlparse

import grpc

from runlake.errors import InvalidArgument

__all__ = ["DEFAULT_TRACKING_URI", "ENV", "channel", "resolve"]

DEFAULT_TRACKING_URI = "grpc://127.0.0.1:5055"
ENV = "RUNLAKE_TRACKING_URI"
_MAX_MESSAGE = 64 * 1024 * 1024
_OPTIONS = [
    ("grpc.max_receive_message_length", _MAX_MESSAGE),
    ("grpc.max_send_message_length", _MAX_MESSAGE),
    # Keepalive pings while calls are active notice a dead peer (a killed server, a
    # dropped NAT entry) in tens of seconds instead of waiting for the call timeout.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    # The sender retries with the same batch id itself; gRPC's own retries would not.
    ("grpc.enable_retries", 0),
]

_channels: dict[str, grpc.Channel] = {}
_lock = threading.Lock()


def validate(uri: str) -> str:
    """Return ``uri`` if it is ``grpc://host:port``; InvalidArgument naming ``tracking_uri``."""
    try:
        parsed = urlparse(uri)
        port = parsed.port
    except ValueError:
        port = None
        parsed = urlparse("")
    if parsed.scheme != "grpc" or not parsed.hostname or port is None:
        raise InvalidArgument(f"{uri!r} is not of the form grpc://host:port", field="tracking_uri")
    if parsed.path not in ("", "/") or parsed.query or parsed.fragment:
        raise InvalidArgument(
            f"{uri!r} has a path or query; expected grpc://host:port", field="tracking_uri"
        )
    return uri


def resolve(explicit: str | None, session: str | None = None) -> str:
    """Explicit argument > ``set_tracking_uri`` > ``RUNLAKE_TRACKING_URI`` > default, validated."""
    return validate(explicit or session or os.environ.get(ENV) or DEFAULT_TRACKING_URI)


def channel(uri: str) -> grpc.Channel:
    """The process's shared channel to ``uri``, created lazily."""
    ch = _channels.get(uri)
    if ch is not None:
        return ch
    with _lock:
        ch = _channels.get(uri)
        if ch is None:
            parsed = urlparse(validate(uri))
            host = parsed.hostname or ""
            target = f"[{host}]:{parsed.port}" if ":" in host else f"{host}:{parsed.port}"
            ch = grpc.insecure_channel(target, options=_OPTIONS)
            _channels[uri] = ch
        return ch


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # may have been held by another thread of the parent
    _channels.clear()  # never close them: the parent still uses the same sockets


os.register_at_fork(after_in_child=_after_fork_in_child)
