"""Tracking end to end through a real `runlake server` process on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid

import pytest
import runlake
from runlake.errors import Conflict, InvalidArgument, NotFound
from runlake_services.embedded.process import ServerProcess


@pytest.fixture(autouse=True)
def _uri(server: ServerProcess) -> None:
    runlake.set_tracking_uri(server.uri)


def _experiment() -> str:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    return runlake.set_experiment(name).experiment_id


def test_health_endpoint(server: ServerProcess) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}/health", timeout=5) as r:
        body = json.load(r)
    assert body["status"] == "ok" and body["folded"] <= body["log_end"]


def test_log_then_search_sees_own_writes() -> None:
    exp = _experiment()
    with runlake.start_run(run_name="baseline") as run:
        runlake.log_params({"lr": "0.1", "layers": 3})
        for step in range(5):
            runlake.log_metric("loss", 1.0 / (step + 1), step=step)
        runlake.set_tag("team", "vision")
    rid = run.info.run_id
    found = runlake.search_runs(
        experiment_ids=[exp],
        filter_string="metrics.loss < 0.5 AND params.lr = '0.1'",
        output_format="list",
    )
    assert [r.info.run_id for r in found] == [rid]
    got = runlake.get_run(rid)
    assert got.info.status == "FINISHED" and got.info.run_name == "baseline"
    assert got.data.metrics == {"loss": pytest.approx(0.2)}
    assert got.data.params == {"lr": "0.1", "layers": "3"}
    assert got.data.tags["team"] == "vision"
    assert got.data.tags["mlflow.runName"] == "baseline"
    assert "mlflow.user" in got.data.tags and "mlflow.source.name" in got.data.tags
    history = runlake.get_metric_history(rid, "loss")
    assert [m.step for m in history] == [0, 1, 2, 3, 4]
    assert history[-1].value == pytest.approx(0.2)


def test_search_or_and_order_and_paging() -> None:
    exp = _experiment()
    ids = []
    for i in range(7):
        with runlake.start_run(experiment_id=exp) as run:
            runlake.log_metric("acc", i / 10)
            runlake.log_param("model", "cnn" if i % 2 else "mlp")
        ids.append(run.info.run_id)
    client = runlake.RunlakeClient()
    page = client.search_runs(
        [exp],
        filter_string="(params.model = 'cnn' AND metrics.acc > 0.2) OR metrics.acc = 0",
        order_by=["metrics.acc DESC"],
        max_results=2,
    )
    seen = [r.info.run_id for r in page]
    while page.token:
        page = client.search_runs(
            [exp],
            filter_string="(params.model = 'cnn' AND metrics.acc > 0.2) OR metrics.acc = 0",
            order_by=["metrics.acc DESC"],
            max_results=2,
            page_token=page.token,
        )
        seen += [r.info.run_id for r in page]
    assert seen == [ids[5], ids[3], ids[0]]


def test_nested_runs_and_failure_status() -> None:
    _experiment()
    with pytest.raises(ZeroDivisionError), runlake.start_run() as parent:
        with runlake.start_run(nested=True) as child:
            runlake.log_metric("x", 1.0)
        _ = 1 / 0
    got_child = runlake.get_run(child.info.run_id)
    assert got_child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert got_child.info.status == "FINISHED"
    assert runlake.get_run(parent.info.run_id).info.status == "FAILED"


def test_delete_and_restore_run() -> None:
    exp = _experiment()
    with runlake.start_run() as run:
        runlake.log_metric("m", 1.0)
    rid = run.info.run_id
    runlake.delete_run(rid)
    assert runlake.search_runs([exp], output_format="list") == []
    assert runlake.get_run(rid).info.lifecycle_stage == "deleted"
    runlake.restore_run(rid)
    assert [r.info.run_id for r in runlake.search_runs([exp], output_format="list")] == [rid]


def test_bad_inputs_are_reported_with_their_field() -> None:
    _experiment()
    with runlake.start_run() as run:
        runlake.log_param("p", "a")
        runlake.log_param("p", "b")
        with pytest.raises(InvalidArgument, match="value"):
            runlake.flush()
        runlake.log_metric("ok", 1.0)
    with pytest.raises(InvalidArgument, match="step"):
        runlake.log_metric("loss", 1.0, step=float("nan"))  # type: ignore[arg-type]
    client = runlake.RunlakeClient()
    client.log_metric(run.info.run_id, "late", 1.0)
    with pytest.raises(Conflict, match="FINISHED"):
        client.flush()
    with pytest.raises(InvalidArgument, match="filter"):
        runlake.search_runs(filter_string="metrics.loss <<< 3", output_format="list")
    with pytest.raises(NotFound):
        runlake.get_run(uuid.uuid4().hex)
    # the run still has exactly what was accepted
    got = runlake.get_run(run.info.run_id)
    assert got.data.params == {"p": "a"} and set(got.data.metrics) == {"ok"}


def test_sql_over_the_views() -> None:
    exp = _experiment()
    with runlake.start_run(experiment_id=exp) as run:
        runlake.log_metrics({"a": 1.0, "b": 2.0}, step=0)
    df = runlake.sql(
        f"SELECT key, value FROM metrics WHERE run_id = '{run.info.run_id}' ORDER BY key"
    )
    assert df.to_dict("records") == [{"key": "a", "value": 1.0}, {"key": "b", "value": 2.0}]
    audit = runlake.sql(
        f"SELECT event_type FROM events WHERE run_id = '{run.info.run_id}' ORDER BY position"
    )
    assert audit["event_type"].iloc[0] == "run_created"
    with pytest.raises(InvalidArgument, match="query"):
        runlake.sql("SELECT * FROM read_csv('/etc/passwd')")
    with pytest.raises(InvalidArgument, match="query"):
        runlake.sql("DROP VIEW runs")


def _cli(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from runlake.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "RUNLAKE_TRACKING_URI": server.uri},
    )


def test_cli_sql_json_runs_and_experiments(server: ServerProcess) -> None:
    exp = _experiment()
    with runlake.start_run(experiment_id=exp, run_name="cli-run") as run:
        runlake.log_metric("loss", 0.25)
    out = _cli(
        server,
        "sql",
        f"SELECT run_id, run_name FROM runs WHERE experiment_id = '{exp}'",
        "--output",
        "json",
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [{"run_id": run.info.run_id, "run_name": "cli-run"}]
    out = _cli(
        server,
        "runs",
        "search",
        "--experiment-id",
        exp,
        "--filter",
        "metrics.loss < 1",
        "--output",
        "json",
    )
    assert out.returncode == 0, out.stderr
    assert run.info.run_id in out.stdout
    out = _cli(server, "runs", "get", run.info.run_id)
    assert out.returncode == 0 and "cli-run" in out.stdout
    out = _cli(server, "experiments", "list")
    assert out.returncode == 0 and "Default" in out.stdout
    bad = _cli(server, "runs", "search", "--filter", "metrics.loss <")
    assert bad.returncode == 1 and "filter" in bad.stderr and "Traceback" not in bad.stderr


def test_server_stops_cleanly_on_ctrl_c(server_factory) -> None:  # type: ignore[no-untyped-def]
    proc = server_factory()
    assert proc.stop() == 0
    assert any("stopped" in line for line in proc.output)
