"""Settings validation and the ``serve`` typer command's option handling (no server started)."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import typer
from runlake.cli.serve_cmd import serve
from runlake.serving import server as server_mod
from runlake.serving.config import ServeConfig
from runlake.serving.errors import ServerStartError
from typer.testing import CliRunner


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("serve")(serve)

    @app.command("other")
    def other() -> None:  # a second command, so "serve" is a subcommand as under "models"
        pass

    return app


def test_config_round_trips_through_json() -> None:
    config = ServeConfig("m", port=0, workers=3, max_batch_rows=7, batching="off")
    assert ServeConfig.from_json(config.to_json()) == config


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"model_uri": ""}, "model_uri"),
        ({"port": 70000}, "port"),
        ({"workers": 0}, "workers"),
        ({"max_batch_rows": 0}, "max_batch_rows"),
        ({"max_wait_ms": -1}, "max_wait_ms"),
        ({"batching": "sometimes"}, "batching"),
        ({"max_body_bytes": 10}, "max_body_bytes"),
        ({"keep_alive_s": 0}, "keep_alive_s"),
    ],
)
def test_config_refuses_bad_values(kwargs: dict[str, Any], needle: str) -> None:
    args = {"model_uri": "m", **kwargs}
    with pytest.raises(ValueError, match=needle):
        ServeConfig(**args)


def test_cli_passes_options_to_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[ServeConfig] = []

    def fake_run(config: ServeConfig) -> int:
        seen.append(config)
        return 0

    monkeypatch.setattr("runlake.serving.run", fake_run)
    result = CliRunner().invoke(
        _app(),
        ["serve", "-m", "some/model", "-p", "0", "-w", "2", "--max-batch-rows", "64",
         "--batching", "off", "--max-wait-ms", "0"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (config,) = seen
    assert config.model_uri == "some/model" and config.host == "127.0.0.1"
    assert (config.port, config.workers, config.max_batch_rows) == (0, 2, 64)
    assert config.batching == "off" and config.max_wait_ms == 0


@pytest.mark.parametrize(
    "args",
    [
        ["serve"],  # no model
        ["serve", "-m", "x", "--batching", "maybe"],
        ["serve", "-m", "x", "--workers", "0"],
        ["serve", "-m", "x", "--port", "-1"],
    ],
)
def test_cli_usage_errors(args: list[str]) -> None:
    assert CliRunner().invoke(_app(), args).exit_code == 2


def test_cli_help_lists_the_options() -> None:
    result = CliRunner().invoke(_app(), ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--model-uri", "--host", "--port", "--workers", "--max-batch-rows"):
        assert option in result.output


def test_a_taken_port_is_a_clean_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ServerStartError, match="cannot listen"):
            server_mod.run(ServeConfig("unused", port=port))


def test_bind_gives_the_chosen_port() -> None:
    sock = server_mod.bind("127.0.0.1", 0)
    try:
        assert server_mod.format_url(sock).startswith("http://127.0.0.1:")
        assert sock.get_inheritable()
    finally:
        sock.close()
