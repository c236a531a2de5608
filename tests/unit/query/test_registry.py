"""Registry reads over tables built for real: events → fold → delta-rs → RegistryReader.

The ``Registry`` helper plays the gateway's part (it stamps model ids, version
numbers and the versions a promotion archives) and the compactor's (one fold and
one commit per round, events last), so every read here goes through the same
tables and merge rules the server uses.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from runlake.errors import InvalidArgument, NotFound
from runlake.v1 import events_pb2 as E
from runlake.v1 import query_pb2 as Q
from runlake.v1 import query_pb2_grpc
from runlake_services.fold import fold
from runlake_services.progress import Progress
from runlake_services.query import (
    MetricHistory,
    QueryServicer,
    RegistryReader,
    RunsIndex,
    SqlEngine,
    add_to_server,
)
from runlake_services.tables.delta_sink import DeltaTableSink
from runlake_services.tables.reader import DeltaTableReader
from runlake_services.tables.schema import TABLES

T0 = 1_700_000_000_000


def _kv(tags: dict[str, str] | None) -> list[E.KeyValue]:
    return [E.KeyValue(key=k, value=v) for k, v in (tags or {}).items()]


class Registry:
    """A registry under ``root``: the gateway's stamping plus the compactor's rounds."""

    def __init__(self, root: Path) -> None:
        self.sink = DeltaTableSink(str(root))
        self.sink.ensure_tables()
        self.reader = DeltaTableReader(str(root))
        self.read = RegistryReader(self.reader)
        self.position = 0
        self.pending: list[tuple[int, E.LoggedBatch]] = []
        self.ids: dict[str, str] = {}  # live name -> model_id
        self.last_version: dict[str, int] = {}  # model_id -> last version number
        self.stages: dict[tuple[str, int], str] = {}
        self.clock = T0

    # -- log and fold --

    def write(self, user: str, *events: E.Event) -> None:
        self.position += 1
        meta = E.BatchMeta(
            batch_id=f"b{self.position}",
            user=user,
            received_at_ms=T0 + self.position * 1_000,
            schema_version=1,
        )
        self.pending.append((self.position, E.LoggedBatch(meta=meta, events=list(events))))

    def commit(self) -> None:
        """One compaction round over everything written since the last one."""
        result = fold(self.pending)
        for name in TABLES:
            rows = result.tables[name]
            if name != "events" and rows.num_rows:
                self.sink.commit(name, rows, result.last_position)
        self.sink.commit("events", result.tables["events"], result.last_position)
        self.pending = []

    def _now(self) -> int:
        self.clock += 10
        return self.clock

    # -- the gateway's part --

    def create(
        self,
        name: str,
        user: str = "alice",
        description: str = "",
        tags: dict[str, str] | None = None,
    ) -> str:
        mid = uuid.uuid4().hex
        self.ids[name] = mid
        self.write(
            user,
            E.Event(
                registered_model_created=E.RegisteredModelCreated(
                    model_id=mid,
                    name=name,
                    description=description,
                    tags=_kv(tags),
                    creation_time=self._now(),
                )
            ),
        )
        return mid

    def version(
        self,
        name: str,
        run_id: str = "",
        source: str = "",
        user: str = "alice",
        tags: dict[str, str] | None = None,
    ) -> int:
        mid = self.ids[name]
        n = self.last_version.get(mid, 0) + 1
        self.last_version[mid] = n
        self.stages[(mid, n)] = "None"
        self.write(
            user,
            E.Event(
                model_version_created=E.ModelVersionCreated(
                    model_id=mid,
                    name=name,
                    version=n,
                    source=source or f"runs:/{run_id}/model",
                    run_id=run_id,
                    tags=_kv(tags),
                    creation_time=self._now(),
                    user_id=user,
                )
            ),
        )
        return n

    def stage(
        self, name: str, version: int, stage: str, *, archive: bool = False, user: str = "bob"
    ) -> None:
        mid = self.ids[name]
        archived = []
        if archive and stage in ("Staging", "Production"):
            archived = [
                v
                for (m, v), s in sorted(self.stages.items())
                if m == mid and v != version and s == stage
            ]
        for v in archived:
            self.stages[(mid, v)] = "Archived"
        self.stages[(mid, version)] = stage
        self.write(
            user,
            E.Event(
                model_version_stage_set=E.ModelVersionStageSet(
                    model_id=mid,
                    name=name,
                    version=version,
                    stage=stage,
                    archive_existing_versions=archive,
                    archived_versions=archived,
                )
            ),
        )

    def alias(self, name: str, alias: str, version: int | None, user: str = "bob") -> None:
        mid = self.ids[name]
        if version is None:
            body = E.Event(
                model_alias_deleted=E.ModelAliasDeleted(model_id=mid, name=name, alias=alias)
            )
        else:
            body = E.Event(
                model_alias_set=E.ModelAliasSet(
                    model_id=mid, name=name, alias=alias, version=version
                )
            )
        self.write(user, body)

    def model_tag(self, name: str, key: str, value: str | None, user: str = "alice") -> None:
        mid = self.ids[name]
        if value is None:
            ev = E.Event(
                registered_model_tag_deleted=E.RegisteredModelTagDeleted(
                    model_id=mid, name=name, key=key
                )
            )
        else:
            ev = E.Event(
                registered_model_tag_set=E.RegisteredModelTagSet(
                    model_id=mid, name=name, tag=E.KeyValue(key=key, value=value)
                )
            )
        self.write(user, ev)

    def version_tag(self, name: str, version: int, key: str, value: str | None) -> None:
        mid = self.ids[name]
        if value is None:
            ev = E.Event(
                model_version_tag_deleted=E.ModelVersionTagDeleted(
                    model_id=mid, name=name, version=version, key=key
                )
            )
        else:
            ev = E.Event(
                model_version_tag_set=E.ModelVersionTagSet(
                    model_id=mid, name=name, version=version, tag=E.KeyValue(key=key, value=value)
                )
            )
        self.write("alice", ev)

    def rename(self, name: str, new_name: str, user: str = "alice") -> None:
        mid = self.ids.pop(name)
        self.ids[new_name] = mid
        self.write(
            user,
            E.Event(
                registered_model_renamed=E.RegisteredModelRenamed(
                    model_id=mid, name=name, new_name=new_name
                )
            ),
        )

    def describe(self, name: str, description: str) -> None:
        mid = self.ids[name]
        self.write(
            "alice",
            E.Event(
                registered_model_updated=E.RegisteredModelUpdated(
                    model_id=mid, name=name, description=description
                )
            ),
        )

    def delete_version(self, name: str, version: int, user: str = "carol") -> None:
        mid = self.ids[name]
        self.stages.pop((mid, version))
        self.write(
            user,
            E.Event(
                model_version_deleted=E.ModelVersionDeleted(
                    model_id=mid, name=name, version=version
                )
            ),
        )

    def delete(self, name: str, user: str = "carol") -> str:
        mid = self.ids.pop(name)
        self.write(
            user,
            E.Event(registered_model_deleted=E.RegisteredModelDeleted(model_id=mid, name=name)),
        )
        return mid


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """A registry with every kind of change, committed in three rounds."""
    r = Registry(tmp_path_factory.mktemp("registry"))
    # round 1: models and versions
    r.create("fraud", description="detects fraud", tags={"team": "risk", "owner": "ann"})
    for i in range(1, 6):
        r.version("fraud", run_id=f"r{i}", tags={"k": "v"} if i == 1 else None)
    r.create("churn", tags={"team": "growth"})
    r.version("churn", run_id="r9", source="s3://bucket/churn", user="dave")
    r.create("old-name", tags={"team": "search"})
    r.version("old-name", run_id="r7")
    r.version("old-name", run_id="r8")
    r.commit()
    # round 2: stages, aliases, tags, a rename
    r.stage("fraud", 1, "Staging")
    r.stage("fraud", 2, "Production")
    r.stage("fraud", 3, "Staging")
    r.stage("fraud", 3, "Production", archive=True)  # archives 2
    r.alias("fraud", "champion", 3)
    r.alias("fraud", "challenger", 1)
    r.alias("fraud", "gone", 2)
    r.alias("fraud", "stale", 5)
    r.model_tag("fraud", "zeta", "last")
    r.model_tag("fraud", "owner", None)
    r.version_tag("fraud", 2, "k", "w")
    r.describe("churn", "predicts churn")
    r.rename("old-name", "ranker", user="erin")
    r.commit()
    # round 3: moves and deletions
    r.alias("fraud", "challenger", 4)  # moved
    r.alias("fraud", "gone", None)  # deleted
    r.delete_version("fraud", 5)  # "stale" now points at a deleted version
    r.create("temp", user="frank")
    r.version("temp", run_id="r1", user="frank")
    r.delete("temp")
    r.create("temp", user="grace", tags={"team": "new"})  # a fresh model, same name
    r.commit()
    return r


def _names(models: list[Q.RegisteredModel]) -> list[str]:
    return [m.name for m in models]


def _vs(versions: list[Q.ModelVersion]) -> list[tuple[str, int]]:
    return [(v.name, v.version) for v in versions]


# -- models --


def test_get_registered_model(world: Registry) -> None:
    m = world.read.get_registered_model("fraud")
    assert m.name == "fraud" and m.description == "detects fraud"
    assert [(t.key, t.value) for t in m.tags] == [("team", "risk"), ("zeta", "last")]
    assert m.creation_timestamp > 0 and m.last_updated_timestamp >= m.creation_timestamp
    assert dict(m.aliases) == {"champion": 3, "challenger": 4}  # 'stale' -> deleted v5
    assert [(v.version, v.current_stage) for v in m.latest_versions] == [
        (1, "Staging"),
        (2, "Archived"),
        (3, "Production"),
        (4, "None"),
    ]
    assert world.read.get_registered_model("churn").description == "predicts churn"


def test_unknown_deleted_and_empty_names(world: Registry) -> None:
    with pytest.raises(NotFound) as info:
        world.read.get_registered_model("nope")
    assert info.value.field == "name"
    with pytest.raises(InvalidArgument) as bad:
        world.read.get_registered_model("")
    assert bad.value.field == "name"


def test_rename_moves_the_model_and_its_versions(world: Registry) -> None:
    with pytest.raises(NotFound):
        world.read.get_registered_model("old-name")
    m = world.read.get_registered_model("ranker")
    assert [v.version for v in m.latest_versions] == [2]  # both in None: the highest
    assert world.read.get_model_version("ranker", version=1).run_id == "r7"
    found, _ = world.read.search_model_versions("name = 'ranker'", [], 0, "")
    assert _vs(found) == [("ranker", 2), ("ranker", 1)]
    with pytest.raises(NotFound):
        world.read.get_model_version("old-name", version=1)


def test_deleted_model_is_gone_and_its_name_is_fresh(world: Registry) -> None:
    m = world.read.get_registered_model("temp")
    assert [(t.key, t.value) for t in m.tags] == [("team", "new")]
    assert list(m.latest_versions) == [] and dict(m.aliases) == {}
    with pytest.raises(NotFound) as info:
        world.read.get_model_version("temp", version=1)
    assert info.value.field == "version"
    found, _ = world.read.search_model_versions("run_id = 'r1'", [], 0, "")
    assert _vs(found) == [("fraud", 1)]  # not the deleted temp's version 1


# -- versions --


def test_get_model_version_by_number(world: Registry) -> None:
    v = world.read.get_model_version("fraud", version=1)
    assert (v.name, v.version, v.run_id, v.source) == ("fraud", 1, "r1", "runs:/r1/model")
    assert v.current_stage == "Staging" and v.status == "READY" and v.user_id == "alice"
    assert [(t.key, t.value) for t in v.tags] == [("k", "v")]
    assert list(world.read.get_model_version("fraud", version=4).aliases) == ["challenger"]
    assert list(world.read.get_model_version("fraud", version=3).aliases) == ["champion"]
    assert world.read.get_model_version("fraud", version=2).current_stage == "Archived"
    assert [(t.key, t.value) for t in world.read.get_model_version("fraud", version=2).tags] == [
        ("k", "w")
    ]
    assert world.read.get_model_version("churn", version=1).user_id == "dave"


def test_deleted_version_is_invisible(world: Registry) -> None:
    with pytest.raises(NotFound) as info:
        world.read.get_model_version("fraud", version=5)
    assert info.value.field == "version"
    found, _ = world.read.search_model_versions("name = 'fraud'", [], 0, "")
    assert [v.version for v in found] == [4, 3, 2, 1]


def test_aliases_resolve_move_and_delete(world: Registry) -> None:
    assert world.read.get_model_version("fraud", alias="champion").version == 3
    assert world.read.get_model_version("fraud", alias="challenger").version == 4
    for alias in ("gone", "stale", "never"):  # deleted; points at a deleted version; unknown
        with pytest.raises(NotFound) as info:
            world.read.get_model_version("fraud", alias=alias)
        assert info.value.field == "alias"


def test_latest_in_stage(world: Registry) -> None:
    assert world.read.get_model_version("fraud", stage="Production").version == 3
    assert world.read.get_model_version("fraud", stage="staging").version == 1
    assert world.read.get_model_version("fraud", stage="None").version == 4
    with pytest.raises(NotFound) as info:
        world.read.get_model_version("churn", stage="Production")
    assert info.value.field == "stage"
    with pytest.raises(InvalidArgument) as bad:
        world.read.get_model_version("fraud", stage="Prod")
    assert bad.value.field == "stage"


@pytest.mark.parametrize(
    "selector",
    [{}, {"version": 1, "alias": "champion"}, {"alias": "a", "stage": "None"}, {"version": -1}],
)
def test_version_selector_must_be_one(world: Registry, selector: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument) as info:
        world.read.get_model_version("fraud", **selector)
    assert info.value.field == "version"


def test_get_version_of_unknown_model_names_the_name(world: Registry) -> None:
    with pytest.raises(NotFound) as info:
        world.read.get_model_version("nope", version=1)
    assert info.value.field == "name"


# -- search --


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ["churn", "fraud", "ranker", "temp"]),
        ("name = 'fraud'", ["fraud"]),
        ("attributes.name = 'churn'", ["churn"]),
        ("name != 'fraud'", ["churn", "ranker", "temp"]),
        ("name LIKE '%r%'", ["churn", "fraud", "ranker"]),
        ("name LIKE 'F%'", []),
        ("name ILIKE 'F%'", ["fraud"]),
        ("tags.team = 'risk'", ["fraud"]),
        ("tags.team LIKE '%o%'", ["churn"]),
        ("tags.team ILIKE '%SEARCH'", ["ranker"]),
        ("tags.owner = 'ann'", []),  # deleted tag
        ("tags.`team` != 'risk'", ["churn", "ranker", "temp"]),
        ("name LIKE '%r%' AND tags.team = 'growth'", ["churn"]),
        ("name = 'old-name'", []),
        ("creation_timestamp > 0 AND name ILIKE 'T%'", ["temp"]),
    ],
)
def test_search_registered_models_filters(world: Registry, text: str, expected: list[str]) -> None:
    found, token = world.read.search_registered_models(text, [], 0, "")
    assert _names(found) == expected and token == ""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name = 'churn'", [("churn", 1)]),
        ("run_id = 'r2'", [("fraud", 2)]),
        ("run_id IN ('r2', 'r9', 'r7')", [("churn", 1), ("fraud", 2), ("ranker", 1)]),
        ("run_id NOT IN ('r1', 'r2', 'r3', 'r4')", [("churn", 1), ("ranker", 2), ("ranker", 1)]),
        ("source = 's3://bucket/churn'", [("churn", 1)]),
        ("source_path LIKE 'runs:/r7%'", [("ranker", 1)]),
        ("version_number = 3", [("fraud", 3)]),
        ("version_number >= 2 AND name = 'fraud'", [("fraud", 4), ("fraud", 3), ("fraud", 2)]),
        ("tags.k = 'v'", [("fraud", 1)]),
        ("tags.k LIKE '%'", [("fraud", 2), ("fraud", 1)]),
        ("name ILIKE 'RANK%' AND version_number < 2", [("ranker", 1)]),
        ("current_stage = 'Production'", [("fraud", 3)]),
        ("run_id = 'nope'", []),
    ],
)
def test_search_model_versions_filters(
    world: Registry, text: str, expected: list[tuple[str, int]]
) -> None:
    found, token = world.read.search_model_versions(text, [], 0, "")
    assert _vs(found) == expected and token == ""


def test_search_order(world: Registry) -> None:
    read = world.read
    by_created, _ = read.search_registered_models("", ["creation_timestamp DESC"], 0, "")
    assert _names(by_created) == ["temp", "ranker", "churn", "fraud"]
    by_name, _ = read.search_registered_models("", ["name DESC"], 0, "")
    assert _names(by_name) == ["temp", "ranker", "fraud", "churn"]
    updated, _ = read.search_registered_models("", ["last_updated_timestamp ASC"], 0, "")
    assert sorted(_names(updated)) == ["churn", "fraud", "ranker", "temp"]
    stamps = [m.last_updated_timestamp for m in updated]
    assert stamps == sorted(stamps)
    versions, _ = read.search_model_versions("", [], 0, "")
    assert _vs(versions) == [
        ("churn", 1),
        ("fraud", 4),
        ("fraud", 3),
        ("fraud", 2),
        ("fraud", 1),
        ("ranker", 2),
        ("ranker", 1),
    ]
    asc, _ = read.search_model_versions("name = 'fraud'", ["version_number ASC"], 0, "")
    assert [v.version for v in asc] == [1, 2, 3, 4]
    newest, _ = read.search_model_versions("", ["creation_timestamp DESC"], 0, "")
    assert _vs(newest)[:2] == [("ranker", 2), ("ranker", 1)]


def _all_pages(
    search: Callable[[str], tuple[list[Any], str]],
) -> tuple[list[Any], int]:
    out: list[Any] = []
    token, pages = "", 0
    while True:
        found, token = search(token)
        out += found
        pages += 1
        if not token:
            return out, pages


def test_paging(world: Registry) -> None:
    read = world.read
    models, pages = _all_pages(lambda t: read.search_registered_models("", [], 1, t))
    assert _names(models) == ["churn", "fraud", "ranker", "temp"] and pages == 4
    versions, pages = _all_pages(
        lambda t: read.search_model_versions("", ["version_number ASC"], 3, t)
    )
    assert len(versions) == 7 and pages == 3
    assert [v.version for v in versions] == [1, 1, 1, 2, 2, 3, 4]
    _, token = read.search_registered_models("", [], 1, "")
    with pytest.raises(InvalidArgument) as info:
        read.search_registered_models("name = 'fraud'", [], 1, token)
    assert info.value.field == "page_token"
    with pytest.raises(InvalidArgument) as other:
        read.search_model_versions("", [], 1, token)  # a models token is not a versions one
    assert other.value.field == "page_token"
    with pytest.raises(InvalidArgument) as size:
        read.search_model_versions("", [], 100_000, "")
    assert size.value.field == "max_results"


@pytest.mark.parametrize(
    "text",
    [
        "name = fraud",
        "name >",
        "name > 'a'",
        "metrics.loss > 1",
        "params.lr = '1'",
        "foo = 'x'",
        "attributes.run_id = 'x'",
        "name = 'a' AND",
        "tags.k = 1",
        "name = 'unterminated",
        "name IN ('a', 'b')",
    ],
)
def test_malformed_model_filter(world: Registry, text: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        world.read.search_registered_models(text, [], 0, "")
    assert info.value.field == "filter"


@pytest.mark.parametrize(
    "text",
    ["version_number = '3'", "run_id IN ('a'", "run_id = 3", "metrics.x > 1", "version > 1"],
)
def test_malformed_version_filter(world: Registry, text: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        world.read.search_model_versions(text, [], 0, "")
    assert info.value.field == "filter"


@pytest.mark.parametrize("clause", ["tags.team", "name UP", "run_id", "version_number"])
def test_malformed_model_order_by(world: Registry, clause: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        world.read.search_registered_models("", [clause], 0, "")
    assert info.value.field == "order_by"


_FILTER_WORDS = st.sampled_from(
    [
        "name",
        "tags.team",
        "tags.`a b`",
        "run_id",
        "source",
        "version_number",
        "attributes.name",
        "=",
        "!=",
        "<",
        ">=",
        "LIKE",
        "ILIKE",
        "IN",
        "NOT",
        "AND",
        "OR",
        "(",
        ")",
        ",",
        "'fraud'",
        "'%r%'",
        "'\\'",
        "3",
        "-1e400",
        "1e400",
        '"x"',
        "`",
    ]
)
_FILTERS = st.one_of(
    st.text(max_size=40),
    st.lists(_FILTER_WORDS, max_size=8).map(" ".join),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=_FILTERS, order=st.one_of(st.just(""), _FILTERS))
def test_random_filters_only_ever_fail_as_invalid_argument(
    world: Registry, text: str, order: str
) -> None:
    order_by = [order] if order else []
    for search in (world.read.search_registered_models, world.read.search_model_versions):
        try:
            search(text, order_by, 0, "")
        except InvalidArgument as exc:
            assert exc.field in ("filter", "order_by")


def test_concurrent_reads_each_see_their_own_snapshot(world: Registry) -> None:
    """Calls share one DuckDB database; each registers its tables on its own cursor."""

    def read(i: int) -> tuple[str, int]:
        if i % 2:
            return world.read.get_registered_model("ranker").name, 0
        return "fraud", world.read.get_model_version("fraud", alias="champion").version

    with futures.ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(read, range(32)))
    assert got == [("fraud", 3), ("ranker", 0)] * 16


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ident=st.sampled_from(["name", "tags.team", "tags.`k`", "run_id", "source"]),
    op=st.sampled_from(["=", "!=", "LIKE", "ILIKE"]),
    value=st.text(max_size=12),
    number=st.one_of(
        st.integers(-(2**70), 2**70), st.floats(allow_nan=False, allow_infinity=False)
    ),
)
def test_well_formed_filters_with_any_value_never_fail(
    world: Registry, ident: str, op: str, value: str, number: float
) -> None:
    """User values reach DuckDB only as parameters: no value can break a query."""
    text = f"{ident} {op} {_quote(value)} AND version_number <= {number!r}"
    found, _ = world.read.search_model_versions(text, [], 0, "")
    assert all(v.name in ("fraud", "churn", "ranker") for v in found)
    if ident in ("name", "tags.team", "tags.`k`"):
        models, _ = world.read.search_registered_models(f"{ident} {op} {_quote(value)}", [], 0, "")
        if op == "=" and ident == "name":
            assert _names(models) == ([value] if value in world.ids else [])


# -- history --


def test_history_of_a_model_in_order_with_users(world: Registry) -> None:
    entries = world.read.model_history("fraud")
    kinds = [e.event_type for e in entries]
    assert kinds[0] == "registered_model_created"
    assert kinds.count("model_version_created") == 5
    assert kinds.count("model_version_stage_set") == 4 and kinds[-1] == "model_version_deleted"
    stamps = [e.timestamp for e in entries]
    assert stamps == sorted(stamps)
    promotions = [e for e in entries if e.event_type == "model_version_stage_set"]
    assert {e.user for e in promotions} == {"bob"}
    last = json.loads(promotions[-1].payload)
    assert last["stage"] == "Production" and last["archived_versions"] == ["2"]
    assert {json.loads(e.payload)["model_id"] for e in entries} == {world.ids["fraud"]}
    assert all(e.event_type != "registered_model_created" for e in entries[1:])


def test_history_follows_renames_and_reused_names(world: Registry) -> None:
    ranker = world.read.model_history("ranker")
    assert [e.event_type for e in ranker][-1] == "registered_model_renamed"
    assert ranker[-1].user == "erin"
    assert world.read.model_history("old-name") == ranker  # the name it once had
    temp = world.read.model_history("temp")
    assert [(e.event_type, e.user) for e in temp] == [
        ("registered_model_created", "frank"),
        ("model_version_created", "frank"),
        ("registered_model_deleted", "carol"),
        ("registered_model_created", "grace"),
    ]
    ids = [json.loads(e.payload)["model_id"] for e in temp]
    assert ids[0] == ids[2] != ids[3] == world.ids["temp"]
    with pytest.raises(NotFound) as info:
        world.read.model_history("never")
    assert info.value.field == "name"


# -- time travel --


def test_time_travel_shows_the_state_before_a_promotion(tmp_path: Path) -> None:
    r = Registry(tmp_path)
    r.create("m")
    r.version("m", run_id="r1")
    r.version("m", run_id="r2")
    r.alias("m", "champion", 1)
    r.commit()
    time.sleep(0.05)
    before = int(time.time() * 1000)
    time.sleep(0.05)
    r.stage("m", 2, "Production")
    r.alias("m", "champion", 2)
    r.model_tag("m", "approved", "yes")
    r.delete_version("m", 1)
    r.commit()

    now = r.read.get_registered_model("m")
    assert dict(now.aliases) == {"champion": 2} and [t.key for t in now.tags] == ["approved"]
    assert r.read.get_model_version("m", stage="Production").version == 2

    then = r.read.get_registered_model("m", as_of_ms=before)
    assert dict(then.aliases) == {"champion": 1} and list(then.tags) == []
    assert [(v.version, v.current_stage) for v in then.latest_versions] == [(2, "None")]
    assert r.read.get_model_version("m", alias="champion", as_of_ms=before).version == 1
    assert r.read.get_model_version("m", version=1, as_of_ms=before).run_id == "r1"
    with pytest.raises(NotFound) as info:
        r.read.get_model_version("m", stage="Production", as_of_ms=before)
    assert info.value.field == "stage"
    with pytest.raises(NotFound):
        r.read.get_model_version("m", version=1)  # deleted since


def test_time_travel_before_the_registry_existed(tmp_path: Path) -> None:
    r = Registry(tmp_path)
    r.create("m")
    r.commit()
    with pytest.raises(NotFound) as info:
        r.read.get_registered_model("m", as_of_ms=1)
    assert info.value.field == "name"
    for wrong in (-5, 2**62):
        with pytest.raises(InvalidArgument) as bad:
            r.read.get_registered_model("m", as_of_ms=wrong)
        assert bad.value.field == "as_of_ms"
    future = int(time.time() * 1000) + 86_400_000
    assert r.read.get_registered_model("m", as_of_ms=future).name == "m"


def test_empty_registry(tmp_path: Path) -> None:
    read = RegistryReader(DeltaTableReader(str(tmp_path / "absent")))
    assert read.search_registered_models("", [], 0, "") == ([], "")
    assert read.search_model_versions("", [], 0, "") == ([], "")
    with pytest.raises(NotFound):
        read.get_registered_model("m")
    with pytest.raises(NotFound):
        read.get_registered_model("m", as_of_ms=T0)
    with pytest.raises(NotFound):
        read.model_history("m")


# -- through the gRPC servicer --


@pytest.fixture
def stub(world: Registry) -> Iterator[query_pb2_grpc.QueryStub]:
    reader = world.reader
    servicer = QueryServicer(
        RunsIndex(),
        MetricHistory(reader),
        SqlEngine(reader),
        Progress(folded=world.position, log_end=world.position),
        registry=world.read,
        default_wait_s=0.2,
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    add_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield query_pb2_grpc.QueryStub(channel)
    finally:
        channel.close()
        server.stop(grace=None)


def _code(call: Callable[[], object]) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()
    code: grpc.StatusCode = info.value.code()
    return code


def test_servicer_registry_rpcs(world: Registry, stub: query_pb2_grpc.QueryStub) -> None:
    read = Q.ReadOptions(min_position=str(world.position))
    m = stub.GetRegisteredModel(Q.GetRegisteredModelRequest(read=read, name="fraud"))
    assert dict(m.aliases) == {"champion": 3, "challenger": 4}
    v = stub.GetModelVersion(Q.GetModelVersionRequest(name="fraud", alias="champion"))
    assert v.version == 3 and v.current_stage == "Production"
    assert stub.GetModelVersion(Q.GetModelVersionRequest(name="fraud", stage="None")).version == 4
    found = stub.SearchRegisteredModels(
        Q.SearchRegisteredModelsRequest(filter="tags.team = 'risk'")
    )
    assert _names(list(found.registered_models)) == ["fraud"]
    page = stub.SearchModelVersions(
        Q.SearchModelVersionsRequest(filter="name = 'fraud'", max_results=3)
    )
    assert [x.version for x in page.model_versions] == [4, 3, 2] and page.next_page_token
    rest = stub.SearchModelVersions(
        Q.SearchModelVersionsRequest(
            filter="name = 'fraud'", max_results=3, page_token=page.next_page_token
        )
    )
    assert [x.version for x in rest.model_versions] == [1] and not rest.next_page_token
    history = stub.GetModelHistory(Q.ModelHistoryRequest(name="temp"))
    assert [e.user for e in history.entries] == ["frank", "frank", "carol", "grace"]


def test_servicer_registry_errors(world: Registry, stub: query_pb2_grpc.QueryStub) -> None:
    NF, IA = grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT
    assert _code(lambda: stub.GetRegisteredModel(Q.GetRegisteredModelRequest(name="x"))) == NF
    assert (
        _code(lambda: stub.GetModelVersion(Q.GetModelVersionRequest(name="fraud", version=5))) == NF
    )
    assert (
        _code(lambda: stub.SearchRegisteredModels(Q.SearchRegisteredModelsRequest(filter="x")))
        == IA
    )
    assert _code(lambda: stub.GetModelHistory(Q.ModelHistoryRequest(name=""))) == IA
    ahead = Q.ReadOptions(min_position=str(world.position + 1), wait_timeout_ms=50)
    assert (
        _code(
            lambda: stub.GetRegisteredModel(Q.GetRegisteredModelRequest(read=ahead, name="fraud"))
        )
        == grpc.StatusCode.DEADLINE_EXCEEDED
    )


def test_servicer_without_registry_is_unimplemented(world: Registry) -> None:
    reader = world.reader
    servicer = QueryServicer(RunsIndex(), MetricHistory(reader), SqlEngine(reader), Progress())
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    add_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            s = query_pb2_grpc.QueryStub(channel)
            code = _code(lambda: s.GetRegisteredModel(Q.GetRegisteredModelRequest(name="fraud")))
            assert code == grpc.StatusCode.UNIMPLEMENTED
    finally:
        server.stop(grace=None)
