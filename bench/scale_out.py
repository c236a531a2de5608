"""9. scale_out: the Kafka path — gateways → Kafka → Spark compactor → Delta on MinIO.

For each (partitions, gateways) configuration a fresh ``DevCluster`` (real Kafka, MinIO, the
Spark Structured Streaming compactor with a 1 s trigger, a query service, the gateways) is
started on loopback, and then:

- **ingest**: 16 client processes, each its own run, client ``i`` on gateway ``i mod G``,
  log N points with ``log_metric`` and ``flush()``. A flush returns once the gateway has
  the points in Kafka (acks=all), so the figure is points made durable in Kafka per second,
  from the common start to the last process's end (as the embedded ``ingest``).
- **compactor**: from the same start, how long until the compactor's published progress
  covers every offset the gateways acknowledged (polled through ``GetPosition``); its rate
  is all points over that time, and "lag at the end" is how far behind the ingest it
  finished. A compactor that keeps up finishes within about one micro-batch of the ingest.
- **freshness** (first configuration only): acknowledged → visible to a token-less search,
  as the embedded ``freshness`` benchmark measures it, here through the compactor's
  micro-batches and the query service's change-feed follower.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

from bench import freshness
from bench.common import Ctx, Row, fan_out, percentile
from bench.ingest import RUNLAKE, rate

if TYPE_CHECKING:
    from runlake_services.cluster.dev import DevCluster

NAME = "scale_out"
_CATCH_UP_S = 900.0


def _folded_covers(uri: str, wanted: str) -> bool:
    from runlake import RunlakeClient
    from runlake.positions import covers
    from runlake.v1 import query_pb2

    client = RunlakeClient(uri)
    resp = client._call(client._query.GetPosition, query_pb2.PositionRequest())
    return covers(resp.folded, wanted)


def _wait_folded(uris: list[str]) -> tuple[float, bool]:
    """Poll until the compactor's progress covers every offset the gateways acknowledged.

    When it got there (or gave up, after ``_CATCH_UP_S``), and whether it did.
    """
    wanted = _log_end(uris)
    deadline = time.time() + _CATCH_UP_S
    while not _folded_covers(uris[0], wanted):
        if time.time() >= deadline:
            return time.time(), False
        time.sleep(0.2)
    return time.time(), True


def _log_end(uris: list[str]) -> str:
    """Every offset any gateway knows is in Kafka (each answers with its own view)."""
    from runlake import RunlakeClient
    from runlake.positions import later
    from runlake.v1 import query_pb2

    token = ""
    for uri in uris:
        client = RunlakeClient(uri)
        resp = client._call(client._query.GetPosition, query_pb2.PositionRequest())
        token = later(token, resp.log_end)
    return token


_BATCH = re.compile(
    r"batch \d+: (\d+) records \(\d+ duplicates\) collect ([\d.]+)s fold ([\d.]+)s write ([\d.]+)s"
)


def _busy(log_path: str) -> tuple[int, float, float, float, int]:
    """From the compactor's per-micro-batch log lines: records, collect, fold and write seconds.

    Summed over the micro-batches that had records: the time the compactor spent working, as
    opposed to waiting for its trigger or for data. Points over these seconds is the rate it
    could sustain if it were never idle.
    """
    records, collect, fold, write, batches = 0, 0.0, 0.0, 0.0, 0
    for line in Path(log_path).read_text(errors="replace").splitlines():
        m = _BATCH.search(line)
        if m is None or m.group(1) == "0":
            continue
        records += int(m.group(1))
        collect, fold, write = (
            collect + float(m.group(2)), fold + float(m.group(3)), write + float(m.group(4))
        )  # fmt: skip
        batches += 1
    return records, collect, fold, write, batches


def _label(partitions: int, gateways: int) -> str:
    p = f"{partitions} partition{'s' if partitions > 1 else ''}"
    return f"{p}, {gateways} gateway{'s' if gateways > 1 else ''}"


def _one(
    ctx: Ctx, partitions: int, gateways: int, procs: int, n: int, *, fresh: bool
) -> tuple[Row, Row, list[float], list[Row]]:
    from runlake_services.cluster.dev import DevCluster, DevClusterConfig
    from runlake_services.embedded.process import free_port

    directory = Path(ctx.dir(f"cluster-p{partitions}-g{gateways}"))
    config = DevClusterConfig(
        dir=directory, kafka_port=free_port(), kafka_controller_port=free_port(),
        minio_port=free_port(), gateway_port=0, query_port=0, gateways=gateways,
        partitions=partitions, compactor_memory="2g",
    )  # fmt: skip
    cluster = DevCluster(config, on_step=lambda msg: ctx.say(f"scale_out: {msg}"))
    label = _label(partitions, gateways)
    try:
        state = cluster.up()
        uris = [p.grpc for p in state.parts if p.name.startswith("gateway")]
        ctx.say(f"scale_out: {label}: {procs} processes x {n:,} points")
        args = [{"uri": uris[i % len(uris)], "n": n, "name": f"so-{i}"} for i in range(procs)]
        res = fan_out(RUNLAKE, args, barrier=True, timeout_s=ctx.pick(600, 1800))
        start, end = res[0]["start"], max(r["end"] for r in res)
        caught_up, done = _wait_folded(uris)
        points = sum(r["points"] for r in res)
        ingest = Row(NAME, f"ingest durable in Kafka, 16 processes, {label}", rate(res), "points/s")
        ingest.detail.append(f"runlake: {procs} x {n:,} points acknowledged in {end - start:.2f} s")
        compactor = Row(
            NAME,
            f"compactor throughput, {label}",
            points / (caught_up - start) if done else 0.0,
            "points/s",
        )
        compactor.detail.append(
            f"runlake: folded everything {caught_up - start:.1f} s after the start, "
            f"{caught_up - end:.1f} s after the last acknowledgement"
            + ("" if done else f" (gave up after {_CATCH_UP_S:.0f} s)")
        )
        compactor_log = next(p.log for p in state.parts if p.name == "compactor")
        records, collect, fold, write, batches = _busy(compactor_log)
        busy = collect + fold + write
        if batches:
            compactor.detail.append(
                f"runlake: {batches} micro-batches of {records:,} Kafka records busy for "
                f"{busy:.1f} s (collect {collect:.1f}, fold {fold:.1f}, write {write:.1f}): "
                f"{points / busy:,.0f} points/s while working"
            )
        lags: list[float] = []
        extra: list[Row] = []
        if fresh:
            samples = ctx.pick(20, 100)
            ctx.say(f"scale_out: {label}: freshness, {samples} samples")
            lags, gave_up = freshness.measure(state.tracking_uri, samples, give_up_s=60.0)
            if gave_up:
                lags.extend([float("inf")] * gave_up)
            extra.append(_drain(ctx, cluster, uris, procs, n, label))
        return ingest, compactor, lags, extra
    finally:
        cluster.down()


def _drain(ctx: Ctx, cluster: DevCluster, uris: list[str], procs: int, n: int, label: str) -> Row:
    """The compactor alone: stopped while the clients log, then started on the backlog.

    During the ingest above the compactor shares the machine with the clients, the gateways,
    Kafka and MinIO; here it works alone, so its busy rate is what the compactor itself can
    do on this machine.
    """
    from runlake_services.launcher import stop_pid

    state = cluster.state()
    assert state is not None, "the cluster is up"
    old = next(p for p in state.parts if p.name == "compactor")
    stop_pid(old.pid, 60.0)
    ctx.say(f"scale_out: {label}: compactor stopped; {procs} processes x {n:,} points")
    args = [{"uri": uris[i % len(uris)], "n": n, "name": f"drain-{i}"} for i in range(procs)]
    res = fan_out(RUNLAKE, args, barrier=True, timeout_s=ctx.pick(600, 1800))
    points = sum(r["points"] for r in res)
    ctx.say(f"scale_out: {label}: compactor started on a backlog of {points:,} points")
    started = time.time()
    part = cluster.restart("compactor")
    caught_up, done = _wait_folded(uris)
    records, collect, fold, write, batches = _busy(part.log)
    busy = collect + fold + write
    row = Row(NAME, f"compactor alone on a backlog, {label}", points / busy if busy else 0.0,
              "points/s")  # fmt: skip
    row.detail.append(
        f"runlake: {points:,} points in {batches} micro-batches of {records:,} Kafka records, "
        f"busy {busy:.1f} s (collect {collect:.1f}, fold {fold:.1f}, write {write:.1f}); "
        f"{caught_up - started:.1f} s from the restart, the JVM's start included"
        + ("" if done else f" (gave up after {_CATCH_UP_S:.0f} s)")
    )
    return row


def run(ctx: Ctx) -> list[Row]:
    configs = ctx.pick(((3, 1),), ((3, 1), (1, 1), (3, 2), (6, 2)))
    procs, n = 16, ctx.pick(20_000, 100_000)
    rows: list[Row] = []
    lags: list[float] = []
    for i, (partitions, gateways) in enumerate(configs):
        ingest, compactor, got, extra = _one(ctx, partitions, gateways, procs, n, fresh=i == 0)
        rows += [ingest, compactor, *extra]
        lags += got
    best = max((r for r in rows if r.name.startswith("ingest")), key=lambda r: r.runlake or 0)
    best.target = "≥ 200,000 points/s durable in Kafka"
    best.met = (best.runlake or 0) >= 200_000
    for r in rows:
        if r.name.startswith("compactor throughput"):
            r.target = "keeps up: ≥ 200,000 points/s"
            r.met = (r.runlake or 0) >= 200_000
    p50, p99 = percentile(lags, 50), percentile(lags, 99)
    fresh = Row(
        NAME, "freshness p99 through Kafka and Spark (1 s trigger)", p99, "ms",
        higher_is_better=False, target="p99 ≤ 5,000 ms",
    )  # fmt: skip
    fresh.met = p99 <= 5000
    fresh.detail.append(f"runlake: {len(lags)} samples, p50 {p50:.0f} ms, p99 {p99:.0f} ms")
    rows.append(
        Row(NAME, "freshness p50 through Kafka and Spark", p50, "ms", higher_is_better=False)
    )
    rows.append(fresh)
    return rows
