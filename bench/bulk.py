"""Bulk-loading the same N runs into each store, so search is measured over identical data.

Each run has params p1 (one of v0…v9), p2, p3; tags t1, t2 and ``mlflow.runName``; latest
values of metrics m1, m2, m3 (uniform in [0, 1)). The data depends only on N and a seed.

runlake: the Delta tables are written directly with ``deltalake.write_deltalake`` under
``<data dir>/tables/<name>`` with the schemas of ``runlake_services.tables.schema``
before the server starts, so the server builds its index from them at start. MLflow: rows
are inserted with ``sqlite3`` into the tables its server created (start it once first).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from deltalake import write_deltalake

__all__ = ["Data", "load_mlflow", "load_runlake", "make"]

_NOW = 1_700_000_000_000


@dataclass
class Data:
    ids: list[str]
    p1: list[str]
    m1: np.ndarray
    m2: np.ndarray
    m3: np.ndarray

    @property
    def n(self) -> int:
        return len(self.ids)


def make(n: int, seed: int = 7) -> Data:
    rng = np.random.default_rng(seed)
    raw = rng.bytes(16 * n)
    ids = [raw[i : i + 16].hex() for i in range(0, 16 * n, 16)]
    p1 = [f"v{i}" for i in rng.integers(0, 10, n)]
    return Data(ids, p1, rng.random(n), rng.random(n), rng.random(n))


def _kv(ids: list[str], columns: dict[str, list[str]]) -> dict[str, list[str]]:
    """Long (run_id, key, value) columns from one value column per key."""
    out: dict[str, list[str]] = {"run_id": [], "key": [], "value": []}
    for key, values in columns.items():
        out["run_id"] += ids
        out["key"] += [key] * len(ids)
        out["value"] += values
    return out


def _params(d: Data) -> dict[str, list[str]]:
    return {"p1": d.p1, "p2": ["0.01"] * d.n, "p3": [str(i % 7) for i in range(d.n)]}


def _tags(d: Data) -> dict[str, list[str]]:
    return {
        "mlflow.runName": [f"run-{r[:8]}" for r in d.ids],
        "t1": ["bench"] * d.n,
        "t2": [f"g{i % 13}" for i in range(d.n)],
    }


def load_runlake(data_dir: Path, d: Data) -> None:
    """Write experiments, runs, params, tags and latest_metrics as Delta tables."""
    from runlake_services.tables.schema import TABLES

    tables = data_dir / "tables"
    n = d.n

    def write(name: str, columns: dict[str, object]) -> None:
        table = pa.table(columns, schema=TABLES[name].schema)
        write_deltalake(str(tables / name), table, mode="overwrite")

    write(
        "experiments",
        {
            "experiment_id": ["0"],
            "name": ["Default"],
            "artifact_location": [str((data_dir / "artifacts" / "0").as_uri())],
            "lifecycle_stage": ["active"],
            "creation_time": [_NOW],
            "last_update_time": [_NOW],
        },
    )
    start = _NOW + np.arange(n, dtype=np.int64)
    write(
        "runs",
        {
            "run_id": d.ids,
            "experiment_id": ["0"] * n,
            "run_name": [f"run-{r[:8]}" for r in d.ids],
            "user_id": ["bench"] * n,
            "status": ["FINISHED"] * n,
            "start_time": start,
            "end_time": start + 1000,
            "lifecycle_stage": ["active"] * n,
            "artifact_uri": [""] * n,
            "parent_run_id": pa.nulls(n, pa.string()),
        },
    )
    write("params", dict(_kv(d.ids, _params(d))))
    write("tags", dict(_kv(d.ids, _tags(d))))
    write(
        "latest_metrics",
        {
            "run_id": d.ids * 3,
            "key": ["m1"] * n + ["m2"] * n + ["m3"] * n,
            "value": np.concatenate([d.m1, d.m2, d.m3]),
            "timestamp": np.full(3 * n, _NOW, dtype=np.int64),
            "step": np.zeros(3 * n, dtype=np.int64),
        },
    )


def load_mlflow(db: Path, d: Data) -> None:
    """Insert the same runs into the MLflow SQLite store its server created at ``db``."""
    con = sqlite3.connect(db)
    try:
        con.executemany(
            "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name,"
            " user_id, status, start_time, end_time, source_version, lifecycle_stage,"
            " artifact_uri, experiment_id) VALUES (?, ?, 'LOCAL', '', '', 'bench', 'FINISHED',"
            " ?, ?, '', 'active', '', 0)",
            [(r, f"run-{r[:8]}", _NOW + i, _NOW + i + 1000) for i, r in enumerate(d.ids)],
        )
        for table, columns in (("params", _params(d)), ("tags", _tags(d))):
            con.executemany(
                f"INSERT INTO {table} (key, value, run_uuid) VALUES (?, ?, ?)",
                [
                    (key, v, r)
                    for key, values in columns.items()
                    for r, v in zip(d.ids, values, strict=True)
                ],
            )
        points = [
            (key, float(v), _NOW, 0, 0, r)
            for key, col in (("m1", d.m1), ("m2", d.m2), ("m3", d.m3))
            for r, v in zip(d.ids, col, strict=True)
        ]
        for table in ("latest_metrics", "metrics"):
            con.executemany(
                f"INSERT INTO {table} (key, value, timestamp, step, is_nan, run_uuid)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                points,
            )
        con.commit()
    finally:
        con.close()
