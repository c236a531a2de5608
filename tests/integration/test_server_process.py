"""What the `runlake server` process loads: none of pandas, whatever it is asked to do."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import runlake
from runlake_services.embedded.process import ServerProcess

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads the process's mappings from /proc"
)


def _mapped_files(pid: int) -> set[str]:
    with open(f"/proc/{pid}/maps") as f:
        return {line.split(maxsplit=5)[5].strip() for line in f if len(line.split()) > 5}


def test_server_serves_writes_search_history_and_sql_without_loading_pandas(
    server_factory: Callable[..., ServerProcess],
) -> None:
    proc = server_factory()
    client = runlake.RunlakeClient(proc.uri)
    exp = client.create_experiment("no-pandas")
    run = client.create_run(exp)
    rid = run.info.run_id
    for step in range(200):
        client.log_metric(rid, "loss", 1.0 / (step + 1), step=step)
    client.log_param(rid, "lr", "0.1")
    client.set_tag(rid, "team", "vision")
    client.set_terminated(rid)
    client.flush()

    found = client.search_runs([exp], "metrics.loss < 0.5 AND params.lr = '0.1'")
    assert [r.info.run_id for r in found] == [rid]
    assert len(client.get_metric_history(rid, "loss")) == 200
    frame = client.sql(f"SELECT count(*) AS n FROM metrics WHERE run_id = '{rid}'")
    assert int(frame["n"][0]) == 200  # pandas on the client side is fine

    mapped = _mapped_files(proc.pid)
    assert any("/pyarrow/" in p for p in mapped) and any("/deltalake/" in p for p in mapped)
    pandas_libs = sorted(p for p in mapped if f"{Path('pandas') / '_libs'}" in p)
    assert pandas_libs == []
