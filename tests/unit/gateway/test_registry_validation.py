"""Registry writes: stamped ids and versions, each bad input refused whole, folded as written."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from runlake.errors import AlreadyExists, InvalidArgument, NotFound, RunlakeError
from runlake.v1 import events_pb2 as E
from runlake.v1 import gateway_pb2 as G

from tests.conftest import Pipeline


@pytest.fixture
def p(pipeline_factory: Callable[..., Pipeline]) -> Pipeline:
    return pipeline_factory()


def _write(p: Pipeline, *events: E.Event) -> G.WriteResponse:
    return p.ingestor.write(
        G.WriteRequest(batch_id=f"reg:{uuid.uuid4().hex}", events=events), user="alice"
    )


def _create(name: str, **kw: object) -> E.Event:
    return E.Event(registered_model_created=E.RegisteredModelCreated(name=name, **kw))  # type: ignore[arg-type]


def _version(p: Pipeline, name: str, source: str = "s3://b/m") -> int:
    req = G.CreateModelVersionRequest(batch_id=f"v:{uuid.uuid4().hex}", name=name, source=source)
    return p.ingestor.create_model_version(req, user="alice").version


def _stage(name: str, version: int, stage: str, archive: bool = False) -> E.Event:
    return E.Event(
        model_version_stage_set=E.ModelVersionStageSet(
            name=name, version=version, stage=stage, archive_existing_versions=archive
        )
    )


def _rejects(p: Pipeline, exc: type[RunlakeError], field: str, *events: E.Event) -> None:
    end = p.log.end_position()
    with pytest.raises(exc) as info:
        _write(p, *events)
    assert field in str(info.value).split(":")[0], str(info.value)
    assert p.log.end_position() == end, "a rejected batch must append nothing"


def test_versions_are_numbered_and_never_reused(p: Pipeline) -> None:
    _write(p, _create("m"))
    assert [_version(p, "m") for _ in range(3)] == [1, 2, 3]
    _write(p, E.Event(model_version_deleted=E.ModelVersionDeleted(name="m", version=3)))
    assert _version(p, "m") == 4


def test_a_retried_create_version_gets_its_first_number(p: Pipeline) -> None:
    _write(p, _create("m"))
    req = G.CreateModelVersionRequest(batch_id="v:retry", name="m", source="s3://b/m")
    first = p.ingestor.create_model_version(req, user="alice")
    again = p.ingestor.create_model_version(req, user="alice")
    assert (first.version, again.version, again.position) == (1, 1, first.position)
    assert _version(p, "m") == 2


def test_promotion_archives_the_others_and_the_fold_applies_it(p: Pipeline) -> None:
    _write(p, _create("m", description="churn"))
    for _ in range(3):
        _version(p, "m")
    _write(p, _stage("m", 1, "production"), _stage("m", 2, "Production"))
    _write(p, _stage("m", 3, "Production", archive=True))
    p.compactor.run_once()
    stages = {r["version"]: r["current_stage"] for r in p.table("model_versions")}
    assert stages == {1: "Archived", 2: "Archived", 3: "Production"}
    (model,) = p.table("registered_models")
    assert (model["name"], model["description"], model["lifecycle_stage"]) == (
        "m",
        "churn",
        "active",
    )
    users = {r["user"] for r in p.table("events") if r["event_type"].startswith("model_")}
    assert users == {"alice"}


def test_rename_keeps_the_identity(p: Pipeline) -> None:
    _write(p, _create("old"))
    _version(p, "old")
    _write(
        p, E.Event(registered_model_renamed=E.RegisteredModelRenamed(name="old", new_name="new"))
    )
    assert _version(p, "new") == 2
    _rejects(p, NotFound, "name", _stage("old", 1, "Staging"))
    p.compactor.run_once()
    assert [r["name"] for r in p.table("registered_models")] == ["new"]
    assert {r["model_id"] for r in p.table("model_versions")} == {
        p.table("registered_models")[0]["model_id"]
    }


def test_aliases(p: Pipeline) -> None:
    _write(p, _create("m"))
    _version(p, "m")
    _write(p, E.Event(model_alias_set=E.ModelAliasSet(name="m", alias="champion", version=1)))
    _rejects(
        p,
        NotFound,
        "version",
        E.Event(model_alias_set=E.ModelAliasSet(name="m", alias="x", version=2)),
    )
    for bad in ("latest", "v1", "V12", "has space", ""):
        _rejects(
            p,
            InvalidArgument,
            "alias",
            E.Event(model_alias_set=E.ModelAliasSet(name="m", alias=bad, version=1)),
        )
    _rejects(
        p,
        NotFound,
        "alias",
        E.Event(model_alias_deleted=E.ModelAliasDeleted(name="m", alias="nope")),
    )
    _write(p, E.Event(model_alias_deleted=E.ModelAliasDeleted(name="m", alias="champion")))


@pytest.mark.parametrize(
    ("event", "exc", "field"),
    [
        (_create(""), InvalidArgument, "name"),
        (_create("a/b"), InvalidArgument, "name"),
        (_create("a@b"), InvalidArgument, "name"),
        (_create("x" * 257), InvalidArgument, "name"),
        (_create("m2", description="d" * 5001), InvalidArgument, "description"),
        (_stage("nope", 1, "Staging"), NotFound, "name"),
        (_stage("m", 1, "Prod"), InvalidArgument, "stage"),
        (_stage("m", 0, "Staging"), InvalidArgument, "version"),
        (_stage("m", 9, "Staging"), NotFound, "version"),
        (_stage("m", 1, "Archived", archive=True), InvalidArgument, "archive_existing"),
        (
            E.Event(
                registered_model_tag_set=E.RegisteredModelTagSet(name="m", tag=E.KeyValue(key=""))
            ),
            InvalidArgument,
            "tag.key",
        ),
    ],
)
def test_bad_registry_input(
    p: Pipeline, event: E.Event, exc: type[RunlakeError], field: str
) -> None:
    _write(p, _create("m"))
    _version(p, "m")
    _rejects(p, exc, field, event)


def test_duplicate_name_and_mixed_batches(p: Pipeline) -> None:
    _write(p, _create("m"))
    _rejects(p, AlreadyExists, "name", _create("m"))
    _rejects(p, AlreadyExists, "name", _create("n"), _create("n"))  # whole batch refused
    assert _write(p, _create("n"))  # so "n" was not created by the refused batch
    tracking = E.Event(run_deleted=E.RunDeleted(run_id="0" * 32))
    _rejects(p, InvalidArgument, "events[1]", _create("z"), tracking)
    _rejects(p, InvalidArgument, "events[1]", tracking, _create("z"))


def test_a_deleted_model_frees_its_name(p: Pipeline) -> None:
    _write(p, _create("m"))
    _version(p, "m")
    _write(p, E.Event(registered_model_deleted=E.RegisteredModelDeleted(name="m")))
    with pytest.raises(NotFound):
        _version(p, "m")
    _write(p, _create("m"))
    assert _version(p, "m") == 1  # a new model counts from 1
    p.compactor.run_once()
    stages = sorted(r["lifecycle_stage"] for r in p.table("registered_models"))
    assert stages == ["active", "deleted"]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(name=st.text(max_size=300), alias=st.text(max_size=20))
def test_arbitrary_names_are_accepted_or_refused_cleanly(
    p: Pipeline, name: str, alias: str
) -> None:
    try:
        _write(p, _create(name))
    except (InvalidArgument, AlreadyExists):
        return
    with contextlib.suppress(InvalidArgument, NotFound):  # no version 1: NotFound is right
        _write(p, E.Event(model_alias_set=E.ModelAliasSet(name=name, alias=alias, version=1)))
