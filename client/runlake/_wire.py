"""Artifact chunks framed as protobuf messages without passing the bytes through protobuf.

A proxied transfer streams 1 MiB chunks through gRPC. Building a message object copies the
chunk into protobuf's arena, serialising copies it again, and parsing on the other end
copies it twice more; without them a gateway serving downloads used a quarter of the CPU
(decision 0019). The framing here is protobuf's own wire
format for a message holding one bytes field — its key, the payload's length, the payload —
so a peer using the generated code reads and writes exactly the same messages. Any message
that is not exactly that one field (a header, a trailer, a chunk carrying a size) goes
through protobuf as usual.
"""

from __future__ import annotations

from runlake.v1 import artifacts_pb2

__all__ = ["DOWNLOAD_DATA", "UPLOAD_DATA", "bytes_field", "sole_bytes_field"]

#: the field numbers of the data in UploadChunk and DownloadChunk (artifacts.proto)
UPLOAD_DATA = artifacts_pb2.UploadChunk.DATA_FIELD_NUMBER
DOWNLOAD_DATA = artifacts_pb2.DownloadChunk.DATA_FIELD_NUMBER
_LENGTH_DELIMITED = 2


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it; (-1, pos) if it is not a whole one."""
    n = shift = 0
    for i in range(pos, min(pos + 10, len(buf))):
        b = buf[i]
        n |= (b & 0x7F) << shift
        if b < 0x80:
            return n, i + 1
        shift += 7
    return -1, pos


def bytes_field(field: int, payload: bytes) -> bytes:
    """The serialized message whose only field is bytes field ``field`` = ``payload``.

    One copy of the payload (the join). An empty payload is still written, as protobuf
    writes a member of a oneof that was set.
    """
    return b"".join((_varint(field << 3 | _LENGTH_DELIMITED), _varint(len(payload)), payload))


def sole_bytes_field(message: bytes, field: int) -> memoryview | None:
    """The payload if ``message`` is exactly one bytes field ``field``, else None.

    A view into ``message``, not a copy. None means "parse it with protobuf": any other
    field, a repeated occurrence, or a malformed message (which protobuf then rejects).
    """
    key, pos = _read_varint(message, 0)
    if key != (field << 3 | _LENGTH_DELIMITED):
        return None
    length, pos = _read_varint(message, pos)
    if length < 0 or pos + length != len(message):
        return None
    return memoryview(message)[pos:]
