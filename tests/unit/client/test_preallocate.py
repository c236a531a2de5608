"""Reserving a download's blocks: done where the filesystem can, refused cleanly elsewhere."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from runlake._preallocate import reserve

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fallocate(2)")


def test_a_reserved_file_has_its_size_and_its_blocks(tmp_path: Path) -> None:
    path = tmp_path / "f"
    with path.open("wb") as f:
        assert reserve(f.fileno(), 3 * 1024 * 1024 + 5)
        st = os.fstat(f.fileno())
        assert st.st_size == 3 * 1024 * 1024 + 5
        assert st.st_blocks * 512 >= st.st_size  # allocated, not a sparse hole
        f.write(b"abc")  # writing from the start still works and keeps the size
    assert path.read_bytes()[:3] == b"abc"


def test_what_cannot_be_reserved_is_left_as_it_was() -> None:
    read, write = os.pipe()  # fallocate on a pipe: ESPIPE, not "no room"
    try:
        assert reserve(write, 1024) is False
        assert reserve(write, 0) is False
    finally:
        os.close(read)
        os.close(write)
