"""Generate the Python modules for proto/ into client/runlake/v1.

Generated code is built, never edited or committed: the package build hook
(scripts/hatch_build.py) calls this, so `pip install -e .` always leaves
fresh stubs, and `make protos` reruns it after a .proto edit.
"""

from __future__ import annotations

import shutil
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
OUT = ROOT / "client"


def generate() -> list[Path]:
    import grpc_tools
    from grpc_tools import protoc  # build-time dependency only

    sources = sorted(PROTO_ROOT.rglob("*.proto"))
    include = Path(grpc_tools.__file__).parent / "_proto"
    plugins = []
    for name in ("protoc-gen-mypy", "protoc-gen-mypy_grpc"):
        exe = shutil.which(name) or shutil.which(name, path=sysconfig.get_path("scripts"))
        if exe is None:
            raise SystemExit(f"{name} not found: install mypy-protobuf")
        plugins.append(f"--plugin={name}={exe}")
    args = [
        "protoc",
        *plugins,
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={OUT}",
        f"--grpc_python_out={OUT}",
        f"--mypy_out={OUT}",
        f"--mypy_grpc_out={OUT}",
        *[str(s) for s in sources],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed on " + ", ".join(s.name for s in sources))
    pkg = OUT / "runlake" / "v1"
    (pkg / "__init__.py").write_text('"""Generated from proto/runlake/v1; do not edit."""\n')
    return sorted(pkg.glob("*.py*"))


if __name__ == "__main__":
    for path in generate():
        print(path.relative_to(ROOT), file=sys.stderr)
