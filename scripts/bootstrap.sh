#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv and install
# runlake with its pinned dependencies. Re-runs pip only when pyproject.toml or
# a .proto file changed since the last install, so a second run takes a second.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "runlake needs Python >= 3.11 (found: $("$PYTHON" --version 2>&1))" >&2
  exit 1
fi

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
fi

stamp=.venv/.runlake-installed
want=$(cat pyproject.toml proto/runlake/v1/*.proto | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || [ ! -f client/runlake/v1/events_pb2.py ]; then
  echo "bootstrap: installing runlake and its dependencies into .venv" >&2
  .venv/bin/python -m pip install --quiet -e '.[dev,scale,models,sweeps]'
  echo "$want" > "$stamp"
fi
