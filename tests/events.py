"""Builders of protocol events for tests (one place, so tests read as the scenario)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from runlake.columns import pack_metrics
from runlake.v1 import events_pb2 as E
from runlake.v1 import gateway_pb2 as G


def run_id() -> str:
    return uuid.uuid4().hex


def created(rid: str, experiment_id: str = "0", name: str = "", parent: str = "") -> E.Event:
    return E.Event(
        run_created=E.RunCreated(
            run_id=rid,
            experiment_id=experiment_id,
            run_name=name,
            start_time=1_700_000_000_000,
            user_id="tester",
            parent_run_id=parent,
        )
    )


def metrics(
    rid: str,
    points: Sequence[tuple[str, float, int, int]],
) -> E.Event:
    """points: (key, value, timestamp, step)."""
    keys: list[str] = []
    index: list[int] = []
    for key, *_ in points:
        if key not in keys:
            keys.append(key)
        index.append(keys.index(key))
    cols = pack_metrics(
        keys, index, [p[1] for p in points], [p[2] for p in points], [p[3] for p in points]
    )
    return E.Event(metrics_logged=E.MetricsLogged(run_id=rid, points=cols))


def params(rid: str, **kv: str) -> E.Event:
    return E.Event(
        params_logged=E.ParamsLogged(
            run_id=rid, params=[E.KeyValue(key=k, value=v) for k, v in kv.items()]
        )
    )


def tags(rid: str, **kv: str) -> E.Event:
    return E.Event(
        tags_set=E.TagsSet(run_id=rid, tags=[E.KeyValue(key=k, value=v) for k, v in kv.items()])
    )


def finished(rid: str, status: int = E.FINISHED, end_time: int = 1_700_000_100_000) -> E.Event:
    return E.Event(run_updated=E.RunUpdated(run_id=rid, status=status, end_time=end_time))


def deleted(rid: str) -> E.Event:
    return E.Event(run_deleted=E.RunDeleted(run_id=rid))


def restored(rid: str) -> E.Event:
    return E.Event(run_restored=E.RunRestored(run_id=rid))


def request(batch_id: str, *events: E.Event) -> G.WriteRequest:
    return G.WriteRequest(batch_id=batch_id, events=list(events))
