"""A venv with the real torch, for the pytorch flavor's tests, under ``.runlake/test``.

torch is not a dependency of runlake (its Linux wheels bring ~4 GB of CUDA libraries), so
the main venv does not have it. This venv gets torch, pinned, and then sees the main venv's
packages too (a ``.pth`` file adds its site-packages after its own), so runlake, numpy and
pandas are the very ones the rest of the suite tests. Made once; a marker file holding the
torch version makes later calls instant.
"""

from __future__ import annotations

import os
import site
import subprocess
import sys
from pathlib import Path

__all__ = ["TORCH", "env", "python"]

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".runlake" / "test" / "torch-venv"
TORCH = "2.15.0"
_MARKER = VENV / ".torch-version"
_INSTALL_TIMEOUT_S = 1800


def env() -> dict[str, str]:
    """The environment for the venv's processes: nothing of runlake's settings leaking in."""
    out = {k: v for k, v in os.environ.items() if not k.startswith(("RUNLAKE_", "VIRTUAL_ENV"))}
    out.pop("PYTHONPATH", None)
    out["PYTHONUNBUFFERED"] = "1"
    return out


def python() -> str:
    """The venv's interpreter, creating it and installing torch on first use."""
    exe = VENV / "bin" / "python"
    if exe.exists() and _MARKER.exists() and _MARKER.read_text().strip() == TORCH:
        return str(exe)
    VENV.parent.mkdir(parents=True, exist_ok=True)
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, timeout=300)
    print(f"tests: installing torch=={TORCH} into {VENV.relative_to(ROOT)} (once)", flush=True)
    subprocess.run(
        [str(exe), "-m", "pip", "install", "-q", "--disable-pip-version-check", f"torch=={TORCH}"],
        check=True,
        env=env(),
        timeout=_INSTALL_TIMEOUT_S,
    )
    # after torch's own packages, the main venv's (addsitedir also runs its .pth files, so
    # the editable runlake install is found)
    own = subprocess.run(
        [str(exe), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True, env=env(), timeout=60,
    ).stdout.strip()  # fmt: skip
    main = [p for p in site.getsitepackages() if Path(p).is_dir()]
    lines = "".join(f"import site; site.addsitedir({p!r})\n" for p in main)
    (Path(own) / "runlake-main-venv.pth").write_text(lines)
    _MARKER.write_text(TORCH + "\n")
    return str(exe)
