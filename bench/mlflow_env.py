"""MLflow 3.17.2 in its own virtual environment (cached under .runlake/bench/), telemetry off."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".runlake" / "bench" / "mlflow-venv"
VERSION = "3.17.2"
ENV = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


def python() -> str:
    """The MLflow venv's interpreter, installing it on first use."""
    exe = VENV / "bin" / "python"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    probe = subprocess.run(
        [str(exe), "-c", "import mlflow; print(mlflow.__version__)"],
        capture_output=True,
        text=True,
        env=ENV,
    )
    if probe.stdout.strip() != VERSION:
        print(f"bench: installing mlflow=={VERSION} into {VENV.relative_to(ROOT)}", flush=True)
        subprocess.run([str(exe), "-m", "pip", "install", "-q", f"mlflow=={VERSION}"], check=True)
    return str(exe)
