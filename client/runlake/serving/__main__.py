"""``python -m runlake.serving -m MODEL [options]``: the scoring server without the full CLI.

The same command as ``runlake models serve`` (same options, same ready line), for scripts,
containers and benchmarks that should not depend on the rest of the CLI.
"""

from __future__ import annotations

import sys

import typer

from runlake.cli.serve_cmd import serve
from runlake.errors import RunlakeError


def main() -> None:
    """Run the ``serve`` command; a runlake error is one ``error:`` line and exit status 1."""
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(serve)
    try:
        app()
    except RunlakeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
