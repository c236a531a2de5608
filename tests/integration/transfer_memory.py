"""Artifact transfers run in a fresh client process, for what only a process shows.

Peak memory of the client and the server while one large artifact goes up and comes back:
the transfer runs in a fresh client process, which measures itself and the server: before
each direction it resets both processes' peak RSS (``/proc/PID/clear_refs``, Linux) and
notes their RSS, and afterwards it reads the peaks (``VmHWM``). The peak is the kernel's
own high-water mark, so a short spike between samples cannot be missed. And a download
under a file-size limit, which stands in for a full disk.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import runlake

__all__ = ["Growth", "download_with_small_file_limit", "make_sparse_file", "measure_transfer"]

_SCRIPT = r"""
import json, os, sys, tempfile
from pathlib import Path
import runlake

uri, server_pid, src, mode, tmp = sys.argv[1:6]
os.environ["RUNLAKE_ARTIFACT_MODE"] = mode

def status(pid, key):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024  # kB -> MiB
    raise KeyError(key)

def measured(fn):
    pids = (os.getpid(), int(server_pid))
    for pid in pids:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")  # reset the peak RSS to the current RSS
    before = [status(pid, "VmRSS") for pid in pids]
    fn()
    return [status(pid, "VmHWM") - b for pid, b in zip(pids, before)]

c = runlake.RunlakeClient(uri)
rid = c.create_run("0", run_name="memory-" + mode).info.run_id
c.flush()
c.list_artifacts(rid)  # connections and imports are warm before measuring
up = measured(lambda: c.log_artifact(rid, src, "big"))
dst = tempfile.mkdtemp(dir=tmp)
down = measured(lambda: c.download_artifacts(rid, "big/" + Path(src).name, dst))
got = Path(dst) / Path(src).name
assert got.stat().st_size == Path(src).stat().st_size, "short download"
print(json.dumps({"run_id": rid, "up": up, "down": down}))
"""


@dataclass(frozen=True)
class Growth:
    """MiB above the starting RSS at the peak of each transfer, per process."""

    run_id: str
    client_up: float
    server_up: float
    client_down: float
    server_down: float


def make_sparse_file(path: Path, mib: int) -> Path:
    """A file of ``mib`` MiB that costs no disk to write (reads as zeros)."""
    with path.open("wb") as f:
        f.truncate(mib * 1024 * 1024)
    return path


def measure_transfer(
    uri: str, server_pid: int, src: Path, mode: str, tmp: Path, env: dict[str, str] | None = None
) -> Growth:
    import os

    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT, uri, str(server_pid), str(src), mode, str(tmp)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    return Growth(got["run_id"], got["up"][0], got["up"][1], got["down"][0], got["down"][1])


_DOWNLOAD_UNDER_A_FILE_LIMIT = r"""
import json, resource, signal, sys
import runlake
from runlake.errors import RunlakeError
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an over-limit write fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))  # files of at most 1 MiB
c = runlake.RunlakeClient(sys.argv[1])
try:
    c.download_artifacts(sys.argv[2], sys.argv[3], sys.argv[4])
    print(json.dumps(["", ""]))
except RunlakeError as exc:
    print(json.dumps([str(exc), exc.field]))
"""


def download_with_small_file_limit(
    client: runlake.RunlakeClient, run_id: str, tmp_path: Path, mode: str
) -> tuple[str, str, list[Path]]:
    """Log a 3 MiB artifact, then download it in a process that may write at most 1 MiB a file.

    (the error it got, the error's field, what the download left in its directory).
    RLIMIT_FSIZE stands in for a full disk: preallocating past it fails with EFBIG as
    preallocating past the free space fails with ENOSPC.
    """
    src = tmp_path / "blob.bin"
    src.write_bytes(os.urandom(3 * 1024 * 1024))
    client.log_artifact(run_id, str(src), "big")
    dst = tmp_path / "dst"
    dst.mkdir()
    script = [_DOWNLOAD_UNDER_A_FILE_LIMIT, client.tracking_uri, run_id, "big/blob.bin", str(dst)]
    out = subprocess.run(
        [sys.executable, "-c", *script],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "RUNLAKE_ARTIFACT_MODE": mode},
        check=True,
    )
    error, field = json.loads(out.stdout.strip().splitlines()[-1])
    return str(error), str(field), list(dst.iterdir())
