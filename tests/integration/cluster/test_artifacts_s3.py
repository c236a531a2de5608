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


@pytest.mark.parametrize("mode", ["proxied", "direct"])
def test_a_download_that_cannot_fit_fails_at_once(
    s3_server: ServerProcess, tmp_path: Path, mode: str
) -> None:
    from tests.integration.transfer_memory import download_with_small_file_limit

    client = runlake.RunlakeClient(s3_server.uri)
    run_id = client.create_run("0", run_name=f"no-room-{mode}").info.run_id
    error, field, left = download_with_small_file_limit(client, run_id, tmp_path, mode)
    assert field == "dst_path" and "no room for 3145728 bytes" in error
    assert left == []


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


def _objects_and_uploads(
    minio: MinioService, prefix: str, *keys: str
) -> tuple[list[str], list[str]]:
    """Objects under ``prefix``, and the multipart uploads still open for ``keys`` under it.

    MinIO lists open multipart uploads of one object name at a time.
    """
    s3 = minio.s3_settings
    raw = s3.client()
    objects = [
        str(o.object_name) for o in raw.list_objects(s3.bucket, prefix=prefix, recursive=True)
    ]
    uploads = [
        str(u.object_name)
        for key in keys
        for u in raw._list_multipart_uploads(s3.bucket, prefix=prefix + key).uploads
    ]
    return objects, uploads


@pytest.mark.parametrize("mode", ["proxied", "direct"])
def test_a_large_file_streams_both_ways_in_bounded_memory(
    s3_server: ServerProcess, tmp_path: Path, mode: str
) -> None:
    """768 MiB up and back: neither the client nor the gateway grows by a fraction of it."""
    from tests.integration.transfer_memory import make_sparse_file, measure_transfer

    src = make_sparse_file(tmp_path / "big.bin", 768)
    growth = measure_transfer(s3_server.uri, s3_server.pid, src, mode, tmp_path)
    # the gateway holds at most 4 parts of 8 MiB per proxied upload
    for what in ("client_up", "server_up", "client_down", "server_down"):
        assert getattr(growth, what) < 96, growth  # MiB, for a 768 MiB file


def test_an_interrupted_or_refused_multipart_upload_leaves_nothing(
    s3_server: ServerProcess, minio: MinioService, tmp_path: Path
) -> None:
    import signal
    import subprocess
    import sys
    import time

    import grpc
    from runlake.v1 import artifacts_pb2, artifacts_pb2_grpc

    from tests.integration.transfer_memory import make_sparse_file

    client = runlake.RunlakeClient(s3_server.uri)
    run_id = client.create_run("0", run_name="s3-interrupted").info.run_id
    client.flush()
    prefix = f"artifacts/0/{run_id}/artifacts/"

    # a client killed after several parts went up
    src = make_sparse_file(tmp_path / "big.bin", 4096)
    script = "import sys, runlake\nrunlake.RunlakeClient(sys.argv[1]).log_artifact(*sys.argv[2:])"
    child = subprocess.Popen([sys.executable, "-c", script, s3_server.uri, run_id, str(src)])
    try:
        deadline = time.monotonic() + 60
        while not _objects_and_uploads(minio, prefix, "big.bin")[1]:
            assert child.poll() is None and time.monotonic() < deadline, "no multipart upload"
            time.sleep(0.05)
        time.sleep(0.5)  # a few parts in
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    deadline = time.monotonic() + 30
    while _objects_and_uploads(minio, prefix, "big.bin") != ([], []):
        assert time.monotonic() < deadline, _objects_and_uploads(minio, prefix, "big.bin")
        time.sleep(0.1)

    # a stream of 40 MiB (five parts) whose trailer disagrees: refused before completion
    stub = artifacts_pb2_grpc.ArtifactsStub(grpc.insecure_channel(s3_server.uri[7:]))

    def msgs() -> Iterator[artifacts_pb2.UploadChunk]:
        yield artifacts_pb2.UploadChunk(
            header=artifacts_pb2.UploadHeader(run_id=run_id, path="refused.bin")
        )
        block = os.urandom(1 << 20)
        for _ in range(40):
            yield artifacts_pb2.UploadChunk(data=block)
        yield artifacts_pb2.UploadChunk(
            trailer=artifacts_pb2.UploadTrailer(size=40 << 20, sha256="0" * 64)
        )

    with pytest.raises(grpc.RpcError) as err:
        stub.Upload(msgs())
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "trailer.sha256" in (err.value.details() or "")
    assert _objects_and_uploads(minio, prefix, "refused.bin") == ([], [])
    assert client.list_artifacts(run_id) == []


