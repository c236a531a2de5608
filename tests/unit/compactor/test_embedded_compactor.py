"""The compactor folds exactly once, even when it dies in the middle of a round."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import pytest
from runlake_services.compactor import EmbeddedCompactor
from runlake_services.tables.delta_sink import DeltaTableSink

from tests import events as ev
from tests.conftest import Pipeline


def _log_points(p: Pipeline, rid: str, batch: int, n: int = 10) -> None:
    pts = [("loss", float(i), 1_000 + i, batch * n + i) for i in range(n)]
    p.ingestor.write(ev.request(f"c:{rid}:{batch}", ev.metrics(rid, pts)), user="t")


def test_round_folds_everything_and_publishes_position(
    pipeline_factory: Callable[..., Pipeline],
) -> None:
    p = pipeline_factory()
    rid = ev.run_id()
    p.ingestor.write(ev.request("c:0", ev.created(rid), ev.params(rid, lr="0.1")), user="t")
    for b in range(3):
        _log_points(p, rid, b)
    assert p.compactor.run_once() == 5  # default experiment + 4 batches
    assert p.progress.folded == p.log.end_position()
    assert len(p.table("metrics")) == 30
    assert p.backlog.pending == 0
    assert p.compactor.run_once() == 0


@pytest.mark.parametrize("dies_before", ["metrics", "latest_metrics", "events"])
def test_crash_mid_round_neither_drops_nor_doubles(
    pipeline_factory: Callable[..., Pipeline],
    monkeypatch: pytest.MonkeyPatch,
    dies_before: str,
) -> None:
    p = pipeline_factory()
    rid = ev.run_id()
    p.ingestor.write(ev.request("c:0", ev.created(rid), ev.tags(rid, t="1")), user="t")
    _log_points(p, rid, 0)
    p.compactor.run_once()
    _log_points(p, rid, 1)
    p.ingestor.write(ev.request("c:x", ev.params(rid, a="1"), ev.tags(rid, t="2")), user="t")

    real_commit = DeltaTableSink.commit

    def dying(self: DeltaTableSink, name: str, rows: object, position: int) -> None:
        if name == dies_before:
            raise RuntimeError("simulated crash")
        real_commit(self, name, rows, position)  # type: ignore[arg-type]

    monkeypatch.setattr(DeltaTableSink, "commit", dying)
    with pytest.raises(RuntimeError):
        p.compactor.run_once()
    monkeypatch.setattr(DeltaTableSink, "commit", real_commit)

    # more arrives while it was down; a fresh sink (a restarted process) picks up
    _log_points(p, rid, 2)
    p.sink = DeltaTableSink(str(p.root / "tables"))
    p.compactor._sink = p.sink
    while p.compactor.run_once():
        pass

    points = Counter((r["step"], r["value"]) for r in p.table("metrics"))
    assert len(points) == 30 and set(points.values()) == {1}
    assert [r["value"] for r in p.table("params")] == ["1"]
    assert {(r["key"], r["value"]) for r in p.table("tags")} >= {("t", "2")}
    (latest,) = p.table("latest_metrics")
    assert latest["step"] == 29
    positions = Counter((r["position"], r["event_index"]) for r in p.table("events"))
    assert set(positions.values()) == {1}
    assert max(r["position"] for r in p.table("events")) == p.log.end_position()


def test_restart_resumes_from_events_position(pipeline_factory: Callable[..., Pipeline]) -> None:
    p = pipeline_factory()
    rid = ev.run_id()
    p.ingestor.write(ev.request("c:0", ev.created(rid)), user="t")
    _log_points(p, rid, 0)
    p.compactor.run_once()
    again = pipeline_factory(root=p.root)
    assert again.compactor.folded_position() == p.log.end_position()
    assert again.compactor.run_once() == 0


def test_after_round_runs_once_a_round_is_published_and_not_when_idle(
    pipeline_factory: Callable[..., Pipeline],
) -> None:
    p = pipeline_factory()
    seen: list[tuple[int, int]] = []  # (folded, log end) each time the hook runs
    p.compactor = EmbeddedCompactor(
        p.log,
        p.sink,
        p.progress,
        on_bytes_folded=p.backlog.folded,
        after_round=lambda: seen.append((p.progress.folded, p.log.end_position())),
        interval_s=0.01,
    )
    rid = ev.run_id()
    p.ingestor.write(ev.request("c:0", ev.created(rid)), user="t")
    _log_points(p, rid, 0)
    p.compactor.start()
    try:
        deadline = time.monotonic() + 60
        while p.progress.folded < p.log.end_position() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)  # idle rounds: nothing folded, so no hook
        calls = len(seen)
        time.sleep(0.2)
        assert len(seen) == calls
    finally:
        p.compactor.stop()
    assert calls >= 1
    assert seen[-1] == (p.log.end_position(), p.log.end_position())
    assert all(folded > 0 for folded, _ in seen)  # never before a round's publish
