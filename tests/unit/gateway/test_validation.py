"""Every class of bad input is rejected whole, with the field named, and nothing is appended."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from runlake.columns import pack_metrics
from runlake.errors import AlreadyExists, Conflict, InvalidArgument, NotFound, RunlakeError
from runlake.v1 import events_pb2 as E
from runlake.v1 import gateway_pb2 as G

from tests import events as ev
from tests.conftest import Pipeline


@pytest.fixture
def p(pipeline_factory: Callable[..., Pipeline]) -> Pipeline:
    return pipeline_factory()


def _live_run(p: Pipeline) -> str:
    rid = ev.run_id()
    p.ingestor.write(ev.request("setup:" + rid, ev.created(rid)), user="t")
    return rid


def _rejects(p: Pipeline, req: G.WriteRequest, exc: type[RunlakeError], field: str) -> str:
    end = p.log.end_position()
    with pytest.raises(exc) as info:
        p.ingestor.write(req, user="t")
    assert str(info.value).startswith(field), str(info.value)
    assert p.log.end_position() == end, "a rejected batch must append nothing"
    assert p.log.find(req.batch_id) is None
    return str(info.value)


def test_valid_batch_is_appended_once_and_retry_is_a_duplicate(p: Pipeline) -> None:
    rid = ev.run_id()
    req = ev.request("c:1", ev.created(rid), ev.metrics(rid, [("loss", 1.0, 1, 0)]))
    first = p.ingestor.write(req, user="t")
    again = p.ingestor.write(req, user="t")
    assert again.duplicate and again.position == first.position
    assert p.log.end_position() == int(first.position)


def test_empty_batch(p: Pipeline) -> None:
    _rejects(p, ev.request("c:1"), InvalidArgument, "events")


def test_missing_batch_id(p: Pipeline) -> None:
    rid = ev.run_id()
    _rejects(p, ev.request("", ev.created(rid)), InvalidArgument, "batch_id")


def test_oversize_batch_by_points(p: Pipeline) -> None:
    rid = _live_run(p)
    n = 100_001
    cols = pack_metrics(["m"], [0] * n, [0.0] * n, [1] * n, list(range(n)))
    req = ev.request("c:1", E.Event(metrics_logged=E.MetricsLogged(run_id=rid, points=cols)))
    _rejects(p, req, InvalidArgument, "events[0].metrics_logged.points")


def test_oversize_batch_by_events(p: Pipeline) -> None:
    rid = _live_run(p)
    many = [ev.tags(rid, k="v")] * 10_001
    _rejects(p, ev.request("c:1", *many), InvalidArgument, "events")


def test_oversize_key(p: Pipeline) -> None:
    rid = _live_run(p)
    req = ev.request("c:1", ev.metrics(rid, [("k" * 251, 1.0, 1, 0)]))
    msg = _rejects(p, req, InvalidArgument, "events[0].metrics_logged.points.keys[0]")
    assert "250" in msg


@pytest.mark.parametrize("key", ["", "../escape", "/abs", "a/../../b", "bad\nkey", "semi;colon"])
def test_bad_param_key(p: Pipeline, key: str) -> None:
    rid = _live_run(p)
    req = ev.request("c:1", ev.params(rid, **{"ok": "1"}), ev.params(rid, **{key: "v"}))
    _rejects(p, req, InvalidArgument, "events[1].params_logged.params[0].key")


def test_unknown_run(p: Pipeline) -> None:
    req = ev.request("c:1", ev.metrics(ev.run_id(), [("loss", 1.0, 1, 0)]))
    _rejects(p, req, NotFound, "events[0].metrics_logged.run_id")


def test_unknown_experiment(p: Pipeline) -> None:
    req = ev.request("c:1", ev.created(ev.run_id(), experiment_id="404"))
    _rejects(p, req, NotFound, "events[0].run_created.experiment_id")


def test_bad_run_id(p: Pipeline) -> None:
    _rejects(p, ev.request("c:1", ev.created("NOT-HEX")), InvalidArgument, "events[0].run_created")


def test_logging_to_finished_run(p: Pipeline) -> None:
    rid = _live_run(p)
    p.ingestor.write(ev.request("c:end", ev.finished(rid)), user="t")
    req = ev.request("c:1", ev.metrics(rid, [("loss", 1.0, 1, 0)]))
    msg = _rejects(p, req, Conflict, "events[0].metrics_logged.run_id")
    assert "FINISHED" in msg
    _rejects(p, ev.request("c:2", ev.params(rid, a="1")), Conflict, "events[0].params_logged")


def test_logging_to_deleted_run(p: Pipeline) -> None:
    rid = _live_run(p)
    p.ingestor.write(ev.request("c:del", ev.deleted(rid)), user="t")
    _rejects(p, ev.request("c:1", ev.tags(rid, a="b")), Conflict, "events[0].tags_set.run_id")
    p.ingestor.write(ev.request("c:res", ev.restored(rid)), user="t")
    p.ingestor.write(ev.request("c:2", ev.tags(rid, a="b")), user="t")


def test_param_value_change_rejected_same_value_accepted(p: Pipeline) -> None:
    rid = _live_run(p)
    p.ingestor.write(ev.request("c:1", ev.params(rid, lr="0.1")), user="t")
    end = p.log.end_position()
    same = p.ingestor.write(ev.request("c:2", ev.params(rid, lr="0.1")), user="t")
    assert int(same.position) == end and p.log.end_position() == end  # a no-op appends nothing
    msg = _rejects(p, ev.request("c:3", ev.params(rid, lr="0.2")), InvalidArgument, "events[0]")
    assert "'0.1'" in msg and "'0.2'" in msg


def test_param_change_within_one_batch(p: Pipeline) -> None:
    rid = _live_run(p)
    req = ev.request("c:1", ev.params(rid, lr="0.1"), ev.params(rid, lr="0.3"))
    _rejects(p, req, InvalidArgument, "events[1].params_logged.params[0].value")


def test_whole_batch_rejected_when_last_event_is_bad(p: Pipeline) -> None:
    rid = ev.run_id()
    req = ev.request(
        "c:1",
        ev.created(rid),
        ev.metrics(rid, [("loss", 1.0, 1, 0)]),
        ev.params(rid, a="1"),
        ev.tags(rid, **{"x": "v" * 8001}),
    )
    _rejects(p, req, InvalidArgument, "events[3].tags_set.tags[0].value")
    # the run of the rejected batch does not exist either
    req2 = ev.request("c:2", ev.metrics(rid, [("loss", 1.0, 1, 0)]))
    _rejects(p, req2, NotFound, "events[0].metrics_logged.run_id")


def test_negative_timestamp(p: Pipeline) -> None:
    rid = _live_run(p)
    req = ev.request("c:1", ev.metrics(rid, [("a", 1.0, 5, 0), ("a", 2.0, -1, 1)]))
    msg = _rejects(p, req, InvalidArgument, "events[0].metrics_logged.points.timestamps")
    assert "point 1" in msg


def test_ragged_columns(p: Pipeline) -> None:
    rid = _live_run(p)
    cols = pack_metrics(["a"], [0, 0], [1.0, 2.0], [1, 2], [0, 1])
    cols.steps = cols.steps[:8]
    req = ev.request("c:1", E.Event(metrics_logged=E.MetricsLogged(run_id=rid, points=cols)))
    _rejects(p, req, InvalidArgument, "events[0].metrics_logged.points.steps")


def test_key_index_out_of_range(p: Pipeline) -> None:
    rid = _live_run(p)
    cols = pack_metrics(["a"], [0, 3], [1.0, 2.0], [1, 2], [0, 1])
    req = ev.request("c:1", E.Event(metrics_logged=E.MetricsLogged(run_id=rid, points=cols)))
    _rejects(p, req, InvalidArgument, "events[0].metrics_logged.points.key_index")


def test_nan_and_inf_values_are_allowed_like_mlflow(p: Pipeline) -> None:
    rid = _live_run(p)
    req = ev.request("c:1", ev.metrics(rid, [("a", math.nan, 1, 0), ("a", math.inf, 2, 1)]))
    assert not p.ingestor.write(req, user="t").duplicate


def test_duplicate_run_id(p: Pipeline) -> None:
    rid = _live_run(p)
    _rejects(p, ev.request("c:1", ev.created(rid)), AlreadyExists, "events[0].run_created.run_id")


def test_unknown_parent(p: Pipeline) -> None:
    req = ev.request("c:1", ev.created(ev.run_id(), parent=ev.run_id()))
    _rejects(p, req, NotFound, "events[0].run_created.parent_run_id")


def test_experiment_name_unique_and_default_undeletable(p: Pipeline) -> None:
    made = p.ingestor.create_experiment(G.CreateExperimentRequest(name="exp"), user="t")
    assert made.experiment_id.isdigit()
    with pytest.raises(AlreadyExists, match=r"^name"):
        p.ingestor.create_experiment(G.CreateExperimentRequest(name="exp"), user="t")
    with pytest.raises(InvalidArgument, match=r"^name"):
        p.ingestor.create_experiment(G.CreateExperimentRequest(name="  "), user="t")
    req = ev.request("c:1", E.Event(experiment_deleted=E.ExperimentDeleted(experiment_id="0")))
    _rejects(p, req, Conflict, "events[0].experiment_deleted.experiment_id")


def test_client_cannot_send_experiment_created(p: Pipeline) -> None:
    event = E.Event(experiment_created=E.ExperimentCreated(experiment_id="9", name="x"))
    _rejects(p, ev.request("c:1", event), InvalidArgument, "events[0]")


_text = st.text(max_size=300)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    key=_text,
    value=_text,
    ts=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    step=st.integers(min_value=-(2**63), max_value=2**63 - 1),
    val=st.floats(allow_nan=True, allow_infinity=True),
)
def test_any_metric_is_accepted_or_rejected_whole(
    p: Pipeline, key: str, value: str, ts: int, step: int, val: float
) -> None:
    """Property: whatever a client sends, the gateway either appends it all or nothing."""
    rid = _live_run(p)
    end = p.log.end_position()
    req = ev.request(
        f"h:{rid}", ev.metrics(rid, [(key, val, ts, step)]), ev.params(rid, **{key or "k": value})
    )
    try:
        p.ingestor.write(req, user="t")
    except InvalidArgument as exc:
        assert str(exc).startswith("events[")
        assert p.log.end_position() == end
    else:
        assert p.log.end_position() == end + 1
