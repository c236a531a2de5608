"""The server's process memory settings, each checked in a fresh interpreter (they are global)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="glibc and /proc settings are Linux's"
)


def _run(code: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_prepare_process_keeps_pandas_out_of_pyarrow_but_not_out_of_reach() -> None:
    got = _run(
        """
        import json, sys
        from runlake_services.embedded.memory import prepare_process
        prepare_process()
        import pyarrow as pa, pyarrow.dataset as pads, pyarrow.compute as pc
        t = pa.table({"run_id": ["a", "b"], "value": [1.0, 2.0]})
        scanned = pads.dataset(t).to_table(filter=pads.field("run_id") == "b")
        after_scan = "pandas" in sys.modules
        frame = t.to_pandas()  # an explicit conversion still loads pandas
        print(json.dumps({"after_scan": after_scan, "rows": scanned.num_rows,
                          "frame": type(frame).__name__, "loaded": "pandas" in sys.modules}))
        """
    )
    assert got == {"after_scan": False, "rows": 1, "frame": "DataFrame", "loaded": True}


def test_without_prepare_process_pyarrow_dataset_loads_pandas() -> None:
    # The reason prepare_process exists: if pyarrow stops doing this, it can go.
    got = _run(
        """
        import json, sys
        import pyarrow.dataset
        print(json.dumps({"loaded": "pandas" in sys.modules}))
        """
    )
    assert got == {"loaded": True}


def test_prepare_process_sets_delta_rs_allocator_unless_the_user_did() -> None:
    code = """
        import json, os
        from runlake_services.embedded.memory import prepare_process
        prepare_process()
        print(json.dumps({"conf": os.environ.get("_RJEM_MALLOC_CONF")}))
        """
    from runlake_services.embedded.memory import DELTA_MALLOC_CONF

    assert _run(code) == {"conf": DELTA_MALLOC_CONF}
    user = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "_RJEM_MALLOC_CONF": "dirty_decay_ms:5000"},
    )
    assert json.loads(user.stdout.strip().splitlines()[-1]) == {"conf": "dirty_decay_ms:5000"}


@linux_only
def test_release_free_memory_returns_freed_heap_pages() -> None:
    # 200 MB of small blocks, all freed but the last (which pins the heap's top, so
    # glibc's own top trimming cannot give the pages back): only malloc_trim can.
    got = _run(
        """
        import ctypes, json
        from runlake_services.embedded.memory import release_free_memory
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc.restype = ctypes.c_void_p
        libc.free.argtypes = [ctypes.c_void_p]
        def rss_mib():
            with open("/proc/self/statm") as f:
                return int(f.read().split()[1]) * 4096 / 2**20
        blocks = [libc.malloc(4000) for _ in range(50_000)]
        for b in blocks:
            ctypes.memset(b, 1, 4000)
        for b in blocks[:-1]:
            libc.free(b)
        before = rss_mib()
        first = release_free_memory()
        after = rss_mib()
        again = release_free_memory()  # within the interval: skipped
        print(json.dumps({"before": before, "after": after, "first": first, "again": again}))
        """
    )
    assert got["first"] is True and got["again"] is False
    assert float(got["before"]) - float(got["after"]) > 150  # type: ignore[arg-type]
