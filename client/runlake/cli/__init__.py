"""The `runlake` command line: server, experiments, runs, sql."""

from runlake.cli.app import app, main

__all__ = ["app", "main"]
