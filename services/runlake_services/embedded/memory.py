"""Allocator settings that keep the server's resident memory flat under a write flood.

Measured with ``bench`` (server): with the defaults, RSS kept rising during a flood
although live data did not. Two allocators hold on to freed memory:

- pyarrow's default pool (jemalloc) caches freed pages per thread; every compaction
  round allocates and frees a few times its log bytes in Arrow buffers, so the cache
  grew with each new buffer size. The system pool returns memory to glibc at once.
- glibc gives each thread that allocates its own arena (up to 8 per core), and gRPC
  worker threads, the compactor and delta-rs's runtime all allocate; freed memory stays
  in whichever arena took it. Two arenas bound that fragmentation at no measured cost.

Both are process-wide, so only the server entry point calls :func:`tune_allocators`,
before it starts threads; a library user importing runlake is left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

import pyarrow as pa

__all__ = ["tune_allocators"]

log = logging.getLogger(__name__)

_M_ARENA_MAX = -8  # from glibc's malloc.h


def tune_allocators(arena_max: int = 2) -> None:
    """Use the system memory pool for Arrow and cap glibc's malloc arenas (Linux only)."""
    pa.set_memory_pool(pa.system_memory_pool())
    if not sys.platform.startswith("linux"):
        return
    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        return
    if mallopt(_M_ARENA_MAX, arena_max) != 1:
        log.debug("mallopt(M_ARENA_MAX) refused; keeping glibc's default arenas")
