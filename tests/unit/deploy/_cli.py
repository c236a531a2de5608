"""Parse a container's command line with the real `runlake` CLI, without running it.

The args go through click's own parser for the typer command (`make_context`): unknown
options, missing required ones, bad types and out-of-range numbers fail as they would at
start-up. Options that the scale-out work adds in parallel (see ``PENDING``) are checked by
name only while the command lacks them; once the command has an option it is parsed for
real, so this list only ever shrinks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import typer
from runlake.cli.app import app

__all__ = ["PENDING", "Parsed", "grpc_target", "parse_cli"]

#: command -> options (each taking one value) not in the CLI yet, by name.
PENDING: dict[str, frozenset[str]] = {
    "gateway": frozenset({"--http-port", "--query-upstream", "--coordinator-upstream"}),
    "query": frozenset({"--store", "--host", "--port", "--http-port"}),
}


@dataclass
class Parsed:
    command: str
    #: what click parsed: parameter name -> value (defaults filled in)
    params: dict[str, Any]
    #: pending options given, by name -> value
    pending: dict[str, str] = field(default_factory=dict)

    def option(self, name: str) -> Any:
        """An option's value by its command-line name (``--http-port``), real or pending."""
        if name in self.pending:
            return self.pending[name]
        key = name.lstrip("-").replace("-", "_")
        assert key in self.params, f"{self.command}: no option {name}"
        return self.params[key]


def _command(name: str) -> Any:
    """The click command (typer ships its own click, so it is typed loosely here)."""
    group = typer.main.get_command(app)
    commands: dict[str, Any] = group.commands  # type: ignore[attr-defined]
    return commands.get(name)


def parse_cli(args: list[str]) -> Parsed:
    """``args`` (``["gateway", "--log", ...]``) parsed by the CLI; raises on a bad one."""
    name, rest = args[0], [str(a) for a in args[1:]]
    command = _command(name)
    known = (
        set()
        if command is None
        else {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
    )
    pending_names = PENDING.get(name, frozenset()) - known
    if command is None and not pending_names:
        raise AssertionError(f"runlake has no command {name!r}")
    kept: list[str] = []
    pending: dict[str, str] = {}
    tokens = iter(rest)
    for token in tokens:
        if token in pending_names:
            value = next(tokens, None)
            assert value is not None and not value.startswith("--"), f"{token} needs a value"
            assert token not in pending, f"{token} given twice"
            pending[token] = value
        else:
            kept.append(token)
    if command is None:
        assert not kept, f"runlake {name}: options not known even by name: {kept}"
        return Parsed(name, {}, pending)
    ctx = command.make_context(name, kept)
    return Parsed(name, dict(ctx.params), pending)


def grpc_target(uri: str) -> tuple[str, int]:
    """``grpc://HOST:PORT`` -> (host, port); anything else fails the test."""
    parsed = urlparse(uri)
    assert parsed.scheme == "grpc" and parsed.hostname and parsed.port, uri
    assert parsed.path in ("", "/"), uri
    return parsed.hostname, parsed.port
