"""The model-registry half of RunlakeClient, with MLflow's ``MlflowClient`` method names.

Registry writes are events too, sent synchronously one batch each (never mixed with
queued tracking writes, which are flushed first so a version's source run exists),
with a fresh batch id that makes a retry harmless. Their answers carry a log position
that the next read waits for, so ``create_model_version`` then ``get_model_version``
sees the version.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runlake import _validate as chk
from runlake.entities import PagedList
from runlake.errors import InvalidArgument
from runlake.positions import later
from runlake.v1 import events_pb2, gateway_pb2, gateway_pb2_grpc, query_pb2, query_pb2_grpc

__all__ = ["ModelVersion", "RegisteredModel", "RegistryMixin"]

_E = events_pb2.Event


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    source: str
    run_id: str | None
    description: str
    current_stage: str
    status: str
    creation_timestamp: int
    last_updated_timestamp: int
    user_id: str
    tags: dict[str, str] = field(default_factory=dict)
    aliases: list[str] = field(default_factory=list)

    @classmethod
    def from_proto(cls, p: query_pb2.ModelVersion) -> ModelVersion:
        return cls(
            name=p.name,
            version=p.version,
            source=p.source,
            run_id=p.run_id or None,
            description=p.description,
            current_stage=p.current_stage,
            status=p.status,
            creation_timestamp=p.creation_timestamp,
            last_updated_timestamp=p.last_updated_timestamp,
            user_id=p.user_id,
            tags={t.key: t.value for t in p.tags},
            aliases=list(p.aliases),
        )


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    description: str
    creation_timestamp: int
    last_updated_timestamp: int
    tags: dict[str, str] = field(default_factory=dict)
    latest_versions: list[ModelVersion] = field(default_factory=list)
    aliases: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_proto(cls, p: query_pb2.RegisteredModel) -> RegisteredModel:
        return cls(
            name=p.name,
            description=p.description,
            creation_timestamp=p.creation_timestamp,
            last_updated_timestamp=p.last_updated_timestamp,
            tags={t.key: t.value for t in p.tags},
            latest_versions=[ModelVersion.from_proto(v) for v in p.latest_versions],
            aliases=dict(p.aliases),
        )


@dataclass(frozen=True)
class ModelHistoryEntry:
    timestamp: int
    user: str
    event_type: str
    payload: str


def _kv(items: dict[str, Any] | None, field: str) -> list[events_pb2.KeyValue]:
    return chk.key_values(items, field) if items else []


def parse_models_uri(uri: str) -> tuple[str, str]:
    """(name, what) of ``models:/<name>/<version|stage>`` or ``models:/<name>@<alias>``."""
    if not uri.startswith("models:/"):
        raise InvalidArgument(f"{uri!r} is not a models:/ URI", field="model_uri")
    rest = uri[len("models:/") :].strip("/")
    if "@" in rest and "/" not in rest:
        name, _, alias = rest.partition("@")
        if name and alias:
            return name, "@" + alias
    name, _, what = rest.partition("/")
    if not name or not what or "/" in what:
        raise InvalidArgument(
            f"{uri!r}: use models:/<name>/<version>, models:/<name>/<stage> or "
            "models:/<name>@<alias>",
            field="model_uri",
        )
    return name, what


class RegistryMixin:
    """Mixed into RunlakeClient, which provides the plumbing named below."""

    _explicit_position: str

    @property
    def _gateway(self) -> gateway_pb2_grpc.GatewayStub:
        raise NotImplementedError

    @property
    def _query(self) -> query_pb2_grpc.QueryStub:
        raise NotImplementedError

    def _call(self, fn: Callable[..., Any], request: Any) -> Any:
        raise NotImplementedError

    def flush(self, timeout: float | None = None) -> None:
        raise NotImplementedError

    def _read(self) -> query_pb2.ReadOptions:
        raise NotImplementedError

    # -- writes --

    def _registry_write(self, *events: events_pb2.Event) -> str:
        self.flush()
        request = gateway_pb2.WriteRequest(batch_id=f"registry:{uuid.uuid4().hex}", events=events)
        response: gateway_pb2.WriteResponse = self._call(self._gateway.Write, request)
        self._explicit_position = later(self._explicit_position, response.position)
        return response.position

    def create_registered_model(
        self, name: str, tags: dict[str, Any] | None = None, description: str | None = None
    ) -> RegisteredModel:
        self._registry_write(
            _E(
                registered_model_created=events_pb2.RegisteredModelCreated(
                    name=name, description=description or "", tags=_kv(tags, "tags")
                )
            )
        )
        return self.get_registered_model(name)

    def rename_registered_model(self, name: str, new_name: str) -> RegisteredModel:
        self._registry_write(
            _E(
                registered_model_renamed=events_pb2.RegisteredModelRenamed(
                    name=name, new_name=new_name
                )
            )
        )
        return self.get_registered_model(new_name)

    def update_registered_model(self, name: str, description: str) -> RegisteredModel:
        self._registry_write(
            _E(
                registered_model_updated=events_pb2.RegisteredModelUpdated(
                    name=name, description=description
                )
            )
        )
        return self.get_registered_model(name)

    def delete_registered_model(self, name: str) -> None:
        self._registry_write(
            _E(registered_model_deleted=events_pb2.RegisteredModelDeleted(name=name))
        )

    def set_registered_model_tag(self, name: str, key: str, value: Any) -> None:
        tag = events_pb2.KeyValue(key=key, value=str(value))
        self._registry_write(
            _E(registered_model_tag_set=events_pb2.RegisteredModelTagSet(name=name, tag=tag))
        )

    def delete_registered_model_tag(self, name: str, key: str) -> None:
        self._registry_write(
            _E(
                registered_model_tag_deleted=events_pb2.RegisteredModelTagDeleted(
                    name=name, key=key
                )
            )
        )

    def create_model_version(
        self,
        name: str,
        source: str,
        run_id: str | None = None,
        tags: dict[str, Any] | None = None,
        description: str | None = None,
    ) -> ModelVersion:
        """Register ``source`` as the model's next version (numbered by the gateway)."""
        self.flush()
        request = gateway_pb2.CreateModelVersionRequest(
            batch_id=f"registry:{uuid.uuid4().hex}",
            name=name,
            source=source,
            run_id=run_id or "",
            description=description or "",
            tags=_kv(tags, "tags"),
        )
        response: gateway_pb2.CreateModelVersionResponse = self._call(
            self._gateway.CreateModelVersion, request
        )
        self._explicit_position = later(self._explicit_position, response.position)
        return self.get_model_version(name, response.version)

    def update_model_version(self, name: str, version: int, description: str) -> ModelVersion:
        self._registry_write(
            _E(
                model_version_updated=events_pb2.ModelVersionUpdated(
                    name=name, version=int(version), description=description
                )
            )
        )
        return self.get_model_version(name, version)

    def transition_model_version_stage(
        self, name: str, version: int, stage: str, archive_existing_versions: bool = False
    ) -> ModelVersion:
        self._registry_write(
            _E(
                model_version_stage_set=events_pb2.ModelVersionStageSet(
                    name=name,
                    version=int(version),
                    stage=stage,
                    archive_existing_versions=archive_existing_versions,
                )
            )
        )
        return self.get_model_version(name, version)

    def delete_model_version(self, name: str, version: int) -> None:
        self._registry_write(
            _E(
                model_version_deleted=events_pb2.ModelVersionDeleted(
                    name=name, version=int(version)
                )
            )
        )

    def set_model_version_tag(self, name: str, version: int, key: str, value: Any) -> None:
        tag = events_pb2.KeyValue(key=key, value=str(value))
        self._registry_write(
            _E(
                model_version_tag_set=events_pb2.ModelVersionTagSet(
                    name=name, version=int(version), tag=tag
                )
            )
        )

    def delete_model_version_tag(self, name: str, version: int, key: str) -> None:
        self._registry_write(
            _E(
                model_version_tag_deleted=events_pb2.ModelVersionTagDeleted(
                    name=name, version=int(version), key=key
                )
            )
        )

    def set_registered_model_alias(self, name: str, alias: str, version: int) -> None:
        self._registry_write(
            _E(
                model_alias_set=events_pb2.ModelAliasSet(
                    name=name, alias=alias, version=int(version)
                )
            )
        )

    def delete_registered_model_alias(self, name: str, alias: str) -> None:
        self._registry_write(
            _E(model_alias_deleted=events_pb2.ModelAliasDeleted(name=name, alias=alias))
        )

    # -- reads --

    def get_registered_model(self, name: str, as_of_ms: int | None = None) -> RegisteredModel:
        """The model now, or as it was at ``as_of_ms`` (ms since the epoch)."""
        req = query_pb2.GetRegisteredModelRequest(
            read=self._read(), name=name, as_of_ms=as_of_ms or 0
        )
        return RegisteredModel.from_proto(self._call(self._query.GetRegisteredModel, req))

    def search_registered_models(
        self,
        filter_string: str | None = None,
        max_results: int = 100,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[RegisteredModel]:
        req = query_pb2.SearchRegisteredModelsRequest(
            read=self._read(),
            filter=filter_string or "",
            max_results=max_results,
            order_by=order_by or [],
            page_token=page_token or "",
        )
        resp = self._call(self._query.SearchRegisteredModels, req)
        return PagedList(
            [RegisteredModel.from_proto(m) for m in resp.registered_models], resp.next_page_token
        )

    def _version(self, name: str, **which: Any) -> ModelVersion:
        req = query_pb2.GetModelVersionRequest(read=self._read(), name=name, **which)
        return ModelVersion.from_proto(self._call(self._query.GetModelVersion, req))

    def get_model_version(self, name: str, version: int | str) -> ModelVersion:
        return self._version(name, version=int(version))

    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        return self._version(name, alias=alias)

    def get_latest_versions(self, name: str, stages: list[str] | None = None) -> list[ModelVersion]:
        """The latest version in each stage (all stages when ``stages`` is None)."""
        model = self.get_registered_model(name)
        if stages is None:
            return model.latest_versions
        wanted = {s.lower() for s in stages}
        return [v for v in model.latest_versions if v.current_stage.lower() in wanted]

    def search_model_versions(
        self,
        filter_string: str | None = None,
        max_results: int = 10_000,
        order_by: list[str] | None = None,
        page_token: str | None = None,
    ) -> PagedList[ModelVersion]:
        req = query_pb2.SearchModelVersionsRequest(
            read=self._read(),
            filter=filter_string or "",
            max_results=max_results,
            order_by=order_by or [],
            page_token=page_token or "",
        )
        resp = self._call(self._query.SearchModelVersions, req)
        return PagedList(
            [ModelVersion.from_proto(v) for v in resp.model_versions], resp.next_page_token
        )

    def get_model_history(self, name: str) -> list[ModelHistoryEntry]:
        """Who did what to the model and when, oldest first (from the events table)."""
        req = query_pb2.ModelHistoryRequest(read=self._read(), name=name)
        resp = self._call(self._query.GetModelHistory, req)
        return [
            ModelHistoryEntry(e.timestamp, e.user, e.event_type, e.payload) for e in resp.entries
        ]

    def resolve_model_uri(self, uri: str) -> tuple[str, str]:
        """(run_id, artifact path) of a ``models:/`` URI's source (must be a runs:/ URI)."""
        from runlake.artifacts import parse_runs_uri

        name, what = parse_models_uri(uri)
        if what.startswith("@"):
            mv = self.get_model_version_by_alias(name, what[1:])
        elif what.isdigit():
            mv = self.get_model_version(name, int(what))
        elif what.lower() == "latest":
            latest = sorted(self.get_latest_versions(name), key=lambda v: v.version)
            if not latest:
                raise InvalidArgument(f"model {name!r} has no versions", field="model_uri")
            mv = latest[-1]
        else:
            mv = self._version(name, stage=what)
        if not mv.source.startswith("runs:/"):
            raise InvalidArgument(
                f"version {mv.version} of {name!r} comes from {mv.source!r}; only runs:/ "
                "sources can be downloaded",
                field="model_uri",
            )
        return parse_runs_uri(mv.source)
