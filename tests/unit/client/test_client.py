"""RunlakeClient and the fluent API against the in-process fakes (no runlake server)."""

from __future__ import annotations

import grpc
import pandas as pd
import pyarrow as pa
import pytest
import runlake
from runlake import _session
from runlake.columns import unpack_metrics
from runlake.entities import Metric, Param, RunTag
from runlake.errors import Conflict, InvalidArgument, NotFound
from runlake.v1 import events_pb2 as E
from runlake.v1 import query_pb2 as Q

from tests.unit.client.conftest import Fakes


@pytest.fixture
def client(fakes: Fakes, fresh_session: _session.Session) -> runlake.RunlakeClient:
    return runlake.RunlakeClient(fakes.uri)


def test_create_run_only_enqueues_and_carries_its_tags(
    fakes: Fakes, client: runlake.RunlakeClient
) -> None:
    run = client.create_run("0", run_name="r1", tags={"team": "vision"}, parent_run_id="p" * 32)
    assert len(run.info.run_id) == 32 and run.info.status == "RUNNING"
    assert fakes.gateway.accepted == {}  # nothing sent yet: no round trip
    client.flush()
    (created,) = [e.run_created for e in fakes.gateway.events()]
    assert created.run_id == run.info.run_id and created.run_name == "r1"
    assert created.parent_run_id == "p" * 32 and created.user_id
    tags = {kv.key: kv.value for kv in created.tags}
    assert tags == {"team": "vision", "mlflow.runName": "r1", "mlflow.parentRunId": "p" * 32}


def test_log_batch_and_lifecycle_keep_their_order(
    fakes: Fakes, client: runlake.RunlakeClient
) -> None:
    rid = client.create_run("0").info.run_id
    client.log_batch(
        rid,
        metrics=[Metric("a", 1.0, 10, 0), Metric("b", 2.0, 11, 1)],
        params=[Param("lr", "0.1")],
        tags=[RunTag("t", "x")],
    )
    client.log_param(rid, "layers", 3)
    client.set_tag(rid, "note", 1.5)
    client.delete_tag(rid, "t")
    client.set_terminated(rid, "KILLED", end_time=99)
    client.delete_run(rid)  # enqueued behind everything above, then confirmed
    assert fakes.gateway.kinds() == [
        "run_created",
        "metrics_logged",
        "params_logged",
        "tags_set",
        "params_logged",
        "tags_set",
        "tag_deleted",
        "run_updated",
        "run_deleted",
    ]
    events = fakes.gateway.events()
    cols = unpack_metrics(events[1].metrics_logged.points)
    assert cols.keys == ["a", "b"] and cols.values.tolist() == [1.0, 2.0]
    assert events[4].params_logged.params[0].value == "3"
    assert events[5].tags_set.tags[0].value == "1.5"
    assert events[7].run_updated.status == E.KILLED and events[7].run_updated.end_time == 99


def test_bad_calls_are_refused_before_anything_is_queued(
    fakes: Fakes, client: runlake.RunlakeClient
) -> None:
    rid = "r" * 32
    with pytest.raises(InvalidArgument, match=r"^step: "):
        client.log_metric(rid, "x", 1.0, step=float("nan"))  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=r"^value: "):
        client.log_metric(rid, "x", True)
    with pytest.raises(InvalidArgument, match=r"^key: "):
        client.log_metric(rid, 3, 1.0)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=r"^metrics\[1\]"):
        client.log_batch(rid, metrics=[Metric("a", 1.0, 1, 0), ("b", 1.0)])  # type: ignore[list-item]
    with pytest.raises(InvalidArgument, match=r"^status: "):
        client.set_terminated(rid, "DONE")
    client.flush()
    assert fakes.gateway.calls == []


def test_reads_flush_then_send_the_latest_position(
    fakes: Fakes, client: runlake.RunlakeClient
) -> None:
    runlake.RunlakeClient(fakes.uri).search_runs(["0"])  # nothing written yet: no position
    rid = client.create_run("0").info.run_id
    client.log_metric(rid, "x", 1.0)
    page = client.search_runs(["0"], max_results=10)
    assert [r.info.status for r in page] == ["FINISHED"] and page.token is None
    assert page[0].data.metrics == {"loss": 0.5}
    assert [r.min_position for r in fakes.query.reads] == ["", "1"]
    assert fakes.query.reads[-1].wait_timeout_ms > 0


