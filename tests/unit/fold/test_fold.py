"""The fold: a pure, deterministic function from log records to table rows."""

from __future__ import annotations

import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st
from runlake.v1 import events_pb2 as E
from runlake_services.fold import fold
from runlake_services.tables.schema import TABLES

from tests import events as ev


def _batch(batch_id: str, *events: E.Event, ts: int = 1_000) -> E.LoggedBatch:
    return E.LoggedBatch(
        meta=E.BatchMeta(batch_id=batch_id, user="u", received_at_ms=ts), events=list(events)
    )


def test_every_table_has_its_fold_schema() -> None:
    rid = ev.run_id()
    result = fold([(1, _batch("b", ev.created(rid), ev.metrics(rid, [("a", 1.0, 1, 0)])))])
    for name, spec in TABLES.items():
        assert result.tables[name].schema.equals(spec.fold_schema), name


def test_latest_metric_is_highest_step_then_timestamp_then_value() -> None:
    rid = ev.run_id()
    pts = [("a", 9.0, 50, 1), ("a", 1.0, 10, 3), ("a", 2.0, 20, 3), ("a", 3.0, 20, 3)]
    # the same points split over two records, in the worst order
    result = fold(
        [(1, _batch("b1", ev.metrics(rid, pts[2:]))), (2, _batch("b2", ev.metrics(rid, pts[:2])))]
    )
    latest = result.tables["latest_metrics"].to_pylist()
    assert latest == [{"run_id": rid, "key": "a", "value": 3.0, "timestamp": 20, "step": 3}]
    assert result.tables["metrics"].num_rows == 4
    assert sorted(result.tables["metrics"].column("position").to_pylist()) == [1, 1, 2, 2]


def test_run_lifecycle_coalesces_within_a_round() -> None:
    rid = ev.run_id()
    result = fold(
        [
            (1, _batch("b1", ev.created(rid, name="first"))),
            (2, _batch("b2", ev.finished(rid, status=E.FAILED, end_time=77), ev.deleted(rid))),
        ]
    )
    (run,) = result.tables["runs"].to_pylist()
    assert run["status"] == "FAILED" and run["end_time"] == 77
    assert run["lifecycle_stage"] == "deleted" and run["run_name"] == "first"


def test_partial_update_leaves_other_columns_null_meaning_unchanged() -> None:
    rid = ev.run_id()
    (run,) = fold([(5, _batch("b", ev.finished(rid)))]).tables["runs"].to_pylist()
    assert run["status"] == "FINISHED"
    assert run["experiment_id"] is None and run["start_time"] is None


def test_tags_last_write_wins_and_delete_is_a_tombstone() -> None:
    rid = ev.run_id()
    result = fold(
        [
            (1, _batch("b1", ev.tags(rid, a="1", b="1"))),
            (2, _batch("b2", ev.tags(rid, a="2"))),
            (3, _batch("b3", E.Event(tag_deleted=E.TagDeleted(run_id=rid, key="b")))),
        ]
    )
    tags = {r["key"]: (r["value"], r["deleted"]) for r in result.tables["tags"].to_pylist()}
    assert tags == {"a": ("2", False), "b": ("", True)}


def test_events_table_is_the_audit_trail() -> None:
    rid = ev.run_id()
    result = fold(
        [(7, _batch("c:9", ev.created(rid), ev.metrics(rid, [("a", 1.0, 1, 0)] * 3), ts=42))]
    )
    rows = result.tables["events"].to_pylist()
    assert [r["event_type"] for r in rows] == ["run_created", "metrics_logged"]
    assert all(r["position"] == 7 and r["batch_id"] == "c:9" and r["user"] == "u" for r in rows)
    assert rows[0]["timestamp"] == 42 and rows[0]["run_id"] == rid
    assert json.loads(rows[1]["payload"]) == {"keys": ["a"], "points": 3, "run_id": rid}


def test_unknown_event_type_still_folds() -> None:
    """An event written by a newer gateway (unknown oneof) is kept in events, ignored elsewhere."""
    rid = ev.run_id()
    raw = _batch("b", ev.created(rid))
    raw.events.append(E.Event())
    result = fold([(1, raw)])
    assert result.tables["events"].column("event_type").to_pylist() == ["run_created", "unknown"]


point = st.tuples(
    st.sampled_from(["a", "b", "c"]),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
    st.integers(0, 10),
    st.integers(0, 10),
)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.lists(point, min_size=1, max_size=8), min_size=1, max_size=5))
def test_fold_is_deterministic_and_latest_is_order_independent(
    batches: list[list[tuple[str, float, int, int]]],
) -> None:
    rid = "0" * 32
    records = [(i + 1, _batch(f"b{i}", ev.metrics(rid, pts))) for i, pts in enumerate(batches)]
    a, b = fold(records), fold(records)
    for name in TABLES:
        assert a.tables[name].equals(b.tables[name]), name
    everything = [p for pts in batches for p in pts]
    expect = {}
    for key, value, ts, step in everything:
        cand = (step, ts, value)
        if key not in expect or cand > expect[key]:
            expect[key] = cand
    got = {
        r["key"]: (r["step"], r["timestamp"], r["value"])
        for r in a.tables["latest_metrics"].to_pylist()
    }
    assert got == expect
    assert a.tables["metrics"].num_rows == len(everything)
    assert not any(math.isnan(v) for v in a.tables["metrics"].column("value").to_pylist())
