"""Artifacts through a real embedded server: proxied streaming, hostile input, audit trail."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import runlake
from runlake.errors import Conflict, InvalidArgument, NotFound
from runlake.v1 import artifacts_pb2, artifacts_pb2_grpc
from runlake_services.embedded.process import ServerProcess

pytestmark = pytest.mark.e2e


@pytest.fixture
def run_id(client: runlake.RunlakeClient) -> str:
    rid = client.create_run("0", run_name="artifacts").info.run_id
    client.flush()
    return rid


@pytest.fixture
def stub(server: ServerProcess) -> artifacts_pb2_grpc.ArtifactsStub:
    return artifacts_pb2_grpc.ArtifactsStub(grpc.insecure_channel(server.uri[len("grpc://") :]))


def _names(client: runlake.RunlakeClient, run_id: str, path: str | None = None) -> list[str]:
    return [f.path + ("/" if f.is_dir else "") for f in client.list_artifacts(run_id, path)]


def test_log_list_download_round_trip(
    client: runlake.RunlakeClient, run_id: str, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    (src / "nested").mkdir(parents=True)
    (src / "a.txt").write_text("alpha")
    (src / "nested" / "b.bin").write_bytes(os.urandom(3 * 1024 * 1024 + 7))
    client.log_artifacts(run_id, str(src), "bundle")
    client.log_artifact(run_id, str(src / "a.txt"))
    client.log_text(run_id, "héllo", "notes/readme.md")
    client.log_dict(run_id, {"lr": 0.1, "layers": [1, 2]}, "config.yaml")

    assert _names(client, run_id) == ["a.txt", "bundle/", "config.yaml", "notes/"]
    assert _names(client, run_id, "bundle") == ["bundle/a.txt", "bundle/nested/"]
    sizes = {f.path: f.file_size for f in client.list_artifacts(run_id, "bundle/nested")}
    assert sizes == {"bundle/nested/b.bin": 3 * 1024 * 1024 + 7}

    out = Path(client.download_artifacts(run_id, "bundle", str(tmp_path / "dl")))
    assert (out / "nested" / "b.bin").read_bytes() == (src / "nested" / "b.bin").read_bytes()
    assert (out / "a.txt").read_text() == "alpha"
    one = runlake.artifacts.download_artifacts(
        f"runs:/{run_id}/notes/readme.md", tracking_uri=client.tracking_uri
    )
    assert Path(one).read_text() == "héllo"
    assert "layers:" in Path(client.download_artifacts(run_id, "config.yaml")).read_text()


def test_clients_built_from_the_proto_alone_upload_and_download(
    stub: artifacts_pb2_grpc.ArtifactsStub, client: runlake.RunlakeClient, run_id: str
) -> None:
    """The SDK frames chunks itself; a client generated from artifacts.proto sees the same."""
    blob = os.urandom(2 * 1024 * 1024 + 5)

    def msgs() -> Iterator[artifacts_pb2.UploadChunk]:
        yield artifacts_pb2.UploadChunk(
            header=artifacts_pb2.UploadHeader(run_id=run_id, path="gen/blob.bin")
        )
        for i in range(0, len(blob), 1024 * 1024):
            yield artifacts_pb2.UploadChunk(data=blob[i : i + 1024 * 1024])
        yield artifacts_pb2.UploadChunk(
            trailer=artifacts_pb2.UploadTrailer(
                size=len(blob), sha256=hashlib.sha256(blob).hexdigest()
            )
        )

    resp = stub.Upload(msgs())
    assert (resp.path, resp.size) == ("gen/blob.bin", len(blob))
    chunks = list(stub.Download(artifacts_pb2.DownloadRequest(run_id=run_id, path="gen/blob.bin")))
    assert chunks[0].size == len(blob) and all(c.size == 0 for c in chunks[1:])
    assert b"".join(c.data for c in chunks) == blob
    # and what the SDK uploads, the generated client reads back
    client.log_text(run_id, "sdk", "gen/sdk.txt")
    got = stub.Download(artifacts_pb2.DownloadRequest(run_id=run_id, path="gen/sdk.txt"))
    assert [(c.data, c.size) for c in got] == [(b"sdk", 3)]


def _raw_upload(server: ServerProcess) -> grpc.StreamUnaryMultiCallable:
    """Upload on a channel of its own, messages sent as given (bytes), past the SDK."""
    return grpc.insecure_channel(server.uri[len("grpc://") :]).stream_unary(
        "/runlake.v1.Artifacts/Upload", request_serializer=None, response_deserializer=None
    )


def _encoded_header(run_id: str, path: str) -> bytes:
    header = artifacts_pb2.UploadHeader(run_id=run_id, path=path)
    return artifacts_pb2.UploadChunk(header=header).SerializeToString()


def test_upload_chunks_read_as_protobuf_reads_them(
    server: ServerProcess, client: runlake.RunlakeClient, run_id: str, tmp_path: Path
) -> None:
    """Chunks the gateway frames by hand and chunks it leaves to protobuf store alike."""
    upload, header = _raw_upload(server), _encoded_header(run_id, "odd.bin")
    plain = artifacts_pb2.UploadChunk(data=b"abc").SerializeToString()
    unknown_field = plain + b"\x28\x01"  # field 5, a varint: a newer client's, say
    trailer = artifacts_pb2.UploadChunk(
        trailer=artifacts_pb2.UploadTrailer(size=6, sha256=hashlib.sha256(b"abcabc").hexdigest())
    ).SerializeToString()
    resp = artifacts_pb2.UploadResponse.FromString(
        upload(iter([header, plain, unknown_field, trailer]))
    )
    assert (resp.path, resp.size) == ("odd.bin", 6)
    got = Path(client.download_artifacts(run_id, "odd.bin", str(tmp_path)))
    assert got.read_bytes() == b"abcabc"


def test_an_upload_message_that_is_not_protobuf_is_refused(
    server: ServerProcess, client: runlake.RunlakeClient, run_id: str
) -> None:
    upload, header = _raw_upload(server), _encoded_header(run_id, "junk.bin")
    for messages, field in (([b"\xff\xff"], "chunks[0]"), ([header, b"\x12\x05ab"], "chunks[1]")):
        with pytest.raises(grpc.RpcError) as err:
            upload(iter(messages))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in (err.value.details() or "")
    assert _names(client, run_id) == []


def test_every_stored_file_is_in_the_audit_trail_with_its_digest(
    client: runlake.RunlakeClient, run_id: str, tmp_path: Path
) -> None:
    f = tmp_path / "weights.bin"
    f.write_bytes(b"\x01" * 1000)
    client.log_artifact(run_id, str(f), "model")
    rows = client.sql(
        "SELECT path, size, sha256 FROM artifacts WHERE run_id = '" + run_id + "'"
    ).to_dict("records")
    assert rows == [
        {
            "path": "model/weights.bin",
            "size": 1000,
            "sha256": hashlib.sha256(f.read_bytes()).hexdigest(),
        }
    ]
    events = client.sql(
        "SELECT event_type, user FROM events WHERE run_id = '" + run_id + "' "
        "AND event_type = 'artifact_logged'"
    )
    assert len(events) == 1


@pytest.mark.parametrize(
    "path", ["../../escape.txt", "/etc/passwd", "a/../../b", "a//b", "a\\b", "./x", ""]
)
def test_the_gateway_refuses_hostile_paths_sent_past_the_sdk(
    stub: artifacts_pb2_grpc.ArtifactsStub, run_id: str, server: ServerProcess, path: str
) -> None:
    def msgs() -> Iterator[artifacts_pb2.UploadChunk]:
        yield artifacts_pb2.UploadChunk(header=artifacts_pb2.UploadHeader(run_id=run_id, path=path))
        yield artifacts_pb2.UploadChunk(data=b"x")
        yield artifacts_pb2.UploadChunk(trailer=artifacts_pb2.UploadTrailer(size=1))

    with pytest.raises(grpc.RpcError) as err:
        stub.Upload(msgs())
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "path" in (err.value.details() or "")
    for bad in (
        artifacts_pb2.DownloadRequest(run_id=run_id, path=path),
        artifacts_pb2.ListArtifactsRequest(run_id=run_id, path=path or "../x"),
    ):
        call = (
            stub.Download if isinstance(bad, artifacts_pb2.DownloadRequest) else stub.ListArtifacts
        )
        with pytest.raises(grpc.RpcError) as err:
            result = call(bad)
            list(result) if isinstance(bad, artifacts_pb2.DownloadRequest) else result
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # nothing escaped: no file outside the artifact root was written
    assert not (server.data_dir / "escape.txt").exists()
    assert not (server.data_dir.parent / "escape.txt").exists()


def test_a_corrupted_or_incomplete_upload_leaves_nothing(
    stub: artifacts_pb2_grpc.ArtifactsStub, client: runlake.RunlakeClient, run_id: str
) -> None:
    def msgs(trailer: artifacts_pb2.UploadTrailer | None) -> Iterator[artifacts_pb2.UploadChunk]:
        yield artifacts_pb2.UploadChunk(
            header=artifacts_pb2.UploadHeader(run_id=run_id, path="partial.bin")
        )
        yield artifacts_pb2.UploadChunk(data=b"x" * 1000)
        if trailer is not None:
            yield artifacts_pb2.UploadChunk(trailer=trailer)

    for trailer, field in (
        (None, "trailer"),
        (artifacts_pb2.UploadTrailer(size=999), "trailer.size"),
        (artifacts_pb2.UploadTrailer(size=1000, sha256="0" * 64), "trailer.sha256"),
    ):
        with pytest.raises(grpc.RpcError) as err:
            stub.Upload(msgs(trailer))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in (err.value.details() or "")
    assert _names(client, run_id) == []


def test_unknown_and_deleted_runs(
    client: runlake.RunlakeClient, run_id: str, tmp_path: Path
) -> None:
    f = tmp_path / "f.txt"
    f.write_text("x")
    with pytest.raises(NotFound):
        client.log_artifact("0" * 32, str(f))
    client.delete_run(run_id)
    with pytest.raises(Conflict, match="deleted"):
        client.log_artifact(run_id, str(f))
    client.restore_run(run_id)
    client.log_artifact(run_id, str(f))
    with pytest.raises(NotFound):
        client.download_artifacts(run_id, "missing.txt", str(tmp_path / "dl"))
    with pytest.raises(InvalidArgument, match="local_path"):
        client.log_artifact(run_id, str(tmp_path / "nope.txt"))


def test_a_run_in_a_foreign_artifact_location_is_refused(
    client: runlake.RunlakeClient, tmp_path: Path
) -> None:
    eid = client.create_experiment("foreign-location", artifact_location=(tmp_path / "x").as_uri())
    rid = client.create_run(eid).info.run_id
    f = tmp_path / "f.txt"
    f.write_text("x")
    with pytest.raises(Conflict, match="outside"):
        client.log_artifact(rid, str(f))
    assert not (tmp_path / "x").exists()


def test_direct_mode_needs_a_store_that_can_presign(
    client: runlake.RunlakeClient, run_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNLAKE_ARTIFACT_MODE", "direct")
    f = tmp_path / "f.txt"
    f.write_text("x")
    with pytest.raises(Conflict, match="direct access"):
        client.log_artifact(run_id, str(f))


def test_artifacts_cli(
    server: ServerProcess, client: runlake.RunlakeClient, tmp_path: Path
) -> None:
    import json
    import subprocess
    import sys

    run_id = client.create_run("0", run_name="cli-artifacts").info.run_id
    client.log_text(run_id, "hello", "docs/readme.txt")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "runlake.cli", "--tracking-uri", server.uri, *args],
            capture_output=True,
            text=True,
            timeout=120,
        )

    out = cli("artifacts", "ls", run_id, "docs", "-o", "json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [{"path": "docs/readme.txt", "is_dir": False, "size": 5}]
    out = cli("artifacts", "get", run_id, "docs/readme.txt", "--dst", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "readme.txt").read_text() == "hello"
    bad = cli("artifacts", "get", run_id, "../../etc/passwd", "--dst", str(tmp_path))
    assert bad.returncode == 1 and bad.stderr.startswith("error: path:")


def test_log_figure_matplotlib_and_plotly(
    client: runlake.RunlakeClient, run_id: str, tmp_path: Path
) -> None:
    import importlib.util

    import plotly.graph_objects as go
    import plotly.io
    from matplotlib.figure import Figure

    fig = Figure()
    fig.add_subplot().plot([1, 2, 3], [3, 1, 2])
    client.log_figure(run_id, fig, "plots/line.png")
    client.log_figure(run_id, fig, "plots/line.svg")
    scatter = go.Figure(go.Scatter(x=[1, 2, 3], y=[4.5, 5.5, 6.5], name="loss"))
    client.log_figure(run_id, scatter, "plots/loss.html")
    client.log_figure(run_id, scatter, "plots/loss.json")

    out = Path(client.download_artifacts(run_id, "plots", str(tmp_path / "dl")))
    assert (out / "line.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert b"<svg" in (out / "line.svg").read_bytes()
    html = (out / "loss.html").read_text()
    assert "<html>" in html and "plotly" in html and "5.5" in html
    again = plotly.io.from_json((out / "loss.json").read_text())
    assert list(again.data[0].y) == [4.5, 5.5, 6.5] and again.data[0].name == "loss"

    with pytest.raises(InvalidArgument, match=r"artifact_file.*not supported"):
        client.log_figure(run_id, fig, "plots/line.xyz")
    with pytest.raises(InvalidArgument, match=r"artifact_file.*no extension"):
        client.log_figure(run_id, scatter, "plots/loss")
    with pytest.raises(InvalidArgument, match="figure"):
        client.log_figure(run_id, {"not": "a figure"}, "plots/x.png")
    if importlib.util.find_spec("kaleido") is None:  # images from plotly need kaleido + Chrome
        with pytest.raises(InvalidArgument, match=r"artifact_file.*kaleido"):
            client.log_figure(run_id, scatter, "plots/loss.png")
    else:
        client.log_figure(run_id, scatter, "plots/loss.png")
    names = sorted(f.path for f in client.list_artifacts(run_id, "plots"))
    assert names == [
        f"plots/{n}" for n in sorted(["line.png", "line.svg", "loss.html", "loss.json"])
    ] + ([] if importlib.util.find_spec("kaleido") is None else ["plots/loss.png"])


def test_the_sdk_refuses_hostile_paths_before_sending(
    client: runlake.RunlakeClient, run_id: str, tmp_path: Path
) -> None:
    f = tmp_path / "f.txt"
    f.write_text("x")
    for bad in ("../up", "/abs", "a/../../b", "a\\b"):
        with pytest.raises(InvalidArgument, match="path"):
            client.log_artifact(run_id, str(f), bad)
        with pytest.raises(InvalidArgument, match="artifact_file"):
            client.log_text(run_id, "x", f"{bad}/t.txt")
    with pytest.raises(InvalidArgument, match="path"):
        client.download_artifacts(run_id, "../../etc", str(tmp_path / "dl"))
    assert _names(client, run_id) == []


def test_a_large_file_streams_both_ways_in_bounded_memory(
    server: ServerProcess, client: runlake.RunlakeClient, tmp_path: Path
) -> None:
    """512 MiB up and back through the gateway: no process grows by a fraction of it."""
    from tests.integration.transfer_memory import make_sparse_file, measure_transfer

    src = make_sparse_file(tmp_path / "big.bin", 512)
    growth = measure_transfer(server.uri, server.pid, src, "proxied", tmp_path)
    for what in ("client_up", "server_up", "client_down", "server_down"):
        assert getattr(growth, what) < 64, growth  # MiB, for a 512 MiB file
    digest = hashlib.sha256()
    with src.open("rb") as f:
        while block := f.read(1 << 24):
            digest.update(block)
    rows = client.sql(
        f"SELECT size, sha256 FROM artifacts WHERE run_id = '{growth.run_id}'"
    ).to_dict("records")
    assert rows == [{"size": 512 * 1024 * 1024, "sha256": digest.hexdigest()}]


_UPLOAD_THEN_HANG = r"""
import sys, runlake
c = runlake.RunlakeClient(sys.argv[1])
c.log_artifact(sys.argv[2], sys.argv[3], "partial")
"""


def test_a_client_killed_mid_upload_leaves_nothing(
    server: ServerProcess, client: runlake.RunlakeClient, run_id: str, tmp_path: Path
) -> None:
    import signal
    import subprocess
    import sys
    import time

    from tests.integration.transfer_memory import make_sparse_file

    src = make_sparse_file(tmp_path / "big.bin", 4096)  # far more than arrives before the kill
    staging = server.data_dir / "artifacts" / ".staging"
    before = set(staging.iterdir())
    child = subprocess.Popen(
        [sys.executable, "-c", _UPLOAD_THEN_HANG, server.uri, run_id, str(src)]
    )
    try:
        deadline = time.monotonic() + 60
        while not any(p.stat().st_size > 8 << 20 for p in set(staging.iterdir()) - before):
            assert child.poll() is None and time.monotonic() < deadline, "no upload in progress"
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    deadline = time.monotonic() + 30
    while set(staging.iterdir()) - before:  # the gateway sees the stream cancelled
        assert time.monotonic() < deadline, "the half upload was left in staging"
        time.sleep(0.1)
    assert _names(client, run_id) == []
    assert client.sql(f"SELECT * FROM artifacts WHERE run_id = '{run_id}'").empty


def test_a_download_that_cannot_fit_fails_at_once_and_leaves_nothing(
    server: ServerProcess, client: runlake.RunlakeClient, run_id: str, tmp_path: Path
) -> None:
    """The file's room is taken before the bytes come, so "no room" is known at the start."""
    from tests.integration.transfer_memory import download_with_small_file_limit

    error, field, left = download_with_small_file_limit(client, run_id, tmp_path, "proxied")
    assert field == "dst_path" and "no room for 3145728 bytes" in error
    assert left == []  # neither the file nor its .part
