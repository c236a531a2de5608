"""CLI argument handling and output shapes with typer's CliRunner (fake servers, no runlake)."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pyarrow as pa
import pytest
from runlake import _session
from runlake.cli import app
from runlake.v1 import query_pb2 as Q
from typer.testing import CliRunner

from tests.unit.client.conftest import Fakes


@pytest.fixture
def cli(fakes: Fakes, fresh_session: _session.Session) -> tuple[CliRunner, Fakes]:
    return CliRunner(), fakes


def test_bad_output_is_a_usage_error() -> None:
    result = CliRunner().invoke(app, ["runs", "search", "--output", "xml"])
    assert result.exit_code == 2


def test_bad_view_is_a_usage_error() -> None:
    result = CliRunner().invoke(app, ["experiments", "list", "--view", "gone"])
    assert result.exit_code == 2


@pytest.mark.parametrize("uri", ["localhost:5055", "http://x:1", "grpc://nohost"])
def test_bad_tracking_uri_is_a_usage_error(uri: str) -> None:
    result = CliRunner().invoke(app, ["--tracking-uri", uri, "experiments", "list"])
    assert result.exit_code == 2
    result = CliRunner().invoke(app, ["experiments", "list"], env={"RUNLAKE_TRACKING_URI": uri})
    assert result.exit_code == 2


def test_sql_json_is_an_array_of_row_objects(cli: tuple[CliRunner, Fakes]) -> None:
    runner, fakes = cli
    fakes.query.sql_table = pa.table({"run_id": ["a", "b"], "value": [1.5, float("nan")]})
    result = runner.invoke(app, ["--tracking-uri", fakes.uri, "sql", "SELECT 1", "-o", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [
        {"run_id": "a", "value": 1.5},
        {"run_id": "b", "value": None},
    ]


def test_sql_csv_and_table(cli: tuple[CliRunner, Fakes]) -> None:
    runner, fakes = cli
    fakes.query.sql_table = pa.table({"k": ["x"], "n": [3]})
    result = runner.invoke(app, ["--tracking-uri", fakes.uri, "sql", "SELECT 1", "-o", "csv"])
    assert result.stdout.splitlines() == ["k,n", "x,3"]
    result = runner.invoke(app, ["--tracking-uri", fakes.uri, "sql", "SELECT 1"])
    assert result.exit_code == 0 and "x" in result.stdout


def test_server_errors_print_one_clean_line(cli: tuple[CliRunner, Fakes]) -> None:
    runner, fakes = cli
    fakes.query.error = (grpc.StatusCode.INVALID_ARGUMENT, "filter: unexpected end")
    result = runner.invoke(
        app, ["--tracking-uri", fakes.uri, "runs", "search", "--filter", "metrics.loss <"]
    )
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: filter: unexpected end"
    assert "Traceback" not in result.output


def test_unreachable_server_is_a_clean_error(fresh_session: _session.Session) -> None:
    result = CliRunner().invoke(
        app, ["--tracking-uri", "grpc://127.0.0.1:9", "experiments", "list"]
    )
    assert result.exit_code == 1
    assert result.stderr.startswith("error: cannot reach the runlake server at grpc://127.0.0.1:9")


def test_runs_search_get_history_and_experiments(cli: tuple[CliRunner, Fakes]) -> None:
    runner, fakes = cli
    base = ["--tracking-uri", fakes.uri]
    out = runner.invoke(app, [*base, "runs", "search", "-e", "0", "--order-by", "x", "-o", "json"])
    assert out.exit_code == 0, out.output
    rows = json.loads(out.stdout)
    assert rows[0]["run_id"] == "r" * 32 and rows[0]["metrics.loss"] == 0.5
    fakes.query.history["loss"] = [(0.5, 1, 0), (0.25, 2, 1)]
    out = runner.invoke(app, [*base, "runs", "history", "r" * 32, "loss", "-o", "json"])
    assert [r["step"] for r in json.loads(out.stdout)] == [0, 1]
    fakes.query.experiments["0"] = Q.Experiment(
        experiment_id="0", name="Default", lifecycle_stage=Q.ACTIVE
    )
    out = runner.invoke(app, [*base, "experiments", "list"])
    assert out.exit_code == 0 and "Default" in out.stdout
    out = runner.invoke(app, [*base, "experiments", "create", "new-exp"])
    assert out.exit_code == 0 and out.stdout.strip() == "1"


def test_server_flags_beat_env_which_beats_defaults(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import runlake_services.embedded as embedded

    seen = []
    monkeypatch.setattr(embedded, "run_server", seen.append)
    env = {"RUNLAKE_DATA_DIR": str(tmp_path / "env"), "RUNLAKE_PORT": "6000"}
    result = CliRunner().invoke(app, ["server", "--port", "7000"], env=env)
    assert result.exit_code == 0, result.output
    (config,) = seen
    assert config.data_dir == tmp_path / "env" and config.port == 7000
    assert config.host == "127.0.0.1" and config.http_port == 5056
    assert CliRunner().invoke(app, ["server", "--port", "99999"]).exit_code == 2
