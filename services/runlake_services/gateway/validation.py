"""Validation of a write batch against the catalog, all or nothing.

:func:`validate_batch` walks the events in order over an overlay of the
catalog (so a run created earlier in the same batch can be logged to later in
it), raises on the first bad field with its path (``events[3].params_logged
.params[0].value``), and otherwise returns the events to append — stamped and
with no-op param repeats dropped — plus the state changes the log must store.
Per-point work is vectorised with numpy: a 1,000-point batch costs microseconds.
"""

from __future__ import annotations

import os.path
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from runlake.columns import unpack_metrics
from runlake.errors import AlreadyExists, Conflict, InvalidArgument, NotFound
from runlake.v1 import events_pb2

from runlake_services.eventlog import Catalog, ExperimentState, RunState, StateChanges
from runlake_services.gateway import limits as L
from runlake_services.gateway.registry import REGISTRY_KINDS, validate_registry_events

__all__ = [
    "Validated",
    "check_tags",
    "new_experiment_id",
    "validate_batch",
    "validate_experiment_create",
]

_TERMINAL = {"FINISHED", "FAILED", "KILLED"}


@dataclass(frozen=True)
class Validated:
    events: list[events_pb2.Event]
    changes: StateChanges
    points: int


def _check_key(key: str, field: str) -> None:
    if not key:
        raise InvalidArgument("must not be empty", field=field)
    if len(key) > L.MAX_KEY_LENGTH:
        raise InvalidArgument(
            f"is {len(key)} characters long, at most {L.MAX_KEY_LENGTH} allowed", field=field
        )
    if not L.KEY_PATTERN.match(key):
        raise InvalidArgument(
            f"{key!r} may contain only letters, digits, '_', '-', '.', ' ', '/' and ':'",
            field=field,
        )
    norm = os.path.normpath(key)
    if key.startswith("/") or norm.startswith("..") or "/../" in f"/{key}/":
        raise InvalidArgument(f"{key!r} must be a relative path without '..'", field=field)


def _check_len(value: str, limit: int, field: str) -> None:
    if len(value) > limit:
        raise InvalidArgument(
            f"is {len(value)} characters long, at most {limit} allowed", field=field
        )


def _check_time(ms: int, field: str) -> None:
    if ms < 0 or ms > L.MAX_TIMESTAMP_MS:
        raise InvalidArgument(f"{ms} is not a time in milliseconds since the epoch", field=field)


def _check_name(name: str, field: str) -> None:
    if not name.strip():
        raise InvalidArgument("must not be empty", field=field)
    _check_len(name, L.MAX_NAME_LENGTH, field)


def new_experiment_id() -> str:
    """A random 18-digit id, as MLflow's file store makes: unique with no coordination."""
    return str(10**17 + secrets.randbelow(9 * 10**17))


def validate_experiment_create(
    catalog: Catalog, name: str, artifact_location: str, artifact_root: str
) -> ExperimentState:
    """Check a CreateExperiment request; returns the state of the experiment to create."""
    _check_name(name, "name")
    _check_len(artifact_location, L.MAX_ARTIFACT_LOCATION_LENGTH, "artifact_location")
    if catalog.experiment_by_name(name) is not None:
        raise AlreadyExists(f"an experiment named {name!r} already exists", field="name")
    experiment_id = new_experiment_id()
    location = artifact_location or f"{artifact_root.rstrip('/')}/{experiment_id}"
    return ExperimentState(experiment_id, name, "active", location)


class _Overlay:
    """The catalog as it will be after the events validated so far."""

    def __init__(self, catalog: Catalog, run_ids: Sequence[str]) -> None:
        self.catalog = catalog
        self.changes = StateChanges()
        self._runs = dict(catalog.runs(run_ids)) if run_ids else {}

    def experiment(self, experiment_id: str, field: str) -> ExperimentState:
        exp = self.changes.experiments.get(experiment_id) or self.catalog.experiment(experiment_id)
        if exp is None:
            raise NotFound(f"no experiment with id {experiment_id!r}", field=field)
        return exp

    def run(self, run_id: str, field: str) -> RunState:
        state = self._runs.get(run_id)
        if state is None:
            if not run_id:
                raise InvalidArgument("must not be empty", field=field)
            raise NotFound(f"no run with id {run_id!r}", field=field)
        return state

    def active_run(self, run_id: str, field: str, *, running: bool) -> RunState:
        state = self.run(run_id, field)
        if state.lifecycle_stage != "active":
            raise Conflict(f"run {run_id} is deleted; restore it first", field=field)
        if running and state.status in _TERMINAL:
            raise Conflict(
                f"run {run_id} is {state.status}; only a running run can be logged to",
                field=field,
            )
        return state

    def put_run(self, state: RunState) -> None:
        self._runs[state.run_id] = state
        self.changes.runs[state.run_id] = state

    def has_run(self, run_id: str) -> bool:
        return run_id in self._runs

    def put_experiment(self, state: ExperimentState) -> None:
        self.changes.experiments[state.experiment_id] = state


