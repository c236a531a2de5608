"""fold(records) -> FoldResult: what a run of log records contributes to each table.

Pure and deterministic — the same records always give the same rows — so the
embedded compactor (delta-rs) and the Spark job apply identical changes, and a
replay after a crash reproduces a round exactly. Metric points stay columnar
from the wire to Arrow; only entity events (a handful per run) touch Python
objects one by one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
from google.protobuf import json_format
from runlake.columns import MetricArrays, unpack_metrics
from runlake.v1 import events_pb2

from runlake_services.eventlog import LogRecord
from runlake_services.tables.schema import TABLES, FoldResult

__all__ = ["decode_records", "fold"]

Record = tuple[int, events_pb2.LoggedBatch]

_RUN_NAME_TAG = "mlflow.runName"


def decode_records(records: Iterable[LogRecord]) -> list[Record]:
    """Parse raw log records (serialized LoggedBatch) into (position, batch) pairs."""
    out: list[Record] = []
    for rec in records:
        batch = events_pb2.LoggedBatch()
        batch.ParseFromString(rec.payload)
        out.append((rec.position, batch))
    return out


@dataclass
class _Acc:
    """Accumulates one round; upsert tables keep one row per key (the last write wins)."""

    events: dict[str, list[Any]] = field(
        default_factory=lambda: {n: [] for n in TABLES["events"].schema.names}
    )
    experiments: dict[str, dict[str, Any]] = field(default_factory=dict)
    experiment_tags: dict[tuple[str, str], tuple[str, bool]] = field(default_factory=dict)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    params: list[tuple[str, str, str]] = field(default_factory=list)
    tags: dict[tuple[str, str], tuple[str, bool]] = field(default_factory=dict)
    metric_parts: list[pa.Table] = field(default_factory=list)
    latest: dict[tuple[str, str], tuple[int, int, float]] = field(default_factory=dict)
    artifacts: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    model_tags: dict[tuple[str, str], tuple[str, bool]] = field(default_factory=dict)
    versions: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    version_tags: dict[tuple[str, int, str], tuple[str, bool]] = field(default_factory=dict)
    aliases: dict[tuple[str, str], tuple[int, bool]] = field(default_factory=dict)

    def model(self, model_id: str) -> dict[str, Any]:
        return self.models.setdefault(model_id, {"model_id": model_id})

    def version(self, model_id: str, version: int) -> dict[str, Any]:
        return self.versions.setdefault(
            (model_id, version), {"model_id": model_id, "version": version}
        )

    def experiment(self, experiment_id: str) -> dict[str, Any]:
        return self.experiments.setdefault(experiment_id, {"experiment_id": experiment_id})

    def run(self, run_id: str) -> dict[str, Any]:
        return self.runs.setdefault(run_id, {"run_id": run_id})


def _payload(kind: str, body: Any) -> str:
    if kind == "metrics_logged":
        cols = body.points
        data: dict[str, Any] = {
            "run_id": body.run_id,
            "keys": list(cols.keys),
            "points": len(cols.values) // 8,
        }
    else:
        data = json_format.MessageToDict(body, preserving_proto_field_name=True)
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def _later(a: tuple[int, int, float], b: tuple[int, int, float]) -> bool:
    """True when point ``a`` (step, timestamp, value) is later than ``b`` (MLflow's order)."""
    return a > b


def _fold_metrics(acc: _Acc, run_id: str, cols: MetricArrays, position: int) -> None:
    n = len(cols)
    if n == 0:
        return
    keys = pa.array(cols.keys, pa.string())
    acc.metric_parts.append(
        pa.table(
            {
                "run_id": pa.repeat(run_id, n).cast(pa.string()),
                "key": keys.take(pa.array(cols.key_index)),
                "value": pa.array(cols.values, pa.float64()),
                "timestamp": pa.array(cols.timestamps, pa.int64()),
                "step": pa.array(cols.steps, pa.int64()),
                "position": pa.repeat(pa.scalar(position, pa.int64()), n),
            }
        )
    )
    # Latest point per key of this event: sort by (key, step, timestamp, value), take each
    # key's last row. NaN values sort last in numpy, as the greatest, like MLflow's SQL store.
    order = np.lexsort((cols.values, cols.timestamps, cols.steps, cols.key_index))
    sorted_keys = cols.key_index[order]
    last = np.flatnonzero(np.append(sorted_keys[1:] != sorted_keys[:-1], True))
    for idx in order[last]:
        key = cols.keys[int(cols.key_index[idx])]
        cand = (int(cols.steps[idx]), int(cols.timestamps[idx]), float(cols.values[idx]))
        old = acc.latest.get((run_id, key))
        if old is None or _later(cand, old):
            acc.latest[(run_id, key)] = cand


def _fold_registry(acc: _Acc, kind: str, body: Any, ts: int) -> None:
    """Registry events: ids, versions and archived versions arrive stamped by the gateway."""
    mid = body.model_id
    if kind == "registered_model_created":
        acc.model(mid).update(
            name=body.name,
            description=body.description,
            creation_time=body.creation_time,
            last_updated_time=body.creation_time,
            lifecycle_stage="active",
        )
        for tag in body.tags:
            acc.model_tags[(mid, tag.key)] = (tag.value, False)
    elif kind == "registered_model_renamed":
        acc.model(mid).update(name=body.new_name, last_updated_time=ts)
    elif kind == "registered_model_updated":
        acc.model(mid).update(description=body.description, last_updated_time=ts)
    elif kind == "registered_model_deleted":
        acc.model(mid).update(lifecycle_stage="deleted", last_updated_time=ts)
    elif kind == "registered_model_tag_set":
        acc.model_tags[(mid, body.tag.key)] = (body.tag.value, False)
    elif kind == "registered_model_tag_deleted":
        acc.model_tags[(mid, body.key)] = ("", True)
    elif kind == "model_version_created":
        acc.version(mid, body.version).update(
            source=body.source,
            run_id=body.run_id or None,
            description=body.description,
            current_stage="None",
            status="READY",
            creation_time=body.creation_time,
            last_updated_time=body.creation_time,
            user_id=body.user_id,
            lifecycle_stage="active",
        )
        acc.model(mid)["last_updated_time"] = body.creation_time
        for tag in body.tags:
            acc.version_tags[(mid, body.version, tag.key)] = (tag.value, False)
    elif kind == "model_version_updated":
        acc.version(mid, body.version).update(description=body.description, last_updated_time=ts)
    elif kind == "model_version_stage_set":
        acc.version(mid, body.version).update(current_stage=body.stage, last_updated_time=ts)
        for other in body.archived_versions:
            acc.version(mid, other).update(current_stage="Archived", last_updated_time=ts)
    elif kind == "model_version_deleted":
        acc.version(mid, body.version).update(lifecycle_stage="deleted", last_updated_time=ts)
    elif kind == "model_version_tag_set":
        acc.version_tags[(mid, body.version, body.tag.key)] = (body.tag.value, False)
    elif kind == "model_version_tag_deleted":
        acc.version_tags[(mid, body.version, body.key)] = ("", True)
    elif kind == "model_alias_set":
        acc.aliases[(mid, body.alias)] = (body.version, False)
    elif kind == "model_alias_deleted":
        acc.aliases[(mid, body.alias)] = (0, True)


def _fold_event(acc: _Acc, kind: str, body: Any, position: int, ts: int) -> None:
    if kind.startswith(("registered_model_", "model_")):
        _fold_registry(acc, kind, body, ts)
        return
    if kind == "experiment_created":
        e = acc.experiment(body.experiment_id)
        e.update(
            name=body.name,
            artifact_location=body.artifact_location,
            lifecycle_stage="active",
            creation_time=body.creation_time,
            last_update_time=body.creation_time,
        )
        for tag in body.tags:
            acc.experiment_tags[(body.experiment_id, tag.key)] = (tag.value, False)
    elif kind == "experiment_renamed":
        acc.experiment(body.experiment_id).update(name=body.name, last_update_time=ts)
    elif kind in ("experiment_deleted", "experiment_restored"):
        stage = "deleted" if kind == "experiment_deleted" else "active"
        acc.experiment(body.experiment_id).update(lifecycle_stage=stage, last_update_time=ts)
    elif kind == "experiment_tag_set":
        acc.experiment_tags[(body.experiment_id, body.tag.key)] = (body.tag.value, False)
    elif kind == "run_created":
        acc.run(body.run_id).update(
            experiment_id=body.experiment_id,
            run_name=body.run_name,
            user_id=body.user_id,
            status="RUNNING",
            start_time=body.start_time,
            lifecycle_stage="active",
            artifact_uri=body.artifact_uri,
            parent_run_id=body.parent_run_id or None,
        )
        for tag in body.tags:
            acc.tags[(body.run_id, tag.key)] = (tag.value, False)
        if body.run_name:
            acc.tags[(body.run_id, _RUN_NAME_TAG)] = (body.run_name, False)
    elif kind == "run_updated":
        r = acc.run(body.run_id)
        if body.status != events_pb2.RUN_STATUS_UNSPECIFIED:
            r["status"] = events_pb2.RunStatus.Name(body.status)
        if body.HasField("end_time"):
            r["end_time"] = body.end_time
        if body.HasField("run_name"):
            r["run_name"] = body.run_name
            acc.tags[(body.run_id, _RUN_NAME_TAG)] = (body.run_name, False)
    elif kind in ("run_deleted", "run_restored"):
        stage = "deleted" if kind == "run_deleted" else "active"
        acc.run(body.run_id)["lifecycle_stage"] = stage
    elif kind == "metrics_logged":
        _fold_metrics(acc, body.run_id, unpack_metrics(body.points), position)
    elif kind == "params_logged":
        acc.params.extend((body.run_id, p.key, p.value) for p in body.params)
    elif kind == "tags_set":
        for tag in body.tags:
            acc.tags[(body.run_id, tag.key)] = (tag.value, False)
    elif kind == "tag_deleted":
        acc.tags[(body.run_id, body.key)] = ("", True)
    elif kind == "artifact_logged":
        acc.artifacts[(body.run_id, body.path)] = {
            "run_id": body.run_id,
            "path": body.path,
            "size": body.size,
            "sha256": body.sha256,
            "timestamp": ts,
            "position": position,
            "deleted": False,
        }


def _rows(name: str, rows: Sequence[dict[str, Any]]) -> pa.Table:
    schema = TABLES[name].fold_schema
    return pa.Table.from_pylist(list(rows), schema=schema)


def fold(records: Sequence[Record]) -> FoldResult:
    """Fold records (ascending positions) into per-table rows; see TABLES for the merge rules."""
    if not records:
        raise ValueError("fold needs at least one record")
    acc = _Acc()
    ev = acc.events
    for position, batch in records:
        meta = batch.meta
        ts = meta.received_at_ms
        for i, event in enumerate(batch.events):
            which = event.WhichOneof("body")
            # an event type newer than this fold: kept in the audit trail, folded nowhere else
            kind: str = which if which is not None else "unknown"
            body: Any = getattr(event, which) if which is not None else event
            ev["position"].append(position)
            ev["batch_id"].append(meta.batch_id)
            ev["event_index"].append(i)
            ev["event_type"].append(kind)
            ev["experiment_id"].append(getattr(body, "experiment_id", None) or None)
            ev["run_id"].append(getattr(body, "run_id", None) or None)
            ev["user"].append(meta.user)
            ev["timestamp"].append(ts)
            ev["payload"].append(_payload(kind, body))
            if kind != "unknown":
                _fold_event(acc, kind, body, position, ts)

    tables: dict[str, pa.Table] = {
        "events": pa.table(ev, schema=TABLES["events"].fold_schema),
        "experiments": _rows("experiments", list(acc.experiments.values())),
        "experiment_tags": _rows(
            "experiment_tags",
            [
                {"experiment_id": e, "key": k, "value": v, "deleted": d}
                for (e, k), (v, d) in acc.experiment_tags.items()
            ],
        ),
        "runs": _rows("runs", list(acc.runs.values())),
        "params": _rows("params", [{"run_id": r, "key": k, "value": v} for r, k, v in acc.params]),
        "tags": _rows(
            "tags",
            [
                {"run_id": r, "key": k, "value": v, "deleted": d}
                for (r, k), (v, d) in acc.tags.items()
            ],
        ),
        "latest_metrics": _rows(
            "latest_metrics",
            [
                {"run_id": r, "key": k, "step": s, "timestamp": t, "value": v}
                for (r, k), (s, t, v) in acc.latest.items()
            ],
        ),
    }
    tables["artifacts"] = _rows("artifacts", list(acc.artifacts.values()))
    tables["registered_models"] = _rows("registered_models", list(acc.models.values()))
    tables["registered_model_tags"] = _rows(
        "registered_model_tags",
        [
            {"model_id": m, "key": k, "value": v, "deleted": d}
            for (m, k), (v, d) in acc.model_tags.items()
        ],
    )
    tables["model_versions"] = _rows("model_versions", list(acc.versions.values()))
    tables["model_version_tags"] = _rows(
        "model_version_tags",
        [
            {"model_id": m, "version": n, "key": k, "value": v, "deleted": d}
            for (m, n, k), (v, d) in acc.version_tags.items()
        ],
    )
    tables["model_aliases"] = _rows(
        "model_aliases",
        [
            {"model_id": m, "alias": a, "version": n, "deleted": d}
            for (m, a), (n, d) in acc.aliases.items()
        ],
    )
    metrics_schema = TABLES["metrics"].fold_schema
    tables["metrics"] = (
        pa.concat_tables(acc.metric_parts).cast(metrics_schema)
        if acc.metric_parts
        else metrics_schema.empty_table()
    )
    return FoldResult(tables=tables, first_position=records[0][0], last_position=records[-1][0])
