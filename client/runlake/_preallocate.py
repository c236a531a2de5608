"""Reserve a file's blocks before writing it, where the filesystem does so natively.

A download that cannot fit then fails at once instead of after streaming most of it, and
writing into reserved blocks is cheaper than allocating them a page at a time (ext4:
512 MiB written in a fresh directory took 0.07 s of CPU instead of 0.1 to 0.7 s).

Linux's ``fallocate(2)``, not ``os.posix_fallocate``: where a filesystem cannot reserve
blocks (NFSv3, some FUSE mounts), glibc's ``posix_fallocate`` emulates it by writing to every
block of the file, which would double a download's writes there; ``fallocate`` says
EOPNOTSUPP instead and the file is written as the bytes come. Other systems: not reserved.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys
from collections.abc import Callable
from functools import cache

__all__ = ["NoRoom", "reserve"]

#: what a reservation past the free space, the quota or the process's file size limit says
_NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class NoRoom(OSError):
    """The filesystem has no room for the reservation (ENOSPC, EDQUOT or EFBIG)."""


@cache
def _fallocate() -> Callable[[int, int, int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).fallocate
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
    fn.restype = ctypes.c_int
    return fn  # type: ignore[no-any-return]


def reserve(fd: int, size: int) -> bool:
    """Reserve ``size`` bytes for the file open at ``fd``; whether the filesystem did.

    Raises :class:`NoRoom` when they do not fit; any other refusal (the filesystem cannot
    reserve) answers False and leaves the file as it was.
    """
    fn = _fallocate()
    if size <= 0 or fn is None:
        return False
    while fn(fd, 0, 0, size) != 0:
        err = ctypes.get_errno()
        if err == errno.EINTR:
            continue
        if err in _NO_ROOM:
            raise NoRoom(err, os.strerror(err))
        return False
    return True