def _run_ids(events: Sequence[events_pb2.Event]) -> list[str]:
    ids: set[str] = set()
    for ev in events:
        kind = ev.WhichOneof("body")
        if kind is not None and kind.startswith(("run_", "metrics_", "params_", "tag")):
            body = getattr(ev, kind)
            ids.add(body.run_id)
            if kind == "run_created" and body.parent_run_id:
                ids.add(body.parent_run_id)
    ids.discard("")
    return sorted(ids)


def validate_batch(
    catalog: Catalog,
    batch_id: str,
    events: Sequence[events_pb2.Event],
    *,
    request_bytes: int,
    now_ms: int | None = None,
    user: str = "",
) -> Validated:
    """Validate a whole batch; raises the first problem, naming its field."""
    if not batch_id:
        raise InvalidArgument("must not be empty", field="batch_id")
    _check_len(batch_id, L.MAX_BATCH_ID_LENGTH, "batch_id")
    if not events:
        raise InvalidArgument("a batch must hold at least one event", field="events")
    if len(events) > L.MAX_EVENTS_PER_BATCH:
        raise InvalidArgument(
            f"{len(events)} events in one batch, at most {L.MAX_EVENTS_PER_BATCH}", field="events"
        )
    if request_bytes > L.MAX_REQUEST_BYTES:
        raise InvalidArgument(
            f"request is {request_bytes} bytes, at most {L.MAX_REQUEST_BYTES}", field="events"
        )
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    registry = [ev.WhichOneof("body") in REGISTRY_KINDS for ev in events]
    if any(registry) and not all(registry):
        i = registry.index(not registry[0])
        raise InvalidArgument("registry events go in a batch of their own", field=f"events[{i}]")
    if registry[0]:
        stamped, changes = validate_registry_events(catalog, events, now_ms=now, user=user)
        return Validated(stamped, changes, 0)
    overlay = _Overlay(catalog, _run_ids(events))
    out: list[events_pb2.Event] = []
    points = 0
    for i, ev in enumerate(events):
        kind = ev.WhichOneof("body")
        f = f"events[{i}].{kind}"
        if kind is None:
            raise InvalidArgument("event has no body", field=f"events[{i}]")
        handler = _HANDLERS.get(kind)
        if handler is None:
            raise InvalidArgument(_WRITTEN_ELSEWHERE.get(kind, "not a client event"), field=f)
        checked = handler(overlay, getattr(ev, kind), f, now)
        if checked is None:
            continue
        if kind == "metrics_logged":
            points += len(ev.metrics_logged.points.values) // 8
            if points > L.MAX_POINTS_PER_BATCH:
                raise InvalidArgument(
                    f"more than {L.MAX_POINTS_PER_BATCH} metric points in one batch",
                    field=f"{f}.points",
                )
        out.append(checked)
    # ``out`` may be empty: every event was a no-op (params re-logged with their values).
    return Validated(out, overlay.changes, points)


# -- one handler per event kind; each returns the event to append (None: drop as no-op) --


def _experiment_renamed(
    o: _Overlay, b: events_pb2.ExperimentRenamed, f: str, now: int
) -> events_pb2.Event:
    exp = o.experiment(b.experiment_id, f"{f}.experiment_id")
    if exp.lifecycle_stage != "active":
        raise Conflict("a deleted experiment cannot be renamed", field=f"{f}.experiment_id")
    _check_name(b.name, f"{f}.name")
    other = o.catalog.experiment_by_name(b.name)
    if other is not None and other.experiment_id != exp.experiment_id:
        raise AlreadyExists(f"an experiment named {b.name!r} already exists", field=f"{f}.name")
    o.put_experiment(replace(exp, name=b.name))
    return events_pb2.Event(experiment_renamed=b)


def _experiment_deleted(
    o: _Overlay, b: events_pb2.ExperimentDeleted, f: str, now: int
) -> events_pb2.Event:
    exp = o.experiment(b.experiment_id, f"{f}.experiment_id")
    if exp.experiment_id == "0":
        raise Conflict("the default experiment cannot be deleted", field=f"{f}.experiment_id")
    if exp.lifecycle_stage != "active":
        raise Conflict("experiment is already deleted", field=f"{f}.experiment_id")
    o.put_experiment(replace(exp, lifecycle_stage="deleted"))
    return events_pb2.Event(experiment_deleted=b)


