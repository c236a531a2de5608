"""8. artifacts: upload and download MB/s through the gateway, proxied and direct, vs raw MinIO.

A real MinIO (installed and started by the project's scripts, on loopback) holds the
bytes. Raw: the python minio client's ``fput_object``/``fget_object`` of the same file,
from this process. runlake: a worker process calls ``RunlakeClient.log_artifact`` and
``download_artifacts`` against ``runlake server --artifacts-destination s3://…``, once
proxied (bytes stream through the gateway's gRPC service) and once direct (presigned URLs
from the gateway, bytes straight to MinIO). Nine rounds, each one raw transfer then one
proxied and one direct, so a change in the machine's background load hits all three alike;
the medians are compared. Target: ≥ 0.8x the raw client's MB/s.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

from bench.common import Ctx, Row, run_worker, runlake_env
from bench.servers import RunlakeServer

NAME = "artifacts"
_REPS = 9

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
        # seconds per transfer: (who, direction) -> one entry per round
        secs: dict[tuple[str, str], list[float]] = {}
        with server.start():
            for i in range(_REPS):
                # one round: raw, proxied, direct back to back, so a change in the machine's
                # background load hits every contender alike
                ctx.say(f"artifacts: round {i + 1}/{_REPS}: raw client, proxied, direct")
                t = time.perf_counter()
                raw.fput_object(s3.bucket, f"raw/rep{i}", str(src))
                secs.setdefault(("raw", "upload"), []).append(time.perf_counter() - t)
                dst = Path(ctx.dir("raw-dl")) / "blob.bin"
                t = time.perf_counter()
                raw.fget_object(s3.bucket, f"raw/rep{i}", str(dst))
                secs.setdefault(("raw", "download"), []).append(time.perf_counter() - t)
                dst.unlink()
                for mode in ("proxied", "direct"):
                    res = run_worker(
                        WORKER,
                        {
                            "uri": server.uri,
                            "mode": mode,
                            "file": str(src),
                            "reps": 1,
                            "tmp": str(ctx.tmp),
                        },
                        env=runlake_env(),
                        timeout_s=1800,
                    )
                    secs.setdefault((mode, "upload"), []).append(res["up"])
                    secs.setdefault((mode, "download"), []).append(res["down"])
        rows: list[Row] = []
        for mode in ("proxied", "direct"):
            for what in ("upload", "download"):
                rate = mib / statistics.median(secs[(mode, what)])
                peer = mib / statistics.median(secs[("raw", what)])
                row = Row(
                    NAME,
                    f"artifact {what}, {mode} ({mib} MiB)",
                    rate,
                    "MB/s",
                    target="≥ 0.8x raw MinIO client",
                    met=rate >= 0.8 * peer,
                )
                each = ", ".join(f"{mib / x:.0f}" for x in secs[(mode, what)])
                raw_each = ", ".join(f"{mib / x:.0f}" for x in secs[("raw", what)])
                row.detail.append(
                    f"raw minio client {what}: {peer:,.0f} MB/s; runlake/raw = {rate / peer:.2f}x "
                    f"(medians of {_REPS} interleaved rounds; runlake {each}, raw {raw_each})"
                )
                rows.append(row)
        return rows
    finally:
        minio.stop()