def test_direct_multipart_upload_is_checked_at_commit_and_can_be_abandoned(
    s3_server: ServerProcess, minio: MinioService
) -> None:
    """A direct upload over one part (64 MiB) is a multipart upload with one URL per part."""
    import urllib.request

    import grpc
    from runlake.v1 import artifacts_pb2, artifacts_pb2_grpc

    client = runlake.RunlakeClient(s3_server.uri)
    run_id = client.create_run("0", run_name="s3-direct-parts").info.run_id
    client.flush()
    stub = artifacts_pb2_grpc.ArtifactsStub(grpc.insecure_channel(s3_server.uri[7:]))
    prefix = f"artifacts/0/{run_id}/artifacts/"
    size = (64 << 20) + 1
    up = stub.CreateUploadUrl(
        artifacts_pb2.CreateUrlRequest(run_id=run_id, path="w.bin", size=size)
    )
    assert up.url == "" and up.upload_id and up.part_size == 64 << 20 and len(up.part_urls) == 2

    def put(url: str, data: bytes) -> str:
        req = urllib.request.Request(url, data=data, method="PUT")
        with urllib.request.urlopen(req, timeout=120) as resp:
            return str(resp.headers["ETag"]).strip('"')

    body = os.urandom(size)
    etags = [put(up.part_urls[0], body[: 64 << 20]), put(up.part_urls[1], body[64 << 20 :])]
    assert _objects_and_uploads(minio, prefix, "w.bin") == ([], [f"{prefix}w.bin"])

    def commit(**kw: object) -> artifacts_pb2.UploadResponse:
        req = artifacts_pb2.CommitUploadRequest(run_id=run_id, path="w.bin", **kw)  # type: ignore[arg-type]
        return stub.CommitUpload(req)

    for bad, field in (
        ({"upload_id": up.upload_id, "etags": ["0" * 32, etags[1]]}, "etags"),
        ({"upload_id": up.upload_id, "etags": []}, "etags"),
        ({"etags": etags}, "etags"),
        ({"upload_id": "no-such-upload", "etags": etags}, "upload_id"),
    ):
        with pytest.raises(grpc.RpcError) as err:
            commit(**bad)
        assert field in (err.value.details() or ""), err.value.details()
    assert _objects_and_uploads(minio, prefix, "w.bin")[0] == []  # still nothing visible

    done = commit(upload_id=up.upload_id, etags=etags, sha256=hashlib.sha256(body).hexdigest())
    assert done.size == size
    assert _objects_and_uploads(minio, prefix, "w.bin") == ([f"{prefix}w.bin"], [])
    assert {f.path: f.file_size for f in client.list_artifacts(run_id)} == {"w.bin": size}

    # an upload the client gives up on is discarded, and abandoning it twice is harmless
    up = stub.CreateUploadUrl(
        artifacts_pb2.CreateUrlRequest(run_id=run_id, path="x.bin", size=size)
    )
    put(up.part_urls[0], body[: 64 << 20])
    for _ in range(2):
        stub.AbortUpload(
            artifacts_pb2.AbortUploadRequest(run_id=run_id, path="x.bin", upload_id=up.upload_id)
        )
    assert _objects_and_uploads(minio, prefix, "x.bin") == ([f"{prefix}w.bin"], [])