def test_create_experiment_is_synchronous_and_its_position_is_read_after(
    fakes: Fakes, client: runlake.RunlakeClient
) -> None:
    eid = client.create_experiment("exp-a", tags={"k": "v"})
    assert fakes.gateway.experiments == {eid: "exp-a"}
    fakes.query.experiments[eid] = Q.Experiment(
        experiment_id=eid, name="exp-a", lifecycle_stage=Q.ACTIVE, creation_time=5
    )
    exp = client.get_experiment(eid)
    assert exp.name == "exp-a" and exp.lifecycle_stage == "active" and exp.creation_time == 5
    assert fakes.query.reads[-1].min_position == f"exp{eid}"
    assert client.get_experiment_by_name("nope") is None
    with pytest.raises(NotFound, match=r"experiment_id"):
        client.get_experiment("404")


def test_history_and_sql_are_reassembled_from_chunks(
    fakes: Fakes, client: runlake.RunlakeClient
) -> None:
    fakes.query.history["loss"] = [(1.0 / (i + 1), 100 + i, i) for i in range(7)]
    history = client.get_metric_history("r" * 32, "loss")
    assert [m.step for m in history] == list(range(7))
    assert history[2] == Metric("loss", 1.0 / 3, 102, 2)
    fakes.query.sql_table = pa.table({"key": ["a", "b", "c"], "value": [1.0, 2.0, float("nan")]})
    df = client.sql("SELECT 1")
    assert isinstance(df, pd.DataFrame) and df["key"].tolist() == ["a", "b", "c"]
    table = client.sql("SELECT 1", arrow=True)
    assert table.num_rows == 3 and table.column_names == ["key", "value"]


def test_server_errors_come_back_as_their_class(
    fakes: Fakes, client: runlake.RunlakeClient
) -> None:
    fakes.query.error = (grpc.StatusCode.INVALID_ARGUMENT, "filter: unexpected '<'")
    with pytest.raises(InvalidArgument, match=r"^filter: unexpected"):
        client.search_runs(["0"], filter_string="metrics.x <")


# -- the fluent API --


@pytest.fixture
def fluent(fakes: Fakes, fresh_session: _session.Session) -> Fakes:
    runlake.set_tracking_uri(fakes.uri)
    return fakes


def test_start_run_context_finishes_or_fails(fluent: Fakes) -> None:
    with runlake.start_run(run_name="ok", tags={"a": 1}) as run:
        assert runlake.active_run() == run
        runlake.log_metric("loss", 0.5, step=1)
        runlake.log_metrics({"acc": 0.9, "f1": 0.8}, step=1)
        runlake.log_params({"lr": 0.1})
        runlake.set_tags({"t": "x"})
    assert runlake.active_run() is None
    with pytest.raises(ZeroDivisionError), runlake.start_run() as failed:
        _ = 1 / 0
    updates = [e.run_updated for e in fluent.gateway.events() if e.HasField("run_updated")]
    assert [(u.run_id, u.status) for u in updates] == [
        (run.info.run_id, E.FINISHED),
        (failed.info.run_id, E.FAILED),
    ]
    created = next(e.run_created for e in fluent.gateway.events() if e.HasField("run_created"))
    tags = {kv.key: kv.value for kv in created.tags}
    assert tags["a"] == "1" and tags["mlflow.runName"] == "ok"
    assert tags["mlflow.source.type"] == "LOCAL" and created.user_id == tags["mlflow.user"]
    for name in ("mlflow.source.name", "runlake.host", "runlake.python_version"):
        assert tags[name]
    assert "numpy" in tags["runlake.packages"]


def test_second_run_needs_nested_and_nested_runs_know_their_parent(fluent: Fakes) -> None:
    with runlake.start_run() as parent:
        with pytest.raises(Conflict, match=r"^nested: .*already active"):
            runlake.start_run()
        with runlake.start_run(nested=True) as child:
            assert runlake.active_run() == child
        assert runlake.active_run() == parent
    created = [e.run_created for e in fluent.gateway.events() if e.HasField("run_created")]
    assert created[1].parent_run_id == parent.info.run_id
    assert {kv.key: kv.value for kv in created[1].tags}["mlflow.parentRunId"] == parent.info.run_id


