"""Micro-measure of the caller's cost of ``runlake.log_metric`` (a printout, never an assert).

Run from the repository root:  python -m tests.unit.client.measure_log_metric
It starts an in-process fake gateway, so the sender really drains and sends while
the loop runs; the figure is the training thread's cost per call.
"""

from __future__ import annotations

import statistics
import time
from concurrent import futures

import grpc
import runlake
from runlake.v1 import gateway_pb2_grpc

from tests.unit.client.conftest import FakeGateway

CALLS_PER_SAMPLE = 1_000
SAMPLES = 300


def _per_call_us(fn: object) -> list[float]:
    samples = []
    step = 0
    for _ in range(SAMPLES):
        t0 = time.perf_counter_ns()
        for _ in range(CALLS_PER_SAMPLE):
            fn("loss", 0.5, step=step)  # type: ignore[operator]
            step += 1
        samples.append((time.perf_counter_ns() - t0) / CALLS_PER_SAMPLE / 1000)
    return samples


def main() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(4))
    gateway_pb2_grpc.add_GatewayServicer_to_server(FakeGateway(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    runlake.set_tracking_uri(f"grpc://127.0.0.1:{port}")
    with runlake.start_run() as run:
        _per_call_us(runlake.log_metric)  # warm-up
        fluent = _per_call_us(runlake.log_metric)
        client = runlake.RunlakeClient()
        rid = run.info.run_id
        explicit = _per_call_us(lambda k, v, step: client.log_metric(rid, k, v, step=step))
        t0 = time.perf_counter()
        runlake.flush()
        drain = time.perf_counter() - t0
    total = 3 * SAMPLES * CALLS_PER_SAMPLE
    for name, xs in (("runlake.log_metric", fluent), ("RunlakeClient.log_metric", explicit)):
        q = statistics.quantiles(xs, n=100)
        print(
            f"{name:26s} median {statistics.median(xs):.2f} us/call, "
            f"p90 {q[89]:.2f}, p99 {q[98]:.2f} (per-sample means of {CALLS_PER_SAMPLE} calls)"
        )
    print(f"final flush after {total:,} points took {drain * 1000:.1f} ms")
    server.stop(0)


if __name__ == "__main__":
    main()