def test_an_interrupted_direct_put_leaves_nothing(
    s3_server: ServerProcess, minio: MinioService
) -> None:
    """A presigned PUT cut off half-way (the client died): S3 stores nothing, commit refuses."""
    import http.client
    import time
    import urllib.parse

    import grpc
    from runlake.v1 import artifacts_pb2, artifacts_pb2_grpc

    client = runlake.RunlakeClient(s3_server.uri)
    run_id = client.create_run("0", run_name="s3-direct-cut").info.run_id
    client.flush()
    stub = artifacts_pb2_grpc.ArtifactsStub(grpc.insecure_channel(s3_server.uri[7:]))
    up = stub.CreateUploadUrl(
        artifacts_pb2.CreateUrlRequest(run_id=run_id, path="cut.bin", size=8 << 20)
    )
    assert up.url and not up.upload_id  # under one part: a single PUT
    url = urllib.parse.urlsplit(up.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    conn.putrequest("PUT", f"{url.path}?{url.query}", skip_accept_encoding=True)
    conn.putheader("Content-Length", str(8 << 20))
    conn.endheaders()
    conn.send(os.urandom(1 << 20))  # an eighth of it, then the connection drops
    conn.sock.shutdown(2)
    conn.close()
    time.sleep(0.5)
    prefix = f"artifacts/0/{run_id}/artifacts/"
    assert _objects_and_uploads(minio, prefix, "cut.bin") == ([], [])
    with pytest.raises(grpc.RpcError) as err:
        stub.CommitUpload(artifacts_pb2.CommitUploadRequest(run_id=run_id, path="cut.bin"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert client.list_artifacts(run_id) == []


def test_keys_written_behind_runlakes_back_cannot_lead_a_download_out(
    s3_server: ServerProcess, minio: MinioService, tmp_path: Path
) -> None:
    """A key runlake would never write (MinIO itself refuses '..') is refused, not followed."""
    import io

    from runlake.errors import RunlakeError

    client = runlake.RunlakeClient(s3_server.uri)
    run_id = client.create_run("0", run_name="s3-foreign-keys").info.run_id
    client.log_text(run_id, "fine", "ok/readme.txt")
    s3 = minio.s3_settings
    raw = s3.client()
    bad = f"artifacts/0/{run_id}/artifacts/ok/up\\evil.txt"
    raw.put_object(s3.bucket, bad, io.BytesIO(b"evil"), length=4)
    # the gateway does not list it (and would not serve it: the path is not canonical) …
    assert [f.path for f in client.list_artifacts(run_id, "ok")] == ["ok/readme.txt"]
    got = Path(client.download_artifacts(run_id, "ok", str(tmp_path / "dl")))
    assert [p.name for p in got.iterdir()] == ["readme.txt"]
    with pytest.raises(RunlakeError, match="path"):
        client.download_artifacts(run_id, "ok/up\\evil.txt", str(tmp_path / "dl2"))
    # … and a gateway that did would be refused by the client
    from runlake.v1 import artifacts_pb2

    transfer = client._artifacts
    real = transfer._stub.ListArtifacts

    def lying(req: artifacts_pb2.ListArtifactsRequest, **kw: object) -> object:
        resp = real(req, **kw)
        resp.files.add(path="ok/../../evil.txt", is_dir=False, size=4)
        return resp

    transfer._stub.ListArtifacts = lying  # type: ignore[method-assign]
    try:
        with pytest.raises(RunlakeError, match="path"):
            client.download_artifacts(run_id, "ok", str(tmp_path / "dl3"))
    finally:
        transfer._stub.ListArtifacts = real  # type: ignore[method-assign]
    assert not any(p.name.endswith("evil.txt") for p in tmp_path.rglob("*"))
