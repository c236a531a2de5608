"""runlake sweep and runlake score refuse bad input with one clean line, before any Spark."""

from __future__ import annotations

from pathlib import Path

from runlake.cli.app import app
from typer.testing import CliRunner

URI = ["--tracking-uri", "grpc://127.0.0.1:9"]  # nothing listens: nothing may be reached


def test_sweep_with_a_bad_space_file_names_the_entry(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text("def objective(params):\n    return params['x']\n")
    space = tmp_path / "space.yaml"
    space.write_text("x: {uniform: [1, 0]}\n")
    result = CliRunner().invoke(
        app, [*URI, "sweep", str(script), "--space", str(space), "--metric", "loss", "-n", "2"]
    )
    assert result.exit_code == 1, result.output
    assert result.stderr.strip() == "error: space_file.x: low (1.0) must be below high (0.0)"


def test_sweep_needs_an_existing_script_with_the_objective(tmp_path: Path) -> None:
    space = tmp_path / "space.json"
    space.write_text('{"x": {"uniform": [0, 1]}}')
    args = [*URI, "sweep", str(tmp_path / "nope.py"), "-s", str(space), "-m", "loss", "-n", "2"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and result.stderr.startswith("error: script: no such file")
    script = tmp_path / "train.py"
    script.write_text("def train(params):\n    return 0.0\n")
    args[3] = str(script)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: objective: {script} defines no function 'objective'"


def test_score_refuses_bad_options_before_spark(tmp_path: Path) -> None:
    base = [*URI, "score", "--model", "models:/m/1", "--input", str(tmp_path / "in")]
    cases = {
        ("--output", str(tmp_path / "out"), "--mode", "replace"):
            "error: mode: 'replace' is not error, overwrite or append",
        ("--output", str(tmp_path / "out"), "--output-format", "csv"):
            "error: output_format: 'csv' is not delta or parquet",
        ("--output", str(tmp_path / "in")): "error: output: must differ from the input",
    }  # fmt: skip
    for extra, message in cases.items():
        result = CliRunner().invoke(app, [*base, *extra])
        assert result.exit_code == 1, result.output
        assert result.stderr.strip() == message


def test_sweep_refuses_bad_options_before_spark(tmp_path: Path) -> None:
    script = tmp_path / "train.py"
    script.write_text("def objective(params):\n    return params['x']\n")
    space = tmp_path / "space.yaml"
    space.write_text("x: {uniform: [0, 1]}\n")
    base = [*URI, "sweep", str(script), "--space", str(space), "--metric", "loss"]
    cases = {
        ("-n", "3", "--mode", "maximize"): "error: mode: 'maximize' is not 'min' or 'max'",
        ("-n", "3", "--algo", "bayes"): "error: algo: 'bayes' is not one of tpe, random, grid",
        ("--algo", "grid"): "error: space.x: uniform(0.0, 1.0) is continuous; grid search "
        "needs choice([...]) or randint(lo, hi)",
        ("-n", "3", "--early-stopping", "hyperband"):
            "error: early_stopping: 'hyperband' is not one of asha, median",
        (): "error: max_trials: is required (grid search alone defaults to the grid's size)",
    }  # fmt: skip
    for extra, message in cases.items():
        result = CliRunner().invoke(app, [*base, *extra])
        assert result.exit_code == 1, result.output
        assert result.stderr.strip() == message
