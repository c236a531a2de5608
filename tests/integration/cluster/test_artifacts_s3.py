"""Artifacts on real MinIO: proxied through the gateway and direct with presigned URLs."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import runlake
from runlake.errors import NotFound
from runlake_services.cluster import MinioService
from runlake_services.embedded.process import ServerProcess

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def s3_server(
    minio: MinioService, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    s3 = minio.s3_settings
    proc = ServerProcess(
        tmp_path_factory.mktemp("s3-server") / "data",
        extra_args=["--artifacts-destination", f"s3://{s3.bucket}/artifacts"],
        env={
            "RUNLAKE_S3_ENDPOINT_URL": s3.endpoint,
            "RUNLAKE_S3_ACCESS_KEY": s3.access_key,
            "RUNLAKE_S3_SECRET_KEY": s3.secret_key,
        },
    ).start()
    yield proc
    proc.stop()


@pytest.mark.parametrize("mode", ["proxied", "direct"])
def test_round_trip_through_minio(
    s3_server: ServerProcess,
    minio: MinioService,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
) -> None:
    monkeypatch.setenv("RUNLAKE_ARTIFACT_MODE", mode)
    client = runlake.RunlakeClient(s3_server.uri)
    run_id = client.create_run("0", run_name=f"s3-{mode}").info.run_id
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    big = os.urandom(20 * 1024 * 1024 + 3)  # > one 16 MiB multipart part
    (src / "d" / "big.bin").write_bytes(big)
    (src / "small.txt").write_text("small")
    client.log_artifacts(run_id, str(src), "out")

    names = {f.path: f.file_size for f in client.list_artifacts(run_id, "out/d")}
    assert names == {"out/d/big.bin": len(big)}
    got = Path(client.download_artifacts(run_id, "out", str(tmp_path / "dl")))
    assert (got / "d" / "big.bin").read_bytes() == big
    assert (got / "small.txt").read_text() == "small"

    # the object really is in MinIO under the run's root
    s3 = minio.s3_settings
    keys = [
        o.object_name
        for o in s3.client().list_objects(s3.bucket, prefix="artifacts/", recursive=True)
    ]
    assert f"artifacts/0/{run_id}/artifacts/out/d/big.bin" in keys
    rows = client.sql(
        f"SELECT path, size, sha256 FROM artifacts WHERE run_id = '{run_id}' ORDER BY path"
    ).to_dict("records")
    assert rows[0] == {
        "path": "out/d/big.bin",
        "size": len(big),
        "sha256": hashlib.sha256(big).hexdigest(),
    }


def test_direct_commit_of_nothing_is_refused(
    s3_server: ServerProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    import grpc
    from runlake.v1 import artifacts_pb2, artifacts_pb2_grpc

    client = runlake.RunlakeClient(s3_server.uri)
    run_id = client.create_run("0").info.run_id
    client.flush()
    stub = artifacts_pb2_grpc.ArtifactsStub(grpc.insecure_channel(s3_server.uri[7:]))
    url = stub.CreateUploadUrl(artifacts_pb2.CreateUrlRequest(run_id=run_id, path="x.bin")).url
    assert "X-Amz-Signature" in url and "127.0.0.1" in url
    with pytest.raises(grpc.RpcError) as err:
        stub.CommitUpload(artifacts_pb2.CommitUploadRequest(run_id=run_id, path="x.bin"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(NotFound):
        client.download_artifacts(run_id, "x.bin")
