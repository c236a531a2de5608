"""MLflow in its own virtual environment under ``.runlake/bench/mlflow-venv``.

mlflow is not a dependency of runlake, so everything that imports it (its server, and the
client-side worker scripts) runs on this venv's interpreter. The venv is made once; a
marker file holding the installed version makes every later call instant.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["ROOT", "VENV", "VERSION", "env", "mlflow_exe", "python"]

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".runlake" / "bench" / "mlflow-venv"
#: 3.17.2 is known to install here; 3.18.0 does not.
VERSION = "3.17.2"
_MARKER = VENV / ".bench-mlflow-version"
_LOG = VENV.parent / "install.log"
_INSTALL_TIMEOUT_S = 1800


def env() -> dict[str, str]:
    """The environment for MLflow processes: telemetry off, nothing of runlake's leaking in."""
    out = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RUNLAKE_", "MLFLOW_", "VIRTUAL_ENV", "PYTHONPATH"))
    }
    out.update(
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="true",
        MLFLOW_ENABLE_ASYNC_LOGGING="false",
        PYTHONUNBUFFERED="1",
        PYTHONWARNINGS="ignore",
    )
    return out


def _bin(name: str) -> Path:
    return VENV / "bin" / name


def _marker() -> tuple[str, set[str]]:
    """The recorded mlflow version (first line) and the extra requirements installed with it."""
    if not _MARKER.exists():
        return "", set()
    lines = [line.strip() for line in _MARKER.read_text().splitlines() if line.strip()]
    return (lines[0] if lines else ""), set(lines[1:])


def python(extra: Sequence[str] = ()) -> str:
    """The MLflow venv's interpreter, creating the venv and installing mlflow on first use.

    ``extra`` names more pinned requirements (``"scikit-learn==1.9.1"``) that must sit beside
    mlflow, e.g. so that pickles made by runlake's venv load here. They are installed in the
    same pip call as mlflow, once; the marker remembers them, so calls without ``extra``
    (the benchmarks) keep working on a venv that has them.
    """
    exe = _bin("python")
    version, installed = _marker()
    wanted = set(extra)
    if exe.exists() and version == VERSION and wanted <= installed:
        return str(exe)
    VENV.parent.mkdir(parents=True, exist_ok=True)
    if not exe.exists():
        subprocess.run(
            [sys.executable, "-m", "venv", str(VENV)], check=True, timeout=_INSTALL_TIMEOUT_S
        )
    probe = subprocess.run(
        [str(exe), "-c", "import mlflow; print(mlflow.__version__)"],
        capture_output=True,
        text=True,
        env=env(),
        timeout=300,
    )
    missing = sorted(wanted - installed) if version == VERSION else sorted(wanted)
    if probe.stdout.strip() != VERSION or missing:
        print(
            f"bench: installing {' '.join([f'mlflow=={VERSION}', *missing])} into "
            f"{VENV.relative_to(ROOT)} (once; log in {_LOG.relative_to(ROOT)})",
            file=sys.stderr,
            flush=True,
        )
        with _LOG.open("w") as log:
            subprocess.run(
                [str(exe), "-m", "pip", "install", "-q", f"mlflow=={VERSION}", *missing],
                check=True,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env(),
                timeout=_INSTALL_TIMEOUT_S,
            )
    keep = installed if version == VERSION else set()
    _MARKER.write_text("".join(f"{line}\n" for line in [VERSION, *sorted(keep | wanted)]))
    return str(exe)


def mlflow_exe() -> str:
    """The ``mlflow`` command of the venv (installing it on first use)."""
    python()
    return str(_bin("mlflow"))
