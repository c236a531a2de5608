"""A model's environment: ``requirements.txt``, ``conda.yaml`` and ``python_env.yaml``.

The three files are the ones MLflow writes, so MLflow's tooling (``mlflow models serve``
with virtualenv or conda) can rebuild the environment of a runlake model. Requirements are
pinned to the versions installed when the model is saved (``scikit-learn==1.9.1``): a
pickle is only portable to the library versions it was made with. Each flavor names the
packages it needs; runlake does not scan the user's imports as MLflow does (too slow and
too surprising), so a custom model lists its own with ``pip_requirements`` or
``extra_pip_requirements``. Neither runlake nor mlflow is listed: both can load the model,
and whichever serves it installs itself.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path

import yaml

__all__ = [
    "CONDA_FILE",
    "PYTHON_ENV_FILE",
    "REQUIREMENTS_FILE",
    "pinned",
    "write_environment",
]

REQUIREMENTS_FILE = "requirements.txt"
CONDA_FILE = "conda.yaml"
PYTHON_ENV_FILE = "python_env.yaml"

#: The ``env`` block of the python_function flavor, pointing at the files above.
ENV_CONF = {"conda": CONDA_FILE, "virtualenv": PYTHON_ENV_FILE}


def installed_version(dist: str) -> str | None:
    """The installed version of a distribution, or None."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def pinned(dists: Iterable[str]) -> list[str]:
    """``name==version`` for each installed distribution (those not installed are skipped)."""
    out = []
    for dist in dists:
        version = installed_version(dist)
        if version is not None:
            out.append(f"{dist}=={version}")
    return out


def python_version() -> str:
    """The running interpreter's version, e.g. ``3.11.7``."""
    return platform.python_version()


def resolve_requirements(
    default: Sequence[str],
    pip_requirements: Sequence[str] | str | Path | None,
    extra_pip_requirements: Sequence[str] | str | Path | None,
) -> list[str]:
    """The model's requirements: the user's list (or file) if given, else the flavor's pins.

    ``extra_pip_requirements`` is appended either way; duplicates are dropped in order.
    """
    base = _read(pip_requirements) if pip_requirements is not None else pinned(default)
    extra = _read(extra_pip_requirements) if extra_pip_requirements is not None else []
    seen: dict[str, None] = {}
    for line in [*base, *extra]:
        seen.setdefault(line.strip(), None)
    return [line for line in seen if line]


def _read(reqs: Sequence[str] | str | Path) -> list[str]:
    if isinstance(reqs, str | Path):
        lines = Path(reqs).read_text().splitlines()
        return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    return [str(r) for r in reqs]


def write_environment(model_dir: Path, requirements: Sequence[str]) -> dict[str, str]:
    """Write the three environment files; returns the flavor's ``env`` block."""
    reqs = list(requirements)
    (model_dir / REQUIREMENTS_FILE).write_text("".join(f"{r}\n" for r in reqs))
    pip = installed_version("pip")
    conda = {
        "name": "runlake-env",
        "channels": ["conda-forge"],
        "dependencies": [
            f"python={python_version()}",
            f"pip<={pip}" if pip else "pip",
            {"pip": reqs},
        ],
    }
    (model_dir / CONDA_FILE).write_text(yaml.safe_dump(conda, sort_keys=False))
    python_env = {
        "python": python_version(),
        "build_dependencies": pinned(["pip", "setuptools", "wheel"]) or ["pip"],
        "dependencies": [f"-r {REQUIREMENTS_FILE}"],
    }
    (model_dir / PYTHON_ENV_FILE).write_text(yaml.safe_dump(python_env, sort_keys=False))
    return dict(ENV_CONF)
