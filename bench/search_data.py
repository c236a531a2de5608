"""Bulk-loading N runs into each store, so search is measured over the same data on both."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
from deltalake import write_deltalake
from runlake_services.tables.schema import TABLES

FILTER = "metrics.m1 < 0.5 AND params.p1 = 'v1'"
ORDER = ["metrics.m2 DESC"]


def _columns(n: int, seed: int = 7) -> tuple[list[str], np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    ids = [uuid.UUID(int=int(x), version=4).hex for x in rng.integers(0, 2**62, n)]
    return ids, rng.random(n), rng.random(n), [f"v{i}" for i in rng.integers(0, 10, n)]


def load_runlake(data_dir: Path, n: int) -> None:
    """Write the Delta tables a server builds its index from (runs, params, latest_metrics)."""
    ids, m1, m2, p1 = _columns(n)
    tables = data_dir / "tables"
    now = 1_700_000_000_000
    start = now + np.arange(n)
    write_deltalake(
        str(tables / "experiments"),
        pa.table(
            {
                "experiment_id": ["0"],
                "name": ["Default"],
                "artifact_location": ["file:///tmp"],
                "lifecycle_stage": ["active"],
                "creation_time": [now],
                "last_update_time": [now],
            },
            schema=TABLES["experiments"].schema,
        ),
        mode="overwrite",
    )
    write_deltalake(
        str(tables / "runs"),
        pa.table(
            {
                "run_id": ids,
                "experiment_id": ["0"] * n,
                "run_name": ids,
                "user_id": ["bench"] * n,
                "status": ["FINISHED"] * n,
                "start_time": start,
                "end_time": start,
                "lifecycle_stage": ["active"] * n,
                "artifact_uri": [""] * n,
                "parent_run_id": [None] * n,
            },
            schema=TABLES["runs"].schema,
        ),
        mode="overwrite",
    )
    write_deltalake(
        str(tables / "params"),
        pa.table(
            {
                "run_id": ids,
                "key": ["p1"] * n,
                "value": p1,
            },
            schema=TABLES["params"].schema,
        ),
        mode="overwrite",
    )
    write_deltalake(
        str(tables / "latest_metrics"),
        pa.table(
            {
                "run_id": ids + ids,
                "key": ["m1"] * n + ["m2"] * n,
                "value": np.concatenate([m1, m2]),
                "timestamp": np.full(2 * n, now),
                "step": np.zeros(2 * n, dtype=np.int64),
            },
            schema=TABLES["latest_metrics"].schema,
        ),
        mode="overwrite",
    )


def load_mlflow(db: Path, n: int) -> None:
    """Insert the same runs into MLflow's SQLite store (schema made by its server's start)."""
    ids, m1, m2, p1 = _columns(n)
    now = 1_700_000_000_000
    con = sqlite3.connect(db)
    con.executemany(
        "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id,"
        " status, start_time, end_time, source_version, lifecycle_stage, artifact_uri,"
        " experiment_id) VALUES (?, ?, 'LOCAL', '', '', 'bench', 'FINISHED', ?, ?, '',"
        " 'active', '', 0)",
        [(r, r, now + i, now + i) for i, r in enumerate(ids)],
    )
    con.executemany(
        "INSERT INTO params (key, value, run_uuid) VALUES ('p1', ?, ?)",
        list(zip(p1, ids, strict=True)),
    )
    rows = [
        (k, float(v), now, 0, 0, r)
        for k, col in (("m1", m1), ("m2", m2))
        for r, v in zip(ids, col, strict=True)
    ]
    con.executemany(
        "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        rows,
    )
    con.executemany(
        "INSERT INTO metrics (key, value, timestamp, step, is_nan, run_uuid)"
        " VALUES (?, ?, ?, ?, ?, ?)",
        rows,
    )
    con.commit()
    con.close()


MLFLOW_SEARCH = """
import sys, time, statistics
from mlflow import MlflowClient
c = MlflowClient(sys.argv[1])
times = []
for _ in range(int(sys.argv[2])):
    t = time.perf_counter()
    runs = c.search_runs(["0"], "metrics.m1 < 0.5 and params.p1 = 'v1'",
                         order_by=["metrics.m2 DESC"], max_results=100)
    times.append(time.perf_counter() - t)
assert len(runs) == 100, len(runs)
print("ELAPSED", statistics.median(times))
"""

MLFLOW_HISTORY = """
import sys, time
from mlflow import MlflowClient
from mlflow.entities import Metric
c = MlflowClient(sys.argv[1]); n = int(sys.argv[2])
rid = c.create_run("0").info.run_id
for s in range(0, n, 1000):
    c.log_batch(rid, metrics=[Metric("h", float(i), 1, i) for i in range(s, min(n, s + 1000))])
t = time.perf_counter()
pts = c.get_metric_history(rid, "h")
assert len(pts) == n, len(pts)
print("ELAPSED", time.perf_counter() - t)
"""
