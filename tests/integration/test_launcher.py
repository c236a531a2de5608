"""The one launcher of runlake child processes: ready lines, detached children, stop by PID."""

from __future__ import annotations

from pathlib import Path

import pytest
from runlake_services.launcher import RunlakeProcess, parse_ready, pid_alive, stop_pid


@pytest.mark.parametrize(
    ("line", "ports"),
    [
        (
            "runlake server ready grpc=grpc://127.0.0.1:5055 http=http://127.0.0.1:5056 data=d",
            (5055, 5056),
        ),
        ("runlake query ready grpc=grpc://0.0.0.0:57 store=s3://b/t in 0.3s", (57, None)),
        ("ready compactor tables=s3a://runlake/tables", (None, None)),
    ],
)
def test_ready_lines_give_their_ports(line: str, ports: tuple[int | None, int | None]) -> None:
    assert parse_ready(line) == ports


def test_lines_that_are_not_ready_lines() -> None:
    assert parse_ready("bootstrap: installing runlake") is None
    assert parse_ready("already running") is None  # "ready" only as a word


def test_a_detached_child_writes_its_log_and_stops_by_pid(tmp_path: Path) -> None:
    proc = RunlakeProcess(
        ["server", "--data-dir", str(tmp_path / "data"), "--port", "0", "--http-port", "0"],
        log_path=tmp_path / "logs" / "server.log",
    ).start()
    try:
        assert proc.port > 0 and proc.http_port > 0
        assert "ready" in (tmp_path / "logs" / "server.log").read_text()
        assert pid_alive(proc.pid)
    finally:
        killed = stop_pid(proc.pid, 30.0)
    assert not killed, "SIGTERM was not enough: the server did not shut down cleanly"
    assert not pid_alive(proc.pid)
    assert "stopped" in (tmp_path / "logs" / "server.log").read_text()


def test_a_child_that_exits_early_says_why(tmp_path: Path) -> None:
    bad = RunlakeProcess(["query", "--store", "hdfs://nowhere/x", "--port", "0"], name="query")
    with pytest.raises(RuntimeError, match="store"):
        bad.start(timeout_s=60)
