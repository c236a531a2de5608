"""Process settings that keep the server's resident memory flat and small under a write flood.

Measured with ``bench`` (server) and a native heap profiler; see bench/RESULTS.md. Each
setting here is process-wide, so only the server entry point applies them (a library user
importing runlake is left alone):

- pyarrow's default pool (jemalloc, now mimalloc) caches freed pages per thread; every
  compaction round allocates and frees a few times its log bytes in Arrow buffers, so the
  cache grew with each new buffer size. The system pool returns memory to glibc at once.
- glibc gives each thread that allocates its own arena (up to 8 per core), and gRPC
  worker threads, the compactor and delta-rs's runtime all allocate; freed memory stays
  in whichever arena took it. Two arenas bound that fragmentation at no measured cost.
- delta-rs (the ``deltalake`` wheel) brings its own jemalloc, which keeps freed pages for
  10 s before it returns them. A compaction round allocates and frees tens of MB in
  delta-rs every second, so those 10 s were ~30-40 MiB of the flood's RSS. One second
  returns them at no measured cost. Its settings are read from ``_RJEM_MALLOC_CONF`` when
  delta-rs loads, so :func:`prepare_process` must run before ``deltalake`` is imported.
- pyarrow imports pandas (~30 MiB resident: its modules and libraries) the first time it
  checks whether a value is a pandas object, which ``import pyarrow.dataset`` already
  does. The server never handles pandas objects; :func:`prepare_process` lets that first
  check find no pandas. pyarrow still imports pandas when asked for a conversion
  (``to_pandas()``), so nothing stops working.
- glibc keeps freed memory in its arenas; :func:`release_free_memory` hands the free pages
  back (``malloc_trim``), which the compactor calls between rounds.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import importlib.abc
import importlib.machinery
import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from types import ModuleType

__all__ = [
    "DELTA_MALLOC_CONF",
    "prepare_process",
    "release_free_memory",
    "tune_allocators",
]

log = logging.getLogger(__name__)

_M_ARENA_MAX = -8  # from glibc's malloc.h

#: delta-rs's jemalloc: return freed pages after 1 s (its default: 10 s).
DELTA_MALLOC_CONF = "dirty_decay_ms:1000,muzzy_decay_ms:0"
_DELTA_MALLOC_ENV = "_RJEM_MALLOC_CONF"  # the prefix of delta-rs's jemalloc build


class _NoPandas(importlib.abc.MetaPathFinder):
    """Answers ``import pandas`` with ModuleNotFoundError while installed on sys.meta_path."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == "pandas" or fullname.startswith("pandas."):
            raise ModuleNotFoundError(f"{fullname} is not loaded by the server", name=fullname)
        return None


def _keep_pandas_out_of_pyarrow() -> None:
    """Make pyarrow's lazy "is pandas there?" check, made once per process, find none."""
    if "pandas" in sys.modules or "pyarrow.dataset" in sys.modules:
        return  # too late: the check has been made (the server test would notice)
    import pyarrow as pa

    finder = _NoPandas()
    sys.meta_path.insert(0, finder)
    try:
        pa.scalar(0)  # the first pa.scalar/pa.array asks pyarrow's pandas shim
    finally:
        sys.meta_path.remove(finder)


def prepare_process() -> None:
    """Settings that must come before the server's imports (delta-rs, pyarrow.dataset)."""
    if "deltalake" not in sys.modules:
        os.environ.setdefault(_DELTA_MALLOC_ENV, DELTA_MALLOC_CONF)
    _keep_pandas_out_of_pyarrow()


@functools.cache
def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt  # noqa: B018 - glibc has it, musl does not
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to tune
        return None
    return libc


def tune_allocators(arena_max: int = 2) -> None:
    """Use the system memory pool for Arrow and cap glibc's malloc arenas (Linux only)."""
    import pyarrow as pa

    pa.set_memory_pool(pa.system_memory_pool())
    libc = _libc()
    if libc is None:
        return
    if libc.mallopt(_M_ARENA_MAX, arena_max) != 1:
        log.debug("mallopt(M_ARENA_MAX) refused; keeping glibc's default arenas")


_trim_lock = threading.Lock()
_last_trim = 0.0


def release_free_memory(min_interval_s: float = 1.0) -> bool:
    """Return glibc's free pages to the system, at most once per ``min_interval_s``.

    True when it trimmed. A trim walks the free lists of every arena (a few ms with two
    arenas), so callers in a loop are rate-limited here rather than each keeping a clock.
    """
    global _last_trim
    libc = _libc()
    if libc is None:
        return False
    with _trim_lock:
        now = time.monotonic()
        if now - _last_trim < min_interval_s:
            return False
        _last_trim = now
    libc.malloc_trim(0)
    return True
