"""8. artifacts: upload and download MB/s through the gateway, proxied and direct, vs raw MinIO.

A real MinIO (installed and started by the project's scripts, on loopback) holds the
bytes. Raw: the python minio client's ``fput_object``/``fget_object`` of the same file,
from this process. runlake: a worker process calls ``RunlakeClient.log_artifact`` and
``download_artifacts`` against ``runlake server --artifacts-destination s3://…``, once
proxied (bytes stream through the gateway's gRPC service) and once direct (presigned URLs
from the gateway, bytes straight to MinIO). Median of three transfers each. Target: ≥ 0.8x
the raw client's MB/s.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

from bench.common import Ctx, Row, run_worker, runlake_env
from bench.servers import RunlakeServer

NAME = "artifacts"
_REPS = 3

WORKER = """
import os, statistics, tempfile
from pathlib import Path
import runlake
os.environ["RUNLAKE_ARTIFACT_MODE"] = A["mode"]
c = runlake.RunlakeClient(A["uri"])
rid = c.create_run("0", run_name="artifacts-" + A["mode"]).info.run_id
c.flush()
src = Path(A["file"])
up, down = [], []
for i in range(A["reps"]):
    t = time.perf_counter()
    c.log_artifact(rid, str(src), f"rep{i}")
    up.append(time.perf_counter() - t)
    dst = tempfile.mkdtemp(dir=A["tmp"])
    t = time.perf_counter()
    out = c.download_artifacts(rid, f"rep{i}/{src.name}", dst)
    down.append(time.perf_counter() - t)
    assert os.path.getsize(out) == src.stat().st_size
    os.remove(out)
result(up=statistics.median(up), down=statistics.median(down))
"""


def run(ctx: Ctx) -> list[Row]:
    from runlake_services.cluster import MinioService, install_minio
    from runlake_services.embedded.process import free_port

    mib = ctx.pick(64, 512)
    ctx.say(f"artifacts: installing/starting MinIO, writing a {mib} MiB file")
    install_minio()
    src = Path(ctx.dir("artifact-src")) / "blob.bin"
    with src.open("wb") as f:
        for _ in range(mib):
            f.write(os.urandom(1 << 20))
    minio = MinioService(data_dir=ctx.dir("minio"), port=free_port()).start()
    try:
        s3 = minio.s3_settings
        raw = s3.client()
        up, down = [], []
        for i in range(_REPS):
            t = time.perf_counter()
            raw.fput_object(s3.bucket, f"raw/rep{i}", str(src))
            up.append(time.perf_counter() - t)
            dst = Path(ctx.dir("raw-dl")) / "blob.bin"
            t = time.perf_counter()
            raw.fget_object(s3.bucket, f"raw/rep{i}", str(dst))
            down.append(time.perf_counter() - t)
            dst.unlink()
        raw_up, raw_down = mib / statistics.median(up), mib / statistics.median(down)
        env = {
            "RUNLAKE_S3_ENDPOINT_URL": s3.endpoint,
            "RUNLAKE_S3_ACCESS_KEY": s3.access_key,
            "RUNLAKE_S3_SECRET_KEY": s3.secret_key,
        }
        server = RunlakeServer(
            ctx.dir("artifacts"),
            extra_args=["--artifacts-destination", f"s3://{s3.bucket}/runlake"],
            env=env,
        )
        rows: list[Row] = []
        with server.start():
            for mode in ("proxied", "direct"):
                ctx.say(f"artifacts: runlake {mode}, {_REPS} x {mib} MiB up and down")
                res = run_worker(
                    WORKER,
                    {
                        "uri": server.uri,
                        "mode": mode,
                        "file": str(src),
                        "reps": _REPS,
                        "tmp": str(ctx.tmp),
                    },
                    env=runlake_env(),
                    timeout_s=1800,
                )
                for what, secs, peer in (
                    ("upload", res["up"], raw_up),
                    ("download", res["down"], raw_down),
                ):
                    rate = mib / secs
                    row = Row(
                        NAME,
                        f"artifact {what}, {mode} ({mib} MiB)",
                        rate,
                        "MB/s",
                        target="≥ 0.8x raw MinIO client",
                        met=rate >= 0.8 * peer,
                    )
                    ratio = rate / peer
                    row.detail.append(
                        f"raw minio client {what}: {peer:,.0f} MB/s; runlake/raw = {ratio:.2f}x"
                    )
                    rows.append(row)
        return rows
    finally:
        minio.stop()
