"""Rows of the wide runs table → ``query_pb2.Run`` messages.

A page of results is fetched as one Arrow table, so the work here is per column,
not per cell: a key column that is null on every row of the page is skipped
after one null count, which keeps a page cheap even when thousands of keys exist.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from runlake.v1 import events_pb2, query_pb2

from runlake_services.query.columns import KeyColumns

__all__ = ["ATTRIBUTES", "lifecycle", "runs_from_rows", "status"]

ATTRIBUTES = (
    "run_id",
    "experiment_id",
    "run_name",
    "user_id",
    "status",
    "start_time",
    "end_time",
    "lifecycle_stage",
    "artifact_uri",
    "parent_run_id",
)


def status(name: str | None) -> events_pb2.RunStatus.ValueType:
    """The table stores the enum's name; anything else reads as unspecified."""
    if name and name in events_pb2.RunStatus.keys():  # noqa: SIM118 (an enum wrapper)
        return events_pb2.RunStatus.Value(name)
    return events_pb2.RUN_STATUS_UNSPECIFIED


def lifecycle(stage: str | None) -> query_pb2.LifecycleStage.ValueType:
    if stage == "active":
        return query_pb2.ACTIVE
    if stage == "deleted":
        return query_pb2.DELETED
    return query_pb2.LIFECYCLE_STAGE_UNSPECIFIED


def _info(row: dict[str, Any]) -> query_pb2.RunInfo:
    info = query_pb2.RunInfo(
        run_id=row["run_id"],
        run_name=row["run_name"] or "",
        experiment_id=row["experiment_id"] or "",
        user_id=row["user_id"] or "",
        status=status(row["status"]),
        start_time=row["start_time"] or 0,
        lifecycle_stage=lifecycle(row["lifecycle_stage"]),
        artifact_uri=row["artifact_uri"] or "",
        parent_run_id=row["parent_run_id"] or "",
    )
    if row["end_time"] is not None:
        info.end_time = row["end_time"]
    return info


def runs_from_rows(table: pa.Table, keys: KeyColumns) -> list[query_pb2.Run]:
    """One Run per row of ``table`` (wide rows), in row order; data sorted by key."""
    n = table.num_rows
    attrs = {name: table.column(name).to_pylist() for name in ATTRIBUTES}
    metrics: list[list[tuple[str, float, int, int]]] = [[] for _ in range(n)]
    params: list[list[tuple[str, str]]] = [[] for _ in range(n)]
    tags: list[list[tuple[str, str]]] = [[] for _ in range(n)]
    names = set(table.column_names)
    for stem, (entity, key) in keys.owners.items():
        value_name = f"{stem}_v"
        if value_name not in names:  # a key newer than the snapshot read
            continue
        column = table.column(value_name)
        if column.null_count == n:
            continue
        values = column.to_pylist()
        if entity == "metric":
            stamps = table.column(f"{stem}_t").to_pylist()
            steps = table.column(f"{stem}_s").to_pylist()
            for i, v in enumerate(values):
                if v is not None:
                    metrics[i].append((key, v, stamps[i], steps[i]))
        else:
            out = params if entity == "param" else tags
            for i, v in enumerate(values):
                if v is not None:
                    out[i].append((key, v))
    runs = []
    for i in range(n):
        info = _info({name: col[i] for name, col in attrs.items()})
        data = query_pb2.RunData(
            metrics=[
                query_pb2.Metric(key=k, value=v, timestamp=t, step=s)
                for k, v, t, s in sorted(metrics[i])
            ],
            params=[events_pb2.KeyValue(key=k, value=v) for k, v in sorted(params[i])],
            tags=[events_pb2.KeyValue(key=k, value=v) for k, v in sorted(tags[i])],
        )
        runs.append(query_pb2.Run(info=info, data=data))
    return runs
