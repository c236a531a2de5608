"""Builders of fold outputs and Delta tables for the query service's tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
from deltalake import write_deltalake
from runlake_services.tables.schema import TABLES, FoldResult

T0 = 1_700_000_000_000


def table(name: str, rows: list[dict[str, Any]], *, fold: bool = True) -> pa.Table:
    spec = TABLES[name]
    return pa.Table.from_pylist(rows, schema=spec.fold_schema if fold else spec.schema)


def result(position: int = 1, **tables: list[dict[str, Any]]) -> FoldResult:
    """A FoldResult with the given rows (fold schema) per table; the others empty."""
    return FoldResult(
        {name: table(name, rows) for name, rows in tables.items()}, position, position
    )


def run(run_id: str, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "run_id": run_id,
        "experiment_id": "0",
        "run_name": run_id,
        "user_id": "u",
        "status": "RUNNING",
        "start_time": T0,
        "lifecycle_stage": "active",
        "artifact_uri": f"file:///a/{run_id}",
    }
    row.update(fields)
    return row


def metric(
    run_id: str, key: str, value: float, step: int = 0, timestamp: int = T0
) -> dict[str, Any]:
    return {"run_id": run_id, "key": key, "value": value, "timestamp": timestamp, "step": step}


def kv(run_id: str, key: str, value: str, deleted: bool | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {"run_id": run_id, "key": key, "value": value}
    if deleted is not None:
        row["deleted"] = deleted
    return row


def experiment(experiment_id: str, name: str, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "experiment_id": experiment_id,
        "name": name,
        "artifact_location": f"file:///a/{experiment_id}",
        "lifecycle_stage": "active",
        "creation_time": T0,
        "last_update_time": T0,
    }
    row.update(fields)
    return row


def write_delta(root: Path, name: str, rows: list[dict[str, Any]]) -> None:
    """Append ``rows`` (stored schema) to the Delta table ``name`` under ``root``."""
    write_deltalake(str(root / name), table(name, rows, fold=False), mode="append")
