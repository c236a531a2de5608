"""The artifact chunk framing against protobuf's own encoder and parser."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from runlake._wire import DOWNLOAD_DATA as _DOWNLOAD
from runlake._wire import UPLOAD_DATA as _UPLOAD
from runlake._wire import bytes_field, sole_bytes_field
from runlake.v1 import artifacts_pb2


@given(st.binary(max_size=70_000))
def test_framed_chunks_are_the_messages_protobuf_writes_and_reads(payload: bytes) -> None:
    down = bytes_field(_DOWNLOAD, payload)
    assert artifacts_pb2.DownloadChunk.FromString(down).data == payload
    up = bytes_field(_UPLOAD, payload)
    assert up == artifacts_pb2.UploadChunk(data=payload).SerializeToString()
    parsed = artifacts_pb2.UploadChunk.FromString(up)
    assert parsed.WhichOneof("part") == "data" and parsed.data == payload
    for field, framed in ((_DOWNLOAD, down), (_UPLOAD, up)):
        view = sole_bytes_field(framed, field)
        assert view is not None and bytes(view) == payload


@given(st.binary(max_size=300), st.integers(min_value=0, max_value=2**62))
def test_a_chunk_carrying_its_size_goes_through_protobuf(payload: bytes, size: int) -> None:
    message = artifacts_pb2.DownloadChunk(data=payload, size=size).SerializeToString()
    view = sole_bytes_field(message, _DOWNLOAD)
    # only a message that is the data field alone is taken apart here
    assert (view is None) == (size != 0 or not payload)


@given(st.binary(max_size=200))
def test_whatever_is_framed_as_data_protobuf_reads_as_that_data(message: bytes) -> None:
    """Fuzz: a payload is only returned where protobuf would parse the same one."""
    for cls, field in (
        (artifacts_pb2.DownloadChunk, _DOWNLOAD),
        (artifacts_pb2.UploadChunk, _UPLOAD),
    ):
        view = sole_bytes_field(message, field)
        if view is not None:
            parsed = cls.FromString(message)
            assert parsed.data == bytes(view)
            if cls is artifacts_pb2.UploadChunk:
                assert parsed.WhichOneof("part") == "data"


def test_an_empty_chunk_is_still_a_data_chunk() -> None:
    empty = bytes_field(_UPLOAD, b"")
    assert artifacts_pb2.UploadChunk.FromString(empty).WhichOneof("part") == "data"
    view = sole_bytes_field(empty, _UPLOAD)
    assert view is not None and len(view) == 0


def test_headers_trailers_and_truncated_chunks_are_not_data() -> None:
    header = artifacts_pb2.UploadChunk(header=artifacts_pb2.UploadHeader(run_id="r", path="p"))
    trailer = artifacts_pb2.UploadChunk(trailer=artifacts_pb2.UploadTrailer(size=3))
    for m in (header, trailer):
        assert sole_bytes_field(m.SerializeToString(), _UPLOAD) is None
    whole = bytes_field(_UPLOAD, b"abcdef")
    assert sole_bytes_field(whole[:-1], _UPLOAD) is None  # shorter than its length says
    assert sole_bytes_field(whole + b"\x00", _UPLOAD) is None  # something after it
    assert sole_bytes_field(b"", _UPLOAD) is None
    assert sole_bytes_field(b"\x12", _UPLOAD) is None  # a key and no length