def _experiment_restored(
    o: _Overlay, b: events_pb2.ExperimentRestored, f: str, now: int
) -> events_pb2.Event:
    exp = o.experiment(b.experiment_id, f"{f}.experiment_id")
    if exp.lifecycle_stage != "deleted":
        raise Conflict("experiment is not deleted", field=f"{f}.experiment_id")
    o.put_experiment(replace(exp, lifecycle_stage="active"))
    return events_pb2.Event(experiment_restored=b)


def _experiment_tag_set(
    o: _Overlay, b: events_pb2.ExperimentTagSet, f: str, now: int
) -> events_pb2.Event:
    exp = o.experiment(b.experiment_id, f"{f}.experiment_id")
    if exp.lifecycle_stage != "active":
        raise Conflict("a deleted experiment cannot be tagged", field=f"{f}.experiment_id")
    _check_key(b.tag.key, f"{f}.tag.key")
    _check_len(b.tag.value, L.MAX_TAG_VALUE_LENGTH, f"{f}.tag.value")
    return events_pb2.Event(experiment_tag_set=b)


def check_tags(tags: Sequence[events_pb2.KeyValue], f: str) -> None:
    for j, tag in enumerate(tags):
        _check_key(tag.key, f"{f}[{j}].key")
        _check_len(tag.value, L.MAX_TAG_VALUE_LENGTH, f"{f}[{j}].value")


def _run_created(o: _Overlay, b: events_pb2.RunCreated, f: str, now: int) -> events_pb2.Event:
    if not L.RUN_ID_PATTERN.match(b.run_id):
        raise InvalidArgument(
            f"{b.run_id!r} is not 32 lowercase hexadecimal characters", field=f"{f}.run_id"
        )
    if o.has_run(b.run_id):
        raise AlreadyExists(f"run {b.run_id} already exists", field=f"{f}.run_id")
    exp = o.experiment(b.experiment_id, f"{f}.experiment_id")
    if exp.lifecycle_stage != "active":
        raise Conflict(
            f"experiment {b.experiment_id} is deleted; runs cannot be created in it",
            field=f"{f}.experiment_id",
        )
    _check_len(b.run_name, L.MAX_NAME_LENGTH, f"{f}.run_name")
    _check_len(b.user_id, L.MAX_NAME_LENGTH, f"{f}.user_id")
    _check_time(b.start_time, f"{f}.start_time")
    if b.parent_run_id:
        o.run(b.parent_run_id, f"{f}.parent_run_id")
    check_tags(b.tags, f"{f}.tags")
    stamped = events_pb2.RunCreated()
    stamped.CopyFrom(b)
    stamped.artifact_uri = f"{exp.artifact_location.rstrip('/')}/{b.run_id}/artifacts"
    o.put_run(RunState(b.run_id, b.experiment_id, "RUNNING", "active"))
    return events_pb2.Event(run_created=stamped)


def _run_updated(o: _Overlay, b: events_pb2.RunUpdated, f: str, now: int) -> events_pb2.Event:
    state = o.active_run(b.run_id, f"{f}.run_id", running=False)
    if b.status not in events_pb2.RunStatus.values():
        raise InvalidArgument(f"{b.status} is not a run status", field=f"{f}.status")
    if b.HasField("end_time"):
        _check_time(b.end_time, f"{f}.end_time")
    if b.HasField("run_name"):
        _check_len(b.run_name, L.MAX_NAME_LENGTH, f"{f}.run_name")
    if b.status != events_pb2.RUN_STATUS_UNSPECIFIED:
        o.put_run(replace(state, status=events_pb2.RunStatus.Name(b.status)))
    return events_pb2.Event(run_updated=b)


def _run_deleted(o: _Overlay, b: events_pb2.RunDeleted, f: str, now: int) -> events_pb2.Event:
    state = o.run(b.run_id, f"{f}.run_id")
    if state.lifecycle_stage != "active":
        raise Conflict(f"run {b.run_id} is already deleted", field=f"{f}.run_id")
    o.put_run(replace(state, lifecycle_stage="deleted"))
    return events_pb2.Event(run_deleted=b)


def _run_restored(o: _Overlay, b: events_pb2.RunRestored, f: str, now: int) -> events_pb2.Event:
    state = o.run(b.run_id, f"{f}.run_id")
    if state.lifecycle_stage != "deleted":
        raise Conflict(f"run {b.run_id} is not deleted", field=f"{f}.run_id")
    o.put_run(replace(state, lifecycle_stage="active"))
    return events_pb2.Event(run_restored=b)


