"""RunsIndex: search semantics and the merge rules applied from fold outputs."""

from __future__ import annotations

import pytest
from runlake.errors import InvalidArgument, NotFound
from runlake.v1 import events_pb2 as E
from runlake.v1 import query_pb2
from runlake_services.fold import fold
from runlake_services.query import RunsIndex

from tests import events as ev


def _apply(index: RunsIndex, *events: E.Event, position: int = 1) -> None:
    batch = E.LoggedBatch(
        meta=E.BatchMeta(batch_id=f"b{position}", user="u", received_at_ms=5),
        events=list(events),
    )
    index.apply(fold([(position, batch)]))


def _ids(
    index: RunsIndex,
    flt: str = "",
    order: list[str] | None = None,
    view: int = 0,
    experiments: list[str] | None = None,
) -> list[str]:
    runs, _ = index.search_runs(experiments or [], flt, view, order or [], 1000, "")
    return [r.info.run_id for r in runs]


@pytest.fixture
def index() -> RunsIndex:
    idx = RunsIndex()
    _apply(
        idx,
        E.Event(
            experiment_created=E.ExperimentCreated(
                experiment_id="0", name="Default", creation_time=1
            )
        ),
        position=0,
    )
    return idx


def test_missing_key_never_matches_and_nulls_sort_last(index: RunsIndex) -> None:
    a, b, c = (ev.run_id() for _ in range(3))
    _apply(
        index,
        ev.created(a),
        ev.created(b),
        ev.created(c),
        ev.metrics(a, [("loss", 0.5, 1, 0)]),
        ev.metrics(b, [("loss", 0.1, 1, 0)]),
    )
    assert set(_ids(index, "metrics.loss < 1")) == {a, b}
    assert _ids(index, "metrics.nothing < 1") == []
    assert _ids(index, "metrics.loss != 0.5") == [b]
    assert _ids(index, order=["metrics.loss ASC"]) == [b, a, c]
    assert _ids(index, order=["metrics.loss DESC"]) == [a, b, c]


def test_or_and_params_tags_attributes(index: RunsIndex) -> None:
    a, b = ev.run_id(), ev.run_id()
    _apply(
        index,
        ev.created(a, name="alpha"),
        ev.created(b, name="beta"),
        ev.params(a, model="cnn"),
        ev.params(b, model="mlp"),
        ev.tags(b, team="x"),
    )
    assert _ids(index, "params.model = 'cnn' OR tags.team = 'x'", ["attributes.run_name"]) == [a, b]
    assert _ids(index, "attributes.run_name LIKE 'al%'") == [a]
    assert _ids(index, "params.model IN ('mlp', 'rnn')") == [b]
    assert _ids(index, "params.model NOT IN ('mlp')") == [a]
    assert _ids(index, "tags.mlflow.runName ILIKE 'BETA'") == [b]


def test_merge_rules(index: RunsIndex) -> None:
    rid = ev.run_id()
    _apply(
        index,
        ev.created(rid, name="n"),
        ev.tags(rid, keep="1", drop="1"),
        ev.params(rid, p="1"),
        ev.metrics(rid, [("m", 5.0, 10, 7)]),
        position=1,
    )
    # later rounds: a partial update, a tag delete, an older metric point arriving late
    _apply(
        index,
        ev.finished(rid),
        E.Event(tag_deleted=E.TagDeleted(run_id=rid, key="drop")),
        ev.metrics(rid, [("m", 1.0, 99, 3)]),
        position=2,
    )
    run = index.get_run(rid)
    assert run.info.status == E.FINISHED and run.info.run_name == "n"  # COALESCE kept the name
    assert run.info.end_time == 1_700_000_100_000
    assert {t.key for t in run.data.tags} == {"keep", "mlflow.runName"}
    (m,) = run.data.metrics
    assert (m.value, m.step) == (5.0, 7)  # LATEST: step 7 beats the late step 3
    # applying the same round twice changes nothing (replay after a crash)
    _apply(index, ev.params(rid, p="1"), position=1)
    assert [p.value for p in index.get_run(rid).data.params] == ["1"]


def test_view_types_and_experiment_scope(index: RunsIndex) -> None:
    a, b = ev.run_id(), ev.run_id()
    _apply(
        index,
        E.Event(experiment_created=E.ExperimentCreated(experiment_id="7", name="e7")),
        ev.created(a),
        ev.created(b, experiment_id="7"),
        ev.deleted(a),
    )
    assert _ids(index) == [b]
    assert _ids(index, view=query_pb2.DELETED_ONLY) == [a]
    assert set(_ids(index, view=query_pb2.ALL)) == {a, b}
    assert _ids(index, experiments=["0"], view=query_pb2.ALL) == [a]
    assert _ids(index, experiments=["404"]) == []


def test_paging_returns_every_run_once(index: RunsIndex) -> None:
    ids = [ev.run_id() for _ in range(25)]
    _apply(
        index,
        *[ev.created(r) for r in ids],
        *[ev.metrics(r, [("m", float(i % 5), 1, 0)]) for i, r in enumerate(ids)],
    )
    seen: list[str] = []
    token = ""
    while True:
        runs, token = index.search_runs([], "", 0, ["metrics.m"], 7, token)
        seen += [r.info.run_id for r in runs]
        if not token:
            break
    assert sorted(seen) == sorted(ids) and len(seen) == 25
    with pytest.raises(InvalidArgument, match=r"^page_token"):
        index.search_runs([], "metrics.m > 1", 0, [], 7, index.search_runs([], "", 0, [], 7, "")[1])
    with pytest.raises(InvalidArgument, match=r"^page_token"):
        index.search_runs([], "", 0, [], 7, "garbage")
    for bad in (-1, 50_001):
        with pytest.raises(InvalidArgument, match=r"^max_results"):
            index.search_runs([], "", 0, [], bad, "")


def test_get_run_and_experiments(index: RunsIndex) -> None:
    with pytest.raises(NotFound, match=r"^run_id"):
        index.get_run(ev.run_id())
    assert index.get_experiment(name="Default").experiment_id == "0"
    with pytest.raises(NotFound, match=r"^name"):
        index.get_experiment(name="nope")
    found, _ = index.search_experiments(0, "name LIKE 'Def%'", [], 0, "")
    assert [e.name for e in found] == ["Default"]
    with pytest.raises(InvalidArgument, match=r"^filter"):
        index.search_experiments(0, "name < 3", [], 0, "")
