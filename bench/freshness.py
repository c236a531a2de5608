"""4. freshness: acknowledged write → visible to a search that sends no position token.

A writer process creates a run tagged with a unique value and calls ``flush()``; when it
returns (the gateway acknowledged the run, durable in the event log) the writer notes
``time.monotonic_ns()`` (one clock for every process on Linux) and tells this process,
which polls ``RunlakeClient.search_runs`` filtered on that tag until the run appears.
This process never writes to that server, so its reads carry no position token: they see
whatever the query service's index holds at that moment (the token-less state), and the
lag is the compactor's fold plus the index update.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time

from bench.common import PRELUDE, Ctx, Row, percentile, runlake_env
from bench.servers import RunlakeServer

NAME = "freshness"
_GIVE_UP_S = 30.0
_POLL_S = 0.001

WRITER = """
import runlake
c = runlake.RunlakeClient(A["uri"])
c.create_run("0", run_name="warm-up")
c.flush()
print("READY", flush=True)
for line in sys.stdin:
    tag = line.strip()
    if not tag:
        break
    c.create_run("0", run_name=tag, tags={"fresh": tag})
    c.flush()
    print("ACK", tag, time.monotonic_ns(), flush=True)
"""


def measure(uri: str, samples: int, give_up_s: float = _GIVE_UP_S) -> tuple[list[float], int]:
    """(lags in ms, samples never visible within ``give_up_s``) against the server at ``uri``."""
    import runlake

    lags_ms: list[float] = []
    gave_up = 0
    reader = runlake.RunlakeClient(uri)
    with tempfile.TemporaryFile(mode="w+") as err:
        writer = subprocess.Popen(
            [sys.executable, "-c", PRELUDE + WRITER, json.dumps({"uri": uri})],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env=runlake_env(),
            cwd=tempfile.gettempdir(),
        )
        assert writer.stdin is not None and writer.stdout is not None
        try:
            if writer.stdout.readline().strip() != "READY":
                err.seek(0)
                raise RuntimeError(f"freshness writer failed:\n{err.read()[-3000:]}")
            for i in range(samples):
                tag = f"f{i}-{time.time_ns()}"
                writer.stdin.write(tag + "\n")
                writer.stdin.flush()
                ack = writer.stdout.readline().split()
                if len(ack) != 3 or ack[1] != tag:
                    err.seek(0)
                    raise RuntimeError(f"freshness writer: {ack!r}\n{err.read()[-3000:]}")
                acked_ns = int(ack[2])
                give_up = time.monotonic() + give_up_s
                while not reader.search_runs(["0"], f"tags.fresh = '{tag}'", max_results=1):
                    if time.monotonic() > give_up:
                        gave_up += 1
                        break
                    time.sleep(_POLL_S)
                else:
                    lags_ms.append((time.monotonic_ns() - acked_ns) / 1e6)
                time.sleep(0.02)  # samples at different phases of the compaction cycle
        finally:
            writer.stdin.close()
            try:
                writer.wait(30)
            except subprocess.TimeoutExpired:
                writer.kill()
                writer.wait(10)
    return lags_ms, gave_up


def run(ctx: Ctx) -> list[Row]:
    samples = ctx.pick(40, 200)
    with RunlakeServer(ctx.dir("fresh")).start() as server:
        ctx.say(f"freshness: {samples} samples")
        lags_ms, gave_up = measure(server.uri, samples)
    p50, p99 = percentile(lags_ms, 50), percentile(lags_ms, 99)
    row = Row(
        NAME,
        "freshness p99 (ack → searchable, no token)",
        p99 if not gave_up else float("inf"),
        "ms",
        higher_is_better=False,
        target="p99 ≤ 1,000 ms",
    )
    row.met = not gave_up and p99 <= 1000
    row.detail.append(
        f"runlake: {len(lags_ms)} samples, p50 {p50:.0f} ms, p99 {p99:.0f} ms, "
        f"max {max(lags_ms, default=float('nan')):.0f} ms"
        + (f"; {gave_up} never visible within {_GIVE_UP_S:.0f} s" if gave_up else "")
    )
    p50row = Row(NAME, "freshness p50", p50, "ms", higher_is_better=False)
    return [p50row, row]
