"""RunsIndex: the merge rules applied from fold outputs, loading from Delta, search semantics."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from runlake.errors import InvalidArgument, NotFound
from runlake.v1 import events_pb2 as E
from runlake.v1 import query_pb2
from runlake_services.fold import fold
from runlake_services.query import RunsIndex
from runlake_services.query.filter import And, Comparison, Identifier, Node, Or, format_filter
from runlake_services.tables.reader import DeltaTableReader

from tests import events as ev
from tests.unit.query.builders import (
    T0,
    experiment,
    kv,
    metric,
    result,
    run,
    write_delta,
)


def _ids(
    index: RunsIndex,
    flt: str = "",
    order: list[str] | None = None,
    view: int = query_pb2.ACTIVE_ONLY,
    experiments: list[str] | None = None,
) -> list[str]:
    runs, token = index.search_runs(experiments or [], flt, view, order or [], 1000, "")
    assert token == ""
    return [r.info.run_id for r in runs]


def _rid() -> str:
    return uuid.uuid4().hex


@pytest.fixture
def index() -> RunsIndex:
    idx = RunsIndex()
    idx.apply(result(0, experiments=[experiment("0", "Default")]))
    return idx


# -- merge rules --


def test_coalesce_keeps_values_a_later_round_leaves_null(index: RunsIndex) -> None:
    index.apply(result(1, runs=[run("r1", run_name="first", user_id="ann")]))
    index.apply(
        result(
            2,
            runs=[
                {
                    "run_id": "r1",
                    "status": "FINISHED",
                    "end_time": T0 + 5,
                    "user_id": None,
                    "run_name": None,
                }
            ],
        )
    )
    info = index.get_run("r1").info
    assert (info.run_name, info.user_id, info.status) == ("first", "ann", E.FINISHED)
    assert info.end_time == T0 + 5 and info.HasField("end_time")
    assert info.lifecycle_stage == query_pb2.ACTIVE


def test_a_running_run_has_no_end_time(index: RunsIndex) -> None:
    index.apply(result(1, runs=[run("r1")]))
    assert not index.get_run("r1").info.HasField("end_time")


def test_tag_set_overwrite_and_delete(index: RunsIndex) -> None:
    index.apply(
        result(
            1, runs=[run("r1")], tags=[kv("r1", "keep", "1", False), kv("r1", "drop", "1", False)]
        )
    )
    index.apply(result(2, tags=[kv("r1", "keep", "2", False), kv("r1", "drop", "", True)]))
    tags = {t.key: t.value for t in index.get_run("r1").data.tags}
    assert tags == {"keep": "2"}
    assert _ids(index, "tags.drop = '1'") == []
    assert _ids(index, "tags.keep = '2'") == ["r1"]
    # deleting a tag of a run the index has never seen creates nothing
    index.apply(result(3, tags=[kv("ghost", "keep", "", True)]))
    with pytest.raises(NotFound):
        index.get_run("ghost")


def test_latest_metric_keeps_the_higher_step_even_out_of_order(index: RunsIndex) -> None:
    index.apply(result(1, runs=[run("r1")], latest_metrics=[metric("r1", "m", 5.0, step=7)]))
    index.apply(result(2, latest_metrics=[metric("r1", "m", 1.0, step=3, timestamp=T0 + 99)]))
    (m,) = index.get_run("r1").data.metrics
    assert (m.key, m.value, m.step, m.timestamp) == ("m", 5.0, 7, T0)
    # same step: the later timestamp wins; same step and timestamp: the higher value
    index.apply(result(3, latest_metrics=[metric("r1", "m", 0.5, step=7, timestamp=T0 + 1)]))
    index.apply(result(4, latest_metrics=[metric("r1", "m", 0.1, step=7, timestamp=T0 + 1)]))
    index.apply(result(5, latest_metrics=[metric("r1", "m", 0.9, step=7, timestamp=T0 + 1)]))
    (m,) = index.get_run("r1").data.metrics
    assert (m.value, m.step, m.timestamp) == (0.9, 7, T0 + 1)
    assert _ids(index, "metrics.m = 0.9") == ["r1"]


def test_params_appear_and_the_first_value_stays(index: RunsIndex) -> None:
    index.apply(result(1, runs=[run("r1"), run("r2")], params=[kv("r1", "lr", "0.1")]))
    assert [(p.key, p.value) for p in index.get_run("r1").data.params] == [("lr", "0.1")]
    index.apply(result(2, params=[kv("r2", "lr", "0.2"), kv("r1", "lr", "0.1")]))
    assert _ids(index, "params.lr = '0.2'") == ["r2"]
    assert [(p.key, p.value) for p in index.get_run("r1").data.params] == [("lr", "0.1")]
    # params are write-once (the gateway refuses another value); should one slip through,
    # the index keeps the first, as MLflow does
    index.apply(result(3, params=[kv("r1", "lr", "0.5")]))
    assert [(p.key, p.value) for p in index.get_run("r1").data.params] == [("lr", "0.1")]


def test_replaying_a_round_changes_nothing(index: RunsIndex) -> None:
    round1 = result(
        1,
        runs=[run("r1")],
        params=[kv("r1", "p", "1")],
        tags=[kv("r1", "t", "x", False)],
        latest_metrics=[metric("r1", "m", 2.0, step=2)],
    )
    index.apply(round1)
    index.apply(result(2, latest_metrics=[metric("r1", "m", 3.0, step=3)]))
    before = index.get_run("r1")
    index.apply(round1)
    assert index.get_run("r1") == before


def test_a_row_known_only_from_metrics_is_not_a_run(index: RunsIndex) -> None:
    index.apply(result(1, latest_metrics=[metric("orphan", "m", 1.0)]))
    with pytest.raises(NotFound):
        index.get_run("orphan")
    assert _ids(index, view=query_pb2.ALL) == []
    index.apply(result(2, runs=[run("orphan")]))
    assert [m.value for m in index.get_run("orphan").data.metrics] == [1.0]


def test_fold_output_of_real_events(index: RunsIndex) -> None:
    rid = ev.run_id()
    batch = E.LoggedBatch(
        meta=E.BatchMeta(batch_id="b", user="u", received_at_ms=5),
        events=[
            ev.created(rid, name="n"),
            ev.params(rid, p="1"),
            ev.tags(rid, team="x"),
            ev.metrics(rid, [("m", 5.0, 10, 7), ("m", 1.0, 99, 3)]),
        ],
    )
    index.apply(fold([(1, batch)]))
    run_ = index.get_run(rid)
    assert run_.info.run_name == "n" and run_.info.user_id == "tester"
    assert {t.key: t.value for t in run_.data.tags} == {"team": "x", "mlflow.runName": "n"}
    assert [(m.value, m.step) for m in run_.data.metrics] == [(5.0, 7)]


# -- loading from Delta --


def test_load_builds_the_same_state_as_applying(tmp_path: Path) -> None:
    runs = [run("r1", start_time=T0 + 1), run("r2", lifecycle_stage="deleted")]
    write_delta(tmp_path, "experiments", [experiment("0", "Default")])
    write_delta(tmp_path, "experiment_tags", [{"experiment_id": "0", "key": "k", "value": "v"}])
    write_delta(tmp_path, "runs", runs)
    write_delta(tmp_path, "params", [kv("r1", "p", "1"), kv("r2", "p", "2")])
    write_delta(tmp_path, "tags", [kv("r1", "t", "x")])
    write_delta(tmp_path, "latest_metrics", [metric("r1", "m", 1.5, step=4)])
    loaded = RunsIndex()
    loaded.load(DeltaTableReader(str(tmp_path)))
    applied = RunsIndex()
    applied.apply(
        result(
            1,
            experiments=[experiment("0", "Default")],
            experiment_tags=[{"experiment_id": "0", "key": "k", "value": "v", "deleted": False}],
            runs=runs,
            params=[kv("r1", "p", "1"), kv("r2", "p", "2")],
            tags=[kv("r1", "t", "x", False)],
            latest_metrics=[metric("r1", "m", 1.5, step=4)],
        )
    )
    for idx in (loaded, applied):
        assert _ids(idx, "metrics.m > 1 AND params.p = '1' AND tags.t = 'x'") == ["r1"]
        assert _ids(idx, view=query_pb2.DELETED_ONLY) == ["r2"]
    assert loaded.get_run("r1") == applied.get_run("r1")
    assert loaded.get_run("r2") == applied.get_run("r2")
    assert loaded.get_experiment(experiment_id="0") == applied.get_experiment(experiment_id="0")
    # and it keeps taking rounds after a load, new keys included
    loaded.apply(result(2, latest_metrics=[metric("r2", "new", 1.0)], params=[kv("r1", "q", "z")]))
    assert _ids(loaded, "metrics.new = 1", view=query_pb2.ALL) == ["r2"]
    assert _ids(loaded, "params.q = 'z'") == ["r1"]


def test_load_before_any_table_exists(tmp_path: Path) -> None:
    idx = RunsIndex()
    idx.load(DeltaTableReader(str(tmp_path / "nothing")))
    assert _ids(idx, "metrics.m > 0") == []
    idx.apply(result(1, runs=[run("r1")], latest_metrics=[metric("r1", "m", 1.0)]))
    assert _ids(idx, "metrics.m > 0") == ["r1"]


# -- search semantics --


def test_a_missing_key_never_matches(index: RunsIndex) -> None:
    index.apply(
        result(
            1,
            runs=[run("a"), run("b"), run("c")],
            latest_metrics=[metric("a", "loss", 0.5), metric("b", "loss", 0.1)],
            params=[kv("a", "p", "x")],
        )
    )
    assert _ids(index, "metrics.loss != 0.5") == ["b"]  # c has no loss: no match, even for !=
    assert _ids(index, "params.p != 'y'") == ["a"]
    assert _ids(index, "params.p NOT IN ('y')") == ["a"]
    for never_logged in (
        "metrics.nothing < 1",
        "metrics.nothing != 1",
        "params.nothing NOT IN ('x')",
        "tags.nothing != 'x'",
    ):
        assert _ids(index, never_logged) == []
    assert sorted(_ids(index, "metrics.nothing < 1 OR metrics.loss < 1")) == ["a", "b"]
    assert len(_ids(index, order=["metrics.nothing DESC"])) == 3


def test_nulls_sort_last_in_both_directions(index: RunsIndex) -> None:
    index.apply(
        result(
            1,
            runs=[run("a"), run("b"), run("c")],
            latest_metrics=[metric("a", "loss", 0.5), metric("b", "loss", 0.1)],
            params=[kv("c", "name", "z"), kv("a", "name", "y")],
        )
    )
    assert _ids(index, order=["metrics.loss ASC"]) == ["b", "a", "c"]
    assert _ids(index, order=["metrics.loss DESC"]) == ["a", "b", "c"]
    assert _ids(index, order=["params.name"]) == ["a", "c", "b"]
    assert _ids(index, order=["params.name DESC"]) == ["c", "a", "b"]


def test_default_order_is_start_time_desc_then_run_id(index: RunsIndex) -> None:
    index.apply(
        result(
            1,
            runs=[run("b", start_time=T0), run("a", start_time=T0), run("c", start_time=T0 + 1)],
        )
    )
    assert _ids(index) == ["c", "a", "b"]
    assert _ids(index, order=["attributes.start_time"]) == ["a", "b", "c"]
    assert _ids(index, order=["attributes.run_id DESC"]) == ["c", "b", "a"]


def test_attributes_params_tags_with_every_string_comparator(index: RunsIndex) -> None:
    index.apply(
        result(
            1,
            runs=[
                run("a", run_name="alpha", status="FINISHED"),
                run("b", run_name="Beta", status="FAILED", start_time=T0 + 10),
            ],
            params=[kv("a", "model", "cnn"), kv("b", "model", "mlp")],
            tags=[kv("b", "team", "x", False)],
        )
    )
    assert _ids(index, "params.model = 'cnn' OR tags.team = 'x'", ["attributes.run_name"]) == [
        "b",
        "a",
    ]
    assert _ids(index, "attributes.run_name LIKE 'al%'") == ["a"]
    assert _ids(index, "attributes.run_name LIKE 'beta'") == []
    assert _ids(index, "attributes.run_name ILIKE 'beta'") == ["b"]
    assert _ids(index, "params.model IN ('mlp', 'rnn')") == ["b"]
    assert _ids(index, "params.model NOT IN ('mlp')") == ["a"]
    assert _ids(index, "attributes.status = 'FAILED'") == ["b"]
    assert _ids(index, "attributes.status != 'FAILED'") == ["a"]
    assert _ids(index, f"attributes.start_time > {T0}") == ["b"]
    assert _ids(index, f"attributes.created <= {T0}") == ["a"]
    assert _ids(index, "attributes.run_id IN ('a', 'zz')") == ["a"]
    assert _ids(index, "attributes.experiment_id = '0'") == ["b", "a"]


def test_keys_that_differ_only_in_case_or_need_quoting(index: RunsIndex) -> None:
    index.apply(
        result(
            1,
            runs=[run("a"), run("b")],
            latest_metrics=[metric("a", "Loss", 1.0), metric("b", "loss", 2.0)],
            params=[kv("a", 'we"ird key', "1"), kv("b", "x; DROP TABLE runs", "2")],
        )
    )
    assert _ids(index, "metrics.Loss = 1") == ["a"]
    assert _ids(index, "metrics.loss = 2") == ["b"]
    assert _ids(index, "params.`we\"ird key` = '1'") == ["a"]
    assert _ids(index, "params.`x; DROP TABLE runs` = '2'") == ["b"]
    assert {m.key for m in index.get_run("a").data.metrics} == {"Loss"}


def test_view_types_and_experiment_scope(index: RunsIndex) -> None:
    index.apply(
        result(
            1,
            experiments=[experiment("7", "e7")],
            runs=[run("a", lifecycle_stage="deleted"), run("b", experiment_id="7")],
        )
    )
    assert _ids(index) == ["b"]
    assert _ids(index, view=query_pb2.DELETED_ONLY) == ["a"]
    assert sorted(_ids(index, view=query_pb2.ALL)) == ["a", "b"]
    assert _ids(index, experiments=["0"], view=query_pb2.ALL) == ["a"]
    assert _ids(index, experiments=["404"]) == []
    assert _ids(index, "attributes.lifecycle_stage = 'deleted'", view=query_pb2.ALL) == ["a"]
    index.apply(result(2, runs=[{"run_id": "a", "lifecycle_stage": "active"}]))
    assert sorted(_ids(index)) == ["a", "b"]
    with pytest.raises(InvalidArgument, match=r"^view_type"):
        index.search_runs([], "", 9, [], 10, "")


def test_paging_returns_every_run_exactly_once(index: RunsIndex) -> None:
    ids = [f"r{i:02d}" for i in range(25)]
    index.apply(
        result(
            1,
            runs=[run(r) for r in ids],
            latest_metrics=[metric(r, "m", float(i % 5)) for i, r in enumerate(ids[:20])],
        )
    )
    for order in ([], ["metrics.m"], ["metrics.m DESC"]):
        seen: list[str] = []
        token = ""
        pages = 0
        while True:
            runs, token = index.search_runs([], "", 0, order, 7, token)
            seen += [r.info.run_id for r in runs]
            pages += 1
            if not token:
                break
        assert sorted(seen) == ids and pages == 4


def test_page_tokens_are_bound_to_their_query(index: RunsIndex) -> None:
    index.apply(result(1, runs=[run(f"r{i}") for i in range(5)]))
    _, token = index.search_runs([], "", 0, [], 2, "")
    assert token
    assert len(index.search_runs([], "", 0, [], 2, token)[0]) == 2
    for other in (
        ([], "attributes.run_id != 'x'", 0, []),
        ([], "", 0, ["attributes.run_name"]),
        (["0"], "", 0, []),
        ([], "", query_pb2.ALL, []),
    ):
        with pytest.raises(InvalidArgument, match=r"^page_token"):
            index.search_runs(other[0], other[1], other[2], other[3], 2, token)
    for garbage in ("garbage", "e30", token[:-3], "!!"):
        with pytest.raises(InvalidArgument, match=r"^page_token"):
            index.search_runs([], "", 0, [], 2, garbage)


def test_max_results_bounds(index: RunsIndex) -> None:
    index.apply(result(1, runs=[run(f"r{i}") for i in range(3)]))
    assert len(index.search_runs([], "", 0, [], 0, "")[0]) == 3  # 0: the default (1,000)
    assert len(index.search_runs([], "", 0, [], 50_000, "")[0]) == 3
    assert len(index.search_runs([], "", 0, [], 1, "")[0]) == 1
    for bad in (-1, 50_001):
        with pytest.raises(InvalidArgument, match=r"^max_results"):
            index.search_runs([], "", 0, [], bad, "")


def test_bad_filter_and_order_name_their_field(index: RunsIndex) -> None:
    with pytest.raises(InvalidArgument, match=r"^filter: "):
        index.search_runs([], "metrics.m >", 0, [], 10, "")
    with pytest.raises(InvalidArgument, match=r"^order_by: "):
        index.search_runs([], "", 0, ["metrics.m UP"], 10, "")


def test_search_results_carry_their_data(index: RunsIndex) -> None:
    index.apply(
        result(
            1,
            runs=[run("a"), run("b")],
            params=[kv("a", "p", "1"), kv("b", "q", "2")],
            tags=[kv("a", "t", "x", False)],
            latest_metrics=[metric("a", "m", 1.0, step=3, timestamp=T0 + 3)],
        )
    )
    runs = {r.info.run_id: r for r in index.search_runs([], "", 0, [], 10, "")[0]}
    assert runs["a"].data == index.get_run("a").data
    assert [(m.key, m.value, m.step, m.timestamp) for m in runs["a"].data.metrics] == [
        ("m", 1.0, 3, T0 + 3)
    ]
    assert [(p.key, p.value) for p in runs["b"].data.params] == [("q", "2")]
    assert not runs["b"].data.metrics and not runs["b"].data.tags


def test_get_run_unknown(index: RunsIndex) -> None:
    with pytest.raises(NotFound, match=r"^run_id: "):
        index.get_run("nope")


# -- experiments --


def test_experiments(index: RunsIndex) -> None:
    index.apply(
        result(
            1,
            experiments=[
                experiment("1", "alpha", creation_time=T0 + 1),
                experiment("2", "Beta", creation_time=T0 + 2, lifecycle_stage="deleted"),
            ],
            experiment_tags=[
                {"experiment_id": "1", "key": "team", "value": "x", "deleted": False},
                {"experiment_id": "2", "key": "team", "value": "y", "deleted": False},
            ],
        )
    )
    assert index.get_experiment(name="Default").experiment_id == "0"
    exp = index.get_experiment(experiment_id="2")
    assert (exp.name, exp.lifecycle_stage) == ("Beta", query_pb2.DELETED)
    assert [(t.key, t.value) for t in exp.tags] == [("team", "y")]
    with pytest.raises(NotFound, match=r"^name: "):
        index.get_experiment(name="nope")
    with pytest.raises(NotFound, match=r"^experiment_id: "):
        index.get_experiment(experiment_id="404")

    def names(flt: str = "", order: list[str] | None = None, view: int = 0) -> list[str]:
        found, _ = index.search_experiments(view, flt, order or [], 0, "")
        return [e.name for e in found]

    assert names() == ["alpha", "Default"]  # creation_time DESC
    assert names(view=query_pb2.ALL, order=["name"]) == ["Beta", "Default", "alpha"]
    assert names("name LIKE 'Def%'") == ["Default"]
    assert names("attributes.name ILIKE 'BETA'", view=query_pb2.ALL) == ["Beta"]
    assert names("tags.team = 'x' OR name = 'Default'") == ["alpha", "Default"]
    assert names("tags.team != 'zz'") == ["alpha"]
    assert names("tags.missing != 'zz'") == []
    with pytest.raises(InvalidArgument, match=r"^filter: "):
        index.search_experiments(0, "name < 3", [], 0, "")
    with pytest.raises(InvalidArgument, match=r"^order_by: "):
        index.search_experiments(0, "", ["metrics.m"], 0, "")
    # tag delete, then rename (COALESCE keeps the rest)
    index.apply(
        result(
            2,
            experiments=[{"experiment_id": "1", "name": "renamed"}],
            experiment_tags=[{"experiment_id": "1", "key": "team", "value": "", "deleted": True}],
        )
    )
    exp = index.get_experiment(experiment_id="1")
    assert (exp.name, exp.creation_time, list(exp.tags)) == ("renamed", T0 + 1, [])


def test_experiment_paging(index: RunsIndex) -> None:
    index.apply(result(1, experiments=[experiment(str(i), f"e{i}") for i in range(1, 6)]))
    seen: list[str] = []
    token = ""
    while True:
        found, token = index.search_experiments(0, "", [], 2, token)
        seen += [e.experiment_id for e in found]
        if not token:
            break
    assert sorted(seen) == ["0", "1", "2", "3", "4", "5"]
    with pytest.raises(InvalidArgument, match=r"^page_token"):
        index.search_experiments(
            0, "name = 'e1'", [], 2, index.search_experiments(0, "", [], 2, "")[1]
        )


# -- concurrency --


def test_searches_run_while_rounds_add_columns(index: RunsIndex) -> None:
    index.apply(result(1, runs=[run(f"r{i}") for i in range(50)]))
    errors: list[BaseException] = []
    stop = threading.Event()

    def search() -> None:
        while not stop.is_set():
            try:
                runs, _ = index.search_runs([], "metrics.k0 >= 0", 0, ["metrics.k1 DESC"], 100, "")
                for r in runs:  # every run found has the value it was found by
                    assert any(m.key == "k0" for m in r.data.metrics)
            except BaseException as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=search) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        for round_ in range(2, 40):
            key = f"k{round_ % 7}"
            index.apply(
                result(
                    round_,
                    latest_metrics=[metric(f"r{i}", key, float(round_)) for i in range(50)],
                    params=[kv(f"r{round_}", f"p{round_}", "v")],
                )
            )
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert errors == []
    assert len(_ids(index, "metrics.k0 >= 0")) == 50


# -- property: search agrees with a direct evaluation of the filter --

_RUNS = [f"r{i}" for i in range(12)]
_METRIC_KEYS = ["a", "b", "never"]
_PARAM_KEYS = ["p", "q", "never"]
_PVALUES = ["x", "y", "X", "xy"]


def _dataset() -> tuple[RunsIndex, dict[str, dict[tuple[str, str], Any]]]:
    import random

    rng = random.Random(4)
    truth: dict[str, dict[tuple[str, str], Any]] = {r: {} for r in _RUNS}
    metrics, params = [], []
    for r in _RUNS:
        for key in ("a", "b"):
            if rng.random() < 0.7:
                v = float(rng.randint(0, 4))
                truth[r][("metric", key)] = v
                metrics.append(metric(r, key, v))
        for key in ("p", "q"):
            if rng.random() < 0.7:
                s = rng.choice(_PVALUES)
                truth[r][("param", key)] = s
                params.append(kv(r, key, s))
    idx = RunsIndex()
    idx.apply(result(1, runs=[run(r) for r in _RUNS], latest_metrics=metrics, params=params))
    return idx, truth


_DATA = _dataset()


def _leaf() -> st.SearchStrategy[Comparison]:
    num = st.builds(
        Comparison,
        st.builds(Identifier, st.just("metric"), st.sampled_from(_METRIC_KEYS)),
        st.sampled_from(["=", "!=", "<", ">", "<=", ">="]),
        st.sampled_from([0.0, 1.0, 2.5, 4.0]),
    )
    text = st.builds(
        Comparison,
        st.builds(Identifier, st.just("param"), st.sampled_from(_PARAM_KEYS)),
        st.sampled_from(["=", "!=", "LIKE", "ILIKE"]),
        st.sampled_from([*_PVALUES, "x%", "%y"]),
    )
    listed = st.builds(
        Comparison,
        st.builds(Identifier, st.just("param"), st.sampled_from(_PARAM_KEYS)),
        st.sampled_from(["IN", "NOT IN"]),
        st.lists(st.sampled_from(_PVALUES), min_size=1, max_size=2).map(tuple),
    )
    return st.one_of(num, text, listed)


def _like(value: str, pattern: str, fold_case: bool) -> bool:
    import re

    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.IGNORECASE if fold_case else 0) is not None


def _holds(node: Node, row: dict[tuple[str, str], Any]) -> bool:
    if isinstance(node, And):
        return all(_holds(i, row) for i in node.items)
    if isinstance(node, Or):
        return any(_holds(i, row) for i in node.items)
    have = row.get((node.ident.entity, node.ident.key))
    if have is None:
        return False
    v = node.value
    return {
        "=": lambda: have == v,
        "!=": lambda: have != v,
        "<": lambda: have < v,
        ">": lambda: have > v,
        "<=": lambda: have <= v,
        ">=": lambda: have >= v,
        "LIKE": lambda: _like(have, str(v), False),
        "ILIKE": lambda: _like(have, str(v), True),
        "IN": lambda: have in v,
        "NOT IN": lambda: have not in v,
    }[node.op]()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.recursive(
        _leaf(),
        lambda inner: st.one_of(
            st.lists(inner, min_size=2, max_size=3).map(lambda xs: And(tuple(xs))),
            st.lists(inner, min_size=2, max_size=3).map(lambda xs: Or(tuple(xs))),
        ),
        max_leaves=5,
    )
)
def test_search_matches_a_direct_evaluation_of_the_filter(node: Node) -> None:
    idx, truth = _DATA
    expected = sorted(r for r in _RUNS if _holds(node, truth[r]))
    assert sorted(_ids(idx, format_filter(node))) == expected