def _metrics_logged(
    o: _Overlay, b: events_pb2.MetricsLogged, f: str, now: int
) -> events_pb2.Event | None:
    o.active_run(b.run_id, f"{f}.run_id", running=True)
    cols = unpack_metrics(b.points, field=f"{f}.points")
    n = len(cols)
    if n == 0:
        return None
    for j, key in enumerate(cols.keys):
        _check_key(key, f"{f}.points.keys[{j}]")
    if len(set(cols.keys)) != len(cols.keys):
        raise InvalidArgument("keys must be distinct", field=f"{f}.points.keys")
    if not cols.keys:
        raise InvalidArgument(f"{n} points but no keys", field=f"{f}.points.keys")
    over = cols.key_index >= len(cols.keys)
    if over.any():
        j = int(np.argmax(over))
        raise InvalidArgument(
            f"point {j} refers to key {int(cols.key_index[j])} of {len(cols.keys)}",
            field=f"{f}.points.key_index",
        )
    ts = cols.timestamps
    out_of_range = (ts < 0) | (ts > L.MAX_TIMESTAMP_MS)
    if out_of_range.any():
        j = int(np.argmax(out_of_range))
        raise InvalidArgument(
            f"point {j}: {int(ts[j])} is not a time in milliseconds since the epoch",
            field=f"{f}.points.timestamps",
        )
    return events_pb2.Event(metrics_logged=b)


def _params_logged(
    o: _Overlay, b: events_pb2.ParamsLogged, f: str, now: int
) -> events_pb2.Event | None:
    o.active_run(b.run_id, f"{f}.run_id", running=True)
    seen: dict[str, str] = {}
    for j, p in enumerate(b.params):
        _check_key(p.key, f"{f}.params[{j}].key")
        _check_len(p.value, L.MAX_PARAM_VALUE_LENGTH, f"{f}.params[{j}].value")
        if p.key in seen and seen[p.key] != p.value:
            raise InvalidArgument(
                f"param {p.key!r} is given twice with different values",
                field=f"{f}.params[{j}].value",
            )
        seen[p.key] = p.value
    logged = dict(o.catalog.params(b.run_id, list(seen)))
    logged.update(
        {k: v for (run, k), v in o.changes.params.items() if run == b.run_id and k in seen}
    )
    fresh: list[events_pb2.KeyValue] = []
    for j, p in enumerate(b.params):
        old = logged.get(p.key)
        if old is None:
            logged[p.key] = p.value
            o.changes.params[(b.run_id, p.key)] = p.value
            fresh.append(p)
        elif old != p.value:
            raise InvalidArgument(
                f"param {p.key!r} was logged as {old!r}; a param cannot change (got {p.value!r})",
                field=f"{f}.params[{j}].value",
            )
    if not fresh:
        return None
    return events_pb2.Event(params_logged=events_pb2.ParamsLogged(run_id=b.run_id, params=fresh))


def _tags_set(o: _Overlay, b: events_pb2.TagsSet, f: str, now: int) -> events_pb2.Event:
    o.active_run(b.run_id, f"{f}.run_id", running=False)
    check_tags(b.tags, f"{f}.tags")
    return events_pb2.Event(tags_set=b)


def _tag_deleted(o: _Overlay, b: events_pb2.TagDeleted, f: str, now: int) -> events_pb2.Event:
    o.active_run(b.run_id, f"{f}.run_id", running=False)
    _check_key(b.key, f"{f}.key")
    return events_pb2.Event(tag_deleted=b)


_Handler = Callable[[_Overlay, Any, str, int], events_pb2.Event | None]

# Events a client may not send in a WriteRequest, and where they come from instead.
_WRITTEN_ELSEWHERE = {
    "experiment_created": "experiments are created with the CreateExperiment rpc",
    "artifact_logged": "artifacts are recorded by the Artifacts service when they are stored",
}

_HANDLERS: dict[str, _Handler] = {
    "experiment_renamed": _experiment_renamed,
    "experiment_deleted": _experiment_deleted,
    "experiment_restored": _experiment_restored,
    "experiment_tag_set": _experiment_tag_set,
    "run_created": _run_created,
    "run_updated": _run_updated,
    "run_deleted": _run_deleted,
    "run_restored": _run_restored,
    "metrics_logged": _metrics_logged,
    "params_logged": _params_logged,
    "tags_set": _tags_set,
    "tag_deleted": _tag_deleted,
}
