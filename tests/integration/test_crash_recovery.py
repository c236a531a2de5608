"""kill -9 the server while several processes log: every acknowledged point, exactly once."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import runlake
from runlake_services.embedded.process import ServerProcess, free_port

CHUNKS = 30
POINTS = 500

_CLIENT = textwrap.dedent(
    """
    import sys, runlake
    uri, exp, ack_path = sys.argv[1], sys.argv[2], sys.argv[3]
    runlake.set_tracking_uri(uri)
    run = runlake.start_run(experiment_id=exp)
    print(run.info.run_id, flush=True)
    with open(ack_path, "a") as ack:
        for chunk in range({chunks}):
            for i in range({points}):
                runlake.log_metric("x", float(i), step=chunk * {points} + i)
            runlake.flush(timeout=120)
            ack.write(f"{{chunk}}\\n"); ack.flush()
    runlake.end_run()
    """
).format(chunks=CHUNKS, points=POINTS)


def _acked(path: Path) -> int:
    return len(path.read_text().split()) if path.exists() else 0


def test_kill_9_loses_nothing_acknowledged_and_doubles_nothing(
    server_factory: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    port = free_port()
    server = server_factory(port=port, http_port=0)
    runlake.set_tracking_uri(server.uri)
    exp = runlake.create_experiment(f"crash-{port}")
    clients = []
    for i in range(3):
        proc = subprocess.Popen(
            [sys.executable, "-c", _CLIENT, server.uri, exp, str(tmp_path / f"ack{i}")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        clients.append(proc)
    run_ids = [proc.stdout.readline().strip() for proc in clients]  # type: ignore[union-attr]

    # wait until each client has some acknowledged chunks, then kill -9 mid-stream
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        acked = [_acked(tmp_path / f"ack{i}") for i in range(3)]
        if min(acked) >= 3:
            break
        time.sleep(0.05)
    acked_before = list(acked)
    server.kill()
    time.sleep(1.0)
    restarted = ServerProcess(server.data_dir, port=port, http_port=0).start()  # same data, port
    try:
        _check(clients, run_ids, acked_before, tmp_path)
    finally:
        restarted.kill()


def _check(
    clients: list[subprocess.Popen[str]],
    run_ids: list[str],
    acked_before: list[int],
    tmp_path: Path,
) -> None:
    for proc in clients:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err

    reader = runlake.RunlakeClient()
    reader.sync()  # the clients' writes are theirs: wait until the tables hold them all
    for i, rid in enumerate(run_ids):
        acked = (tmp_path / f"ack{i}").read_text().split()
        assert len(acked) == CHUNKS and len(acked) >= acked_before[i]
        history = reader.get_metric_history(rid, "x")
        rows = reader.sql(f"SELECT step FROM metrics WHERE run_id = '{rid}'")
        assert len(rows) == CHUNKS * POINTS, "the raw table holds each point exactly once"
        assert rows["step"].nunique() == CHUNKS * POINTS
        assert [m.step for m in history] == list(range(CHUNKS * POINTS))
        assert reader.get_run(rid).info.status == "FINISHED"
