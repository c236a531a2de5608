"""Validation of model-registry events, with the stamps only the gateway can give.

A registry batch is checked against the catalog as it will be after the events before
it (an overlay), like a tracking batch. The gateway stamps each event with the model's
``model_id`` (clients name models; ids survive renames), a new version's number (one
more than the model's last, under the ingestion lock: never a gap or a duplicate), and
the versions a promotion with ``archive_existing_versions`` moves to Archived, so the
fold needs no state of its own to apply them.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from runlake.errors import AlreadyExists, InvalidArgument, NotFound
from runlake.v1 import events_pb2

from runlake_services.eventlog import Catalog, ModelState, StateChanges, VersionState
from runlake_services.gateway import limits as L

__all__ = ["REGISTRY_KINDS", "STAGES", "validate_registry_events"]

#: MLflow's stage names; input is matched case-insensitively.
STAGES = {s.lower(): s for s in ("None", "Staging", "Production", "Archived")}
MAX_MODEL_NAME = 256
MAX_DESCRIPTION = 5_000
MAX_SOURCE = 2_000
_ALIAS = re.compile(r"^[\w\-]{1,255}$")
_VERSION_LIKE = re.compile(r"^v\d+$", re.IGNORECASE)


class _Registry:
    """The registry part of the catalog as it will be after the events checked so far."""

    def __init__(self, catalog: Catalog, changes: StateChanges) -> None:
        self.catalog = catalog
        self.changes = changes
        self._by_name: dict[str, ModelState | None] = {}

    def find(self, name: str) -> ModelState | None:
        if name not in self._by_name:
            self._by_name[name] = self.catalog.model_by_name(name)
        return self._by_name[name]

    def model(self, name: str, field: str) -> ModelState:
        _check_name(name, field)
        state = self.find(name)
        if state is None:
            raise NotFound(f"no registered model named {name!r}", field=field)
        return state

    def put_model(self, state: ModelState, *, old_name: str | None = None) -> None:
        if old_name is not None:
            self._by_name[old_name] = None
        self._by_name[state.name] = state if state.lifecycle_stage == "active" else None
        self.changes.models[state.model_id] = state

    def version(self, m: ModelState, version: int, field: str) -> VersionState:
        state = self.changes.versions.get((m.model_id, version))
        if state is None:
            state = self.catalog.model_version(m.model_id, version)
        if state is None or state.lifecycle_stage != "active":
            raise NotFound(f"model {m.name!r} has no version {version}", field=field)
        return state

    def put_version(self, state: VersionState) -> None:
        self.changes.versions[(state.model_id, state.version)] = state

    def in_stage(self, m: ModelState, stage: str) -> list[int]:
        found = set(self.catalog.versions_in_stage(m.model_id, stage))
        for (mid, v), st in self.changes.versions.items():
            if mid != m.model_id:
                continue
            if st.stage == stage and st.lifecycle_stage == "active":
                found.add(v)
            else:
                found.discard(v)
        return sorted(found)

    def alias(self, m: ModelState, alias: str) -> int | None:
        key = (m.model_id, alias)
        if key in self.changes.aliases:
            return self.changes.aliases[key]
        return self.catalog.alias(m.model_id, alias)


def _check_name(name: str, field: str) -> None:
    if not name:
        raise InvalidArgument("must not be empty", field=field)
    if len(name) > MAX_MODEL_NAME:
        raise InvalidArgument(f"is {len(name)} characters; at most {MAX_MODEL_NAME}", field=field)
    if "/" in name or "@" in name or any(ord(c) < 0x20 for c in name):
        raise InvalidArgument(
            f"{name!r}: a model name cannot hold '/', '@' or control characters "
            "(they would break models:/ URIs)",
            field=field,
        )


def _check_text(value: str, limit: int, field: str) -> None:
    if len(value) > limit:
        raise InvalidArgument(f"is {len(value)} characters; at most {limit}", field=field)


def _check_tag(key: str, value: str, field: str) -> None:
    if not key:
        raise InvalidArgument("must not be empty", field=f"{field}.key")
    if len(key) > L.MAX_KEY_LENGTH or not L.KEY_PATTERN.match(key):
        raise InvalidArgument(f"{key!r} is not a valid tag key", field=f"{field}.key")
    _check_text(value, MAX_DESCRIPTION, f"{field}.value")


def _check_version(version: int, field: str) -> int:
    if version < 1:
        raise InvalidArgument(f"{version} is not a version number (1, 2, …)", field=field)
    return version


def _stage(stage: str, field: str) -> str:
    canonical = STAGES.get(stage.strip().lower())
    if canonical is None:
        raise InvalidArgument(
            f"{stage!r} is not a stage; use None, Staging, Production or Archived", field=field
        )
    return canonical


_Ctx = tuple[_Registry, int, str]  # overlay, now (ms), user
_Handler = Callable[[_Ctx, Any, str], None]


def _created(ctx: _Ctx, b: events_pb2.RegisteredModelCreated, f: str) -> None:
    reg, now, _ = ctx
    _check_name(b.name, f"{f}.name")
    if reg.find(b.name) is not None:
        raise AlreadyExists(f"a registered model named {b.name!r} exists", field=f"{f}.name")
    _check_text(b.description, MAX_DESCRIPTION, f"{f}.description")
    for j, t in enumerate(b.tags):
        _check_tag(t.key, t.value, f"{f}.tags[{j}]")
    b.model_id = uuid.uuid4().hex
    b.creation_time = now
    reg.put_model(ModelState(b.model_id, b.name, "active", 0))


def _renamed(ctx: _Ctx, b: events_pb2.RegisteredModelRenamed, f: str) -> None:
    reg = ctx[0]
    m = reg.model(b.name, f"{f}.name")
    _check_name(b.new_name, f"{f}.new_name")
    if b.new_name != b.name and reg.find(b.new_name) is not None:
        raise AlreadyExists(
            f"a registered model named {b.new_name!r} exists", field=f"{f}.new_name"
        )
    b.model_id = m.model_id
    reg.put_model(ModelState(m.model_id, b.new_name, "active", m.last_version), old_name=b.name)


def _updated(ctx: _Ctx, b: events_pb2.RegisteredModelUpdated, f: str) -> None:
    m = ctx[0].model(b.name, f"{f}.name")
    _check_text(b.description, MAX_DESCRIPTION, f"{f}.description")
    b.model_id = m.model_id


def _deleted(ctx: _Ctx, b: events_pb2.RegisteredModelDeleted, f: str) -> None:
    reg = ctx[0]
    m = reg.model(b.name, f"{f}.name")
    b.model_id = m.model_id
    reg.put_model(ModelState(m.model_id, m.name, "deleted", m.last_version))


def _model_tag_set(ctx: _Ctx, b: events_pb2.RegisteredModelTagSet, f: str) -> None:
    m = ctx[0].model(b.name, f"{f}.name")
    _check_tag(b.tag.key, b.tag.value, f"{f}.tag")
    b.model_id = m.model_id


def _model_tag_deleted(ctx: _Ctx, b: events_pb2.RegisteredModelTagDeleted, f: str) -> None:
    m = ctx[0].model(b.name, f"{f}.name")
    _check_tag(b.key, "", f"{f}")
    b.model_id = m.model_id


def _version_created(ctx: _Ctx, b: events_pb2.ModelVersionCreated, f: str) -> None:
    reg, now, user = ctx
    m = reg.model(b.name, f"{f}.name")
    if not b.source:
        raise InvalidArgument(
            "must name where the model is (e.g. runs:/<id>/model)", field=f"{f}.source"
        )
    _check_text(b.source, MAX_SOURCE, f"{f}.source")
    _check_text(b.description, MAX_DESCRIPTION, f"{f}.description")
    if b.run_id and not reg.catalog.runs([b.run_id]).get(b.run_id):
        raise NotFound(f"no run with id {b.run_id!r}", field=f"{f}.run_id")
    for j, t in enumerate(b.tags):
        _check_tag(t.key, t.value, f"{f}.tags[{j}]")
    version = m.last_version + 1
    b.model_id, b.version, b.creation_time, b.user_id = m.model_id, version, now, user
    reg.put_model(ModelState(m.model_id, m.name, m.lifecycle_stage, version))
    reg.put_version(VersionState(m.model_id, version, "None", "active"))


def _version_updated(ctx: _Ctx, b: events_pb2.ModelVersionUpdated, f: str) -> None:
    reg = ctx[0]
    m = reg.model(b.name, f"{f}.name")
    reg.version(m, _check_version(b.version, f"{f}.version"), f"{f}.version")
    _check_text(b.description, MAX_DESCRIPTION, f"{f}.description")
    b.model_id = m.model_id


def _stage_set(ctx: _Ctx, b: events_pb2.ModelVersionStageSet, f: str) -> None:
    reg = ctx[0]
    m = reg.model(b.name, f"{f}.name")
    v = reg.version(m, _check_version(b.version, f"{f}.version"), f"{f}.version")
    stage = _stage(b.stage, f"{f}.stage")
    archived: list[int] = []
    if b.archive_existing_versions:
        if stage not in ("Staging", "Production"):
            raise InvalidArgument(
                "archive_existing_versions applies only to Staging or Production",
                field=f"{f}.archive_existing_versions",
            )
        archived = [n for n in reg.in_stage(m, stage) if n != v.version]
    b.model_id, b.stage = m.model_id, stage
    del b.archived_versions[:]
    b.archived_versions.extend(archived)
    reg.put_version(VersionState(m.model_id, v.version, stage, "active"))
    for n in archived:
        reg.put_version(VersionState(m.model_id, n, "Archived", "active"))


def _version_deleted(ctx: _Ctx, b: events_pb2.ModelVersionDeleted, f: str) -> None:
    reg = ctx[0]
    m = reg.model(b.name, f"{f}.name")
    v = reg.version(m, _check_version(b.version, f"{f}.version"), f"{f}.version")
    b.model_id = m.model_id
    reg.put_version(VersionState(m.model_id, v.version, v.stage, "deleted"))


def _version_tag_set(ctx: _Ctx, b: events_pb2.ModelVersionTagSet, f: str) -> None:
    reg = ctx[0]
    m = reg.model(b.name, f"{f}.name")
    reg.version(m, _check_version(b.version, f"{f}.version"), f"{f}.version")
    _check_tag(b.tag.key, b.tag.value, f"{f}.tag")
    b.model_id = m.model_id


def _version_tag_deleted(ctx: _Ctx, b: events_pb2.ModelVersionTagDeleted, f: str) -> None:
    reg = ctx[0]
    m = reg.model(b.name, f"{f}.name")
    reg.version(m, _check_version(b.version, f"{f}.version"), f"{f}.version")
    _check_tag(b.key, "", f)
    b.model_id = m.model_id


def _alias_set(ctx: _Ctx, b: events_pb2.ModelAliasSet, f: str) -> None:
    reg = ctx[0]
    m = reg.model(b.name, f"{f}.name")
    if not _ALIAS.match(b.alias) or _VERSION_LIKE.match(b.alias) or b.alias.lower() == "latest":
        raise InvalidArgument(
            f"{b.alias!r}: an alias is 1-255 letters, digits, '_' or '-', and not 'latest' "
            "or v<number> (those read as versions)",
            field=f"{f}.alias",
        )
    reg.version(m, _check_version(b.version, f"{f}.version"), f"{f}.version")
    b.model_id = m.model_id
    reg.changes.aliases[(m.model_id, b.alias)] = b.version


def _alias_deleted(ctx: _Ctx, b: events_pb2.ModelAliasDeleted, f: str) -> None:
    reg = ctx[0]
    m = reg.model(b.name, f"{f}.name")
    if reg.alias(m, b.alias) is None:
        raise NotFound(f"model {m.name!r} has no alias {b.alias!r}", field=f"{f}.alias")
    b.model_id = m.model_id
    reg.changes.aliases[(m.model_id, b.alias)] = None


_HANDLERS: dict[str, _Handler] = {
    "registered_model_created": _created,
    "registered_model_renamed": _renamed,
    "registered_model_updated": _updated,
    "registered_model_deleted": _deleted,
    "registered_model_tag_set": _model_tag_set,
    "registered_model_tag_deleted": _model_tag_deleted,
    "model_version_created": _version_created,
    "model_version_updated": _version_updated,
    "model_version_stage_set": _stage_set,
    "model_version_deleted": _version_deleted,
    "model_version_tag_set": _version_tag_set,
    "model_version_tag_deleted": _version_tag_deleted,
    "model_alias_set": _alias_set,
    "model_alias_deleted": _alias_deleted,
}
REGISTRY_KINDS = frozenset(_HANDLERS)


def validate_registry_events(
    catalog: Catalog, events: Sequence[events_pb2.Event], *, now_ms: int, user: str
) -> tuple[list[events_pb2.Event], StateChanges]:
    """Check and stamp a batch of registry events (copies; the request is left alone)."""
    changes = StateChanges()
    ctx: _Ctx = (_Registry(catalog, changes), now_ms, user)
    out: list[events_pb2.Event] = []
    for i, ev in enumerate(events):
        kind = ev.WhichOneof("body")
        handler = _HANDLERS.get(kind or "")
        if handler is None:
            raise InvalidArgument(
                "a batch holding registry events holds nothing else", field=f"events[{i}]"
            )
        stamped = events_pb2.Event()
        stamped.CopyFrom(ev)
        handler(ctx, getattr(stamped, str(kind)), f"events[{i}].{kind}")
        out.append(stamped)
    return out, changes