def test_log_without_a_run_starts_one_but_bad_input_does_not(fluent: Fakes) -> None:
    with pytest.raises(InvalidArgument, match=r"^step"):
        runlake.log_metric("x", 1.0, step=1.5)  # type: ignore[arg-type]
    assert runlake.active_run() is None
    runlake.log_metric("x", 1.0)
    run = runlake.active_run()
    assert run is not None and run.info.experiment_id == "0"
    runlake.end_run()
    assert fluent.gateway.kinds() == ["run_created", "metrics_logged", "run_updated"]


def test_end_run_raises_a_rejection_of_what_was_logged(fluent: Fakes) -> None:
    fluent.gateway.reject = lambda e: e.HasField("params_logged")
    runlake.start_run()
    runlake.log_param("p", "b")
    with pytest.raises(InvalidArgument, match=r"params_logged"):
        runlake.end_run()
    assert runlake.active_run() is None
    runlake.flush()  # reported once


def test_set_experiment_creates_then_reuses(fluent: Fakes) -> None:
    exp = runlake.set_experiment("exp-x")
    fluent.query.experiments[exp.experiment_id] = Q.Experiment(
        experiment_id=exp.experiment_id, name="exp-x", lifecycle_stage=Q.ACTIVE
    )
    assert runlake.set_experiment("exp-x").experiment_id == exp.experiment_id
    assert list(fluent.gateway.experiments.values()) == ["exp-x"]
    fluent.query.experiments["9"] = Q.Experiment(
        experiment_id="9", name="gone", lifecycle_stage=Q.DELETED
    )
    with pytest.raises(Conflict, match=r"deleted"):
        runlake.set_experiment("gone")


def test_search_runs_frame_has_mlflow_columns(fluent: Fakes) -> None:
    df = runlake.search_runs(["0"])
    assert list(df.columns)[:6] == [
        "run_id",
        "experiment_id",
        "status",
        "artifact_uri",
        "start_time",
        "end_time",
    ]
    assert df.loc[0, "metrics.loss"] == 0.5 and str(df["start_time"].dtype).startswith("datetime")
    runs = runlake.search_runs(["0"], output_format="list")
    assert runs[0].info.run_id == "r" * 32
    with pytest.raises(InvalidArgument, match=r"output_format"):
        runlake.search_runs(["0"], output_format="arrow")  # type: ignore[call-overload]


def test_tracking_uri_setting(fluent: Fakes) -> None:
    assert runlake.get_tracking_uri() == fluent.uri
    with pytest.raises(InvalidArgument, match=r"tracking_uri"):
        runlake.set_tracking_uri("localhost:1")
    runlake.set_tracking_uri(None)
    assert runlake.get_tracking_uri() == "grpc://127.0.0.1:5055"


def test_start_run_with_run_id_resumes_it(fluent: Fakes) -> None:
    rid = "c" * 32
    with runlake.start_run(run_id=rid) as run:
        assert run.info.run_id == rid and run.data.params == {"lr": "0.1"}
        runlake.log_metric("x", 1.0)
    updates = [e.run_updated for e in fluent.gateway.events() if e.HasField("run_updated")]
    assert [(u.run_id, u.status) for u in updates] == [(rid, E.RUNNING), (rid, E.FINISHED)]
    assert "run_created" not in fluent.gateway.kinds()
    with pytest.raises(InvalidArgument, match="experiment_id"):
        runlake.start_run(run_id=rid, experiment_id="7")


def test_a_new_tracking_uri_forgets_the_active_experiment(fluent: Fakes) -> None:
    """An experiment id names an experiment of one server; another server lacks it."""
    from runlake._session import session

    session.experiment_id = "7"
    runlake.set_tracking_uri(fluent.uri)  # the same server: kept
    assert session.experiment_id == "7"
    runlake.set_tracking_uri("grpc://127.0.0.1:1")
    assert session.experiment_id is None


def test_session_client_follows_the_environment_until_a_uri_is_set(
    fresh_session: _session.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNLAKE_TRACKING_URI", "grpc://127.0.0.1:1")
    first = fresh_session.client()
    assert fresh_session.client() is first
    monkeypatch.setenv("RUNLAKE_TRACKING_URI", "grpc://127.0.0.1:2")
    second = fresh_session.client()
    assert second is not first and second.tracking_uri == "grpc://127.0.0.1:2"
    runlake.set_tracking_uri("grpc://127.0.0.1:3")
    third = fresh_session.client()
    assert third.tracking_uri == "grpc://127.0.0.1:3"
    monkeypatch.setenv("RUNLAKE_TRACKING_URI", "grpc://127.0.0.1:4")  # the set URI wins
    assert fresh_session.client() is third
